#include "lethe/eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "lethe/core/version.h"
#include "eval/suite.h"
#include "lethe/eval/metric.h"
#include "lethe/eval/stats.h"

namespace lethe::eval {
namespace {

std::string fmt(double v, int prec = 4) {
  if (!std::isfinite(v)) return "—";
  char buf[64];
  const double a = std::fabs(v);
  if (a != 0 && (a < 1e-3 || a >= 1e5)) {
    std::snprintf(buf, sizeof(buf), "%.3g", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.*f", prec, v);
  }
  return buf;
}

const char* kColors[] = {"#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#57606a"};
const char* color(std::size_t i) { return kColors[i % 6]; }

std::string summary_table(const ReportInput& in) {
  std::ostringstream h;
  h << "<table class=\"summary\"><thead><tr><th>metric</th>";
  for (const auto& m : in.models) h << "<th>" << html_escape(m.name) << "</th>";
  h << "<th>meaning</th></tr></thead><tbody>\n";
  for (const Metric* metric : all_metrics()) {
    for (const SummaryKey& k : metric->keys) {
      bool any = false;
      for (const auto& m : in.models) any = any || m.summary.contains(k.key);
      if (!any) continue;
      h << "<tr><td><code>" << k.key << "</code></td>";
      for (const auto& m : in.models) {
        if (!m.summary.contains(k.key)) {
          std::string why = m.summary.contains("omitted") && m.summary["omitted"].contains(k.key)
                                ? m.summary["omitted"][k.key].get<std::string>()
                                : "not computed";
          h << "<td class=\"na\" title=\"" << html_escape(why) << "\">—</td>";
          continue;
        }
        h << "<td>" << fmt(m.summary[k.key].get<double>());
        if (m.summary.contains("ci") && m.summary["ci"].contains(k.key)) {
          const auto& ci = m.summary["ci"][k.key];
          h << "<span class=\"ci\"> [" << fmt(ci[0].get<double>()) << ", " << fmt(ci[1].get<double>()) << "]</span>";
        }
        h << "</td>";
      }
      h << "<td class=\"doc\">" << html_escape(k.meaning) << "</td></tr>\n";
    }
  }
  h << "</tbody></table>\n";
  // Omissions, said once per model.
  for (const auto& m : in.models) {
    if (!m.summary.contains("omitted") || m.summary["omitted"].empty()) continue;
    h << "<p class=\"note\">" << html_escape(m.name) << ": not computed — ";
    bool first = true;
    for (const auto& [k, v] : m.summary["omitted"].items()) {
      h << (first ? "" : "; ") << "<code>" << html_escape(k) << "</code> (" << html_escape(v.get<std::string>()) << ")";
      first = false;
    }
    h << ".</p>\n";
  }
  return h.str();
}

// Overlaid histograms of log10(truth ratio) for several series.
std::string histogram_svg(const std::vector<std::pair<std::string, std::vector<double>>>& series) {
  const double lo = -3, hi = 1.5;
  const int bins = 27;
  const double w = 640, hgt = 220, left = 40, bottom = 30;
  std::vector<std::vector<double>> share(series.size(), std::vector<double>(bins, 0));
  double top = 0;
  for (std::size_t s = 0; s < series.size(); ++s) {
    for (double tr : series[s].second) {
      if (!(tr > 0)) continue;
      const double x = std::clamp(std::log10(tr), lo, hi - 1e-9);
      share[s][static_cast<std::size_t>((x - lo) / (hi - lo) * bins)] += 1.0 / static_cast<double>(series[s].second.size());
    }
    for (double v : share[s]) top = std::max(top, v);
  }
  if (top <= 0) top = 1;
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w + left + 10 << "\" height=\"" << hgt + bottom + 10
    << "\" role=\"img\"><title>truth ratio histograms</title>";
  o << "<line x1=\"" << left << "\" y1=\"" << hgt << "\" x2=\"" << left + w << "\" y2=\"" << hgt << "\" stroke=\"#888\"/>";
  for (int t = -3; t <= 1; ++t) {
    const double x = left + (t - lo) / (hi - lo) * w;
    o << "<line x1=\"" << x << "\" y1=\"" << hgt << "\" x2=\"" << x << "\" y2=\"" << hgt + 5 << "\" stroke=\"#888\"/>";
    o << "<text x=\"" << x << "\" y=\"" << hgt + 18 << "\" font-size=\"11\" text-anchor=\"middle\">1e" << t << "</text>";
  }
  const double bw = w / bins;
  for (std::size_t s = 0; s < series.size(); ++s) {
    for (int b = 0; b < bins; ++b) {
      const double v = share[s][static_cast<std::size_t>(b)];
      if (v <= 0) continue;
      const double bh = v / top * (hgt - 20);
      o << "<rect x=\"" << left + b * bw + 1 << "\" y=\"" << hgt - bh << "\" width=\"" << bw - 2 << "\" height=\"" << bh
        << "\" fill=\"" << color(s) << "\" fill-opacity=\"0.35\" stroke=\"" << color(s) << "\"/>";
    }
    o << "<text x=\"" << left + 8 << "\" y=\"" << 14 + 14 * s << "\" font-size=\"12\" fill=\"" << color(s) << "\">"
      << html_escape(series[s].first) << " (n=" << series[s].second.size() << ")</text>";
  }
  o << "</svg>";
  return o.str();
}

// Legend rows under a plot: one line per series, as wide as its text needs (about 7 px a
// character at 12 px), so no name is cut at the plot's edge.
constexpr double kLegendRow = 15;
double legend_width(const std::vector<std::string>& names) {
  std::size_t n = 0;
  for (const auto& s : names) n = std::max(n, s.size());
  return 24 + 7.0 * static_cast<double>(n);
}
void legend(std::ostringstream& o, const std::vector<std::string>& names, const std::vector<bool>& dashed,
            const std::vector<std::size_t>& colors, double x, double y) {
  for (std::size_t c = 0; c < names.size(); ++c) {
    const double yy = y + kLegendRow * static_cast<double>(c);
    const char* col = color(c < colors.size() ? colors[c] : c);
    o << "<line x1=\"" << x << "\" y1=\"" << yy - 4 << "\" x2=\"" << x + 16 << "\" y2=\"" << yy - 4 << "\" stroke=\""
      << col << "\" stroke-width=\"2\"" << (c < dashed.size() && dashed[c] ? " stroke-dasharray=\"4 3\"" : "")
      << "/><text x=\"" << x + 22 << "\" y=\"" << yy << "\" font-size=\"12\" fill=\"" << col << "\">"
      << html_escape(names[c]) << "</text>";
  }
}

std::string roc_svg(const std::vector<std::pair<std::string, std::vector<RocPoint>>>& curves) {
  const double size = 240, pad = 34;
  std::vector<std::string> names;
  for (const auto& c : curves) names.push_back(c.first);
  const double legend_top = size + pad + 14;
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << std::max(size + pad + 10, legend_width(names) + pad)
    << "\" height=\"" << legend_top + kLegendRow * static_cast<double>(curves.size()) << "\" role=\"img\"><title>ROC curves</title>";
  o << "<rect x=\"" << pad << "\" y=\"5\" width=\"" << size << "\" height=\"" << size << "\" fill=\"none\" stroke=\"#888\"/>";
  o << "<line x1=\"" << pad << "\" y1=\"" << size + 5 << "\" x2=\"" << pad + size << "\" y2=\"5\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>";
  o << "<text x=\"" << pad + size / 2 << "\" y=\"" << size + 28 << "\" font-size=\"11\" text-anchor=\"middle\">share of holdout items above threshold</text>";
  o << "<text x=\"10\" y=\"" << size / 2 << "\" font-size=\"11\" transform=\"rotate(-90 10 " << size / 2
    << ")\" text-anchor=\"middle\">share of forget items</text>";
  for (std::size_t c = 0; c < curves.size(); ++c) {
    o << "<polyline fill=\"none\" stroke-width=\"1.6\" stroke=\"" << color(c) << "\" points=\"";
    for (const auto& p : curves[c].second) o << pad + p.fpr * size << "," << 5 + (1 - p.tpr) * size << " ";
    o << "\"/>";
  }
  legend(o, names, {}, {}, pad, legend_top);
  o << "</svg>";
  return o.str();
}

}  // namespace

std::string line_plot_svg(const LinePlot& p) {
  const double w = 300, hgt = 200, left = 46, top = 24, bottom = 40, right = 36;  // right: a last tick's label
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  auto xt = [&](double x) { return p.log2_x ? std::log2(std::max(x, 1e-300)) : x; };
  for (const auto& s : p.series) {
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      x0 = std::min(x0, xt(x)), x1 = std::max(x1, xt(x)), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 - x0 < 1e-12) x0 -= 0.5, x1 += 0.5;
  if (y1 - y0 < 1e-12) y0 -= 0.05, y1 += 0.05;
  const double ypad = 0.06 * (y1 - y0);
  y0 = y0 >= 0 ? std::max(0.0, y0 - ypad) : y0 - ypad;  // rates and probabilities do not go below 0
  y1 += ypad;
  auto sx = [&](double x) { return left + (xt(x) - x0) / (x1 - x0) * w; };
  auto sy = [&](double y) { return top + (1 - (y - y0) / (y1 - y0)) * hgt; };
  std::vector<std::string> names;
  std::vector<bool> dashed;
  std::vector<std::size_t> colors;
  for (std::size_t c = 0; c < p.series.size(); ++c) {
    names.push_back(p.series[c].name);
    dashed.push_back(p.series[c].dashed);
    colors.push_back(p.series[c].color >= 0 ? static_cast<std::size_t>(p.series[c].color) : c);
  }
  const double legend_top = top + hgt + bottom + 6;
  std::ostringstream o;
  const double title_width = 8.0 * static_cast<double>(p.title.size());  // 13 px bold
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\""
    << std::max({left + w + right, legend_width(names) + left, title_width + left})
    << "\" height=\"" << legend_top + kLegendRow * static_cast<double>(names.size()) << "\" role=\"img\"><title>"
    << html_escape(p.title) << "</title>";
  o << "<text x=\"" << left << "\" y=\"14\" font-size=\"13\" font-weight=\"600\">" << html_escape(p.title) << "</text>";
  o << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << w << "\" height=\"" << hgt
    << "\" fill=\"none\" stroke=\"#888\"/>";
  for (int t = 0; t <= 4; ++t) {  // y ticks
    const double y = y0 + (y1 - y0) * t / 4;
    o << "<text x=\"" << left - 4 << "\" y=\"" << sy(y) + 4 << "\" font-size=\"10\" text-anchor=\"end\">" << fmt(y, 2)
      << "</text>";
  }
  std::vector<std::pair<double, std::string>> ticks;  // x ticks: the points' x values
  if (!p.x_ticks.empty()) {
    for (std::size_t i = 0; i < p.x_ticks.size(); ++i) ticks.emplace_back(static_cast<double>(i), p.x_ticks[i]);
  } else {
    for (const auto& s : p.series) {
      for (const auto& pt : s.points) {
        if (std::none_of(ticks.begin(), ticks.end(), [&](const auto& t) { return t.first == pt.first; })) {
          ticks.emplace_back(pt.first, fmt(pt.first, pt.first == std::floor(pt.first) ? 0 : 2));
        }
      }
    }
  }
  for (const auto& [x, name] : ticks) {
    o << "<line x1=\"" << sx(x) << "\" y1=\"" << top + hgt << "\" x2=\"" << sx(x) << "\" y2=\"" << top + hgt + 4
      << "\" stroke=\"#888\"/><text x=\"" << sx(x) << "\" y=\"" << top + hgt + 16
      << "\" font-size=\"10\" text-anchor=\"middle\">" << html_escape(name) << "</text>";
  }
  o << "<text x=\"" << left + w / 2 << "\" y=\"" << top + hgt + 32 << "\" font-size=\"11\" text-anchor=\"middle\">"
    << html_escape(p.x_label) << "</text>";
  o << "<text x=\"11\" y=\"" << top + hgt / 2 << "\" font-size=\"11\" transform=\"rotate(-90 11 " << top + hgt / 2
    << ")\" text-anchor=\"middle\">" << html_escape(p.y_label) << "</text>";
  for (std::size_t c = 0; c < p.series.size(); ++c) {
    o << "<polyline fill=\"none\" stroke-width=\"1.8\" stroke=\"" << color(colors[c]) << "\""
      << (p.series[c].dashed ? " stroke-dasharray=\"4 3\"" : "") << " points=\"";
    for (const auto& [x, y] : p.series[c].points) {
      if (std::isfinite(y)) o << sx(x) << "," << sy(y) << " ";
    }
    o << "\"/>";
    for (const auto& [x, y] : p.series[c].points) {
      if (std::isfinite(y)) o << "<circle cx=\"" << sx(x) << "\" cy=\"" << sy(y) << "\" r=\"2.5\" fill=\"" << color(colors[c]) << "\"/>";
    }
  }
  legend(o, names, dashed, colors, left, legend_top);
  o << "</svg>";
  return o.str();
}

std::string figure_grid(const std::vector<std::string>& figures) {
  std::string h = "<div class=\"grid\">";
  for (const auto& f : figures) h += "<figure>" + f + "</figure>";
  return h + "</div>\n";
}

namespace {

std::vector<double> item_values(const Json& eval, const std::string& split, const char* key) {
  std::vector<double> v;
  if (eval.is_null() || !eval.contains("splits") || !eval["splits"].contains(split)) return v;
  for (const auto& it : eval["splits"][split]["items"]) {
    if (it.contains(key)) v.push_back(it[key].get<double>());
  }
  return v;
}

std::vector<double> split_mia_values(const Json& eval, const std::string& split, const std::string& attack) {
  std::vector<double> v;
  if (eval.is_null() || !eval.contains("splits") || !eval["splits"].contains(split)) return v;
  for (const auto& it : eval["splits"][split]["items"]) {
    if (it.contains("mia") && it["mia"].contains(attack)) v.push_back(it["mia"][attack].get<double>());
  }
  return v;
}

std::string item_table(const Json& split, const std::string& name) {
  std::ostringstream h;
  const auto& items = split["items"];
  h << "<details><summary>" << html_escape(name) << " — " << items.size() << " items</summary>\n"
    << "<table class=\"items\"><thead><tr><th>#</th><th>input</th><th>ground truth</th><th>generation</th>"
    << "<th>numbers</th></tr></thead><tbody>\n";
  for (const auto& it : items) {
    const std::string input = it.contains("question") ? it["question"].get<std::string>()
                              : it.contains("prompt") ? it["prompt"].get<std::string>()
                              : it.contains("text")   ? it["text"].get<std::string>().substr(0, 300)
                                                      : "";
    const std::string truth = it.contains("answer") ? it["answer"].get<std::string>()
                              : it.contains("ground_truth") ? it["ground_truth"].get<std::string>()
                                                            : "";
    h << "<tr><td>" << it.value("index", 0) << "</td><td>" << html_escape(input) << "</td><td>" << html_escape(truth)
      << "</td><td>" << html_escape(it.value("generation", std::string())) << "</td><td class=\"num\">";
    for (const char* k : {"prob", "rougeL_recall", "rougeL_f1", "truth_ratio", "extraction_strength"}) {
      if (it.contains(k)) h << k << " " << fmt(it[k].get<double>(), 3) << "<br/>";
    }
    h << "</td></tr>\n";
  }
  h << "</tbody></table></details>\n";
  return h.str();
}

}  // namespace

std::string html_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string render_report(const ReportInput& in, const ReferenceData* reference) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>" << html_escape(in.title)
    << "</title>\n<style>\n"
    << "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1f2328}\n"
    << "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #d0d7de;padding:4px 8px;vertical-align:top;"
       "font-size:13px}\nth{background:#f6f8fa}.ci{color:#57606a;font-size:11px}.na{color:#8c959f}"
       ".doc{color:#57606a;font-size:12px}.note{color:#57606a;font-size:13px}.num{white-space:nowrap;font-size:12px}\n"
       "table.items td{max-width:320px}code{font-size:12px}\n"
       ".grid{display:flex;flex-wrap:wrap;gap:8px 24px;align-items:flex-start}.grid figure{margin:0}\n"
       "h3{font-size:14px;margin:0 0 4px}.verdict{font-size:16px;padding:8px 12px;background:#f6f8fa;"
       "border-left:4px solid #1f6feb}\n"
    << "</style></head><body>\n<h1>" << html_escape(in.title) << "</h1>\n" << in.lead_html;
  for (const auto& n : in.notes) h << "<p>" << html_escape(n) << "</p>\n";
  if (reference) {
    h << "<p class=\"note\">Reference (retain-only model): " << html_escape(reference->kind) << " <code>"
      << html_escape(reference->source) << "</code></p>\n";
  }
  if (!in.models.empty()) {
    h << "<h2>Summary</h2>\n<p class=\"note\">Values with 95% percentile-bootstrap intervals over items. Key names are "
         "OpenUnlearning's.</p>\n"
      << summary_table(in);
  }

  // Truth ratios of the forget split: every model, and the reference.
  std::vector<std::pair<std::string, std::vector<double>>> tr;
  for (const auto& m : in.models) {
    auto v = item_values(m.eval, "forget", "truth_ratio");
    if (!v.empty()) tr.emplace_back(m.name, std::move(v));
  }
  // The reference once: not again when it is one of the models (the demo's oracle).
  const bool reference_shown = reference && std::any_of(in.models.begin(), in.models.end(), [&](const ReportModel& m) {
                                 return m.summary.value("model", std::string()) == reference->source;
                               });
  if (reference && !reference_shown && reference->truth_ratios.count("forget")) {
    tr.emplace_back("reference", reference->truth_ratios.at("forget"));
  }
  if (!tr.empty()) {
    h << "<h2>Forget truth ratios</h2>\n<p class=\"note\">P(wrong answers) / P(paraphrased answer) per forget item, "
         "log scale. Forget quality asks whether a model's distribution matches the reference's.</p>\n"
      << histogram_svg(tr) << "\n";
  }

  // ROC curves per attack, side by side.
  bool roc_header = false;
  std::vector<std::string> roc_figures;
  // Every metric whose per-item score is an attack score (item.mia), in registry order.
  for (const Metric* metric : all_metrics()) {
    const std::string& attack = metric->name;
    std::vector<std::pair<std::string, std::vector<RocPoint>>> curves;
    for (const auto& m : in.models) {
      if (m.eval.is_null()) continue;
      const Suite& suite = find_suite(m.eval.value("suite", ""));
      const auto f = split_mia_values(m.eval, suite.mia_forget, attack);
      const auto ho = split_mia_values(m.eval, suite.mia_holdout, attack);
      if (f.empty() || ho.empty()) continue;
      curves.emplace_back(m.name + " AUC " + fmt(mia_auc(f, ho), 3), roc_curve(ho, f));
    }
    if (curves.empty()) continue;
    if (!roc_header) {
      h << "<h2>Membership inference</h2>\n<p class=\"note\">ROC of each attack score (higher = looks unseen), forget "
           "items against holdout items. A model that memorised the forget set keeps its curve under the diagonal "
           "(AUC ≈ 0); one that never saw it follows the diagonal (≈ 0.5).</p>\n";
      roc_header = true;
    }
    roc_figures.push_back("<h3><code>" + attack + "</code></h3>" + roc_svg(curves));
  }
  if (!roc_figures.empty()) h << figure_grid(roc_figures);

  for (const auto& [heading, html] : in.extra_sections) h << "<h2>" << html_escape(heading) << "</h2>\n" << html << "\n";

  // Per-item tables.
  for (const auto& m : in.models) {
    if (m.eval.is_null() || !m.eval.contains("splits")) continue;
    h << "<h2>Items: " << html_escape(m.name) << "</h2>\n";
    for (const auto& [name, split] : m.eval["splits"].items()) h << item_table(split, name);
  }
  h << "<p class=\"note\">Generated by lethe " << version() << ".</p>\n</body></html>\n";
  return h.str();
}

}  // namespace lethe::eval

// AUDIT.json as HTML (docs/audits.md "audit.html"): one table of aggregates with their 95%
// intervals, the models side by side, then each audit's items. Used by `lethe audit` and the
// demo's report.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <set>
#include <sstream>

#include "lethe/audit/audit.h"
#include "lethe/eval/report.h"

namespace lethe::audit {
namespace {

using eval::html_escape;

std::string num(const Json& v, int digits = 3) {
  if (!v.is_number()) return "–";
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v.get<double>();
  return s.str();
}

// {"value", "ci": [lo, hi]} as "v [lo, hi]".
std::string with_ci(const Json& m) {
  if (!m.is_object() || !m.contains("value")) return num(m);
  std::string s = num(m["value"]);
  if (m.contains("ci") && m["ci"].is_array()) s += " <small>[" + num(m["ci"][0]) + ", " + num(m["ci"][1]) + "]</small>";
  return s;
}

const Json* audit_of(const Json& model, const std::string& name) {
  for (const auto& a : model["audits"]) {
    if (a["audit"] == name) return &a;
  }
  return nullptr;
}

// The value at `path` in one model's aggregate of `audit`; null when the audit or a key is absent.
const Json* aggregate_at(const Json& model, const std::string& audit, const std::vector<std::string>& path) {
  const Json* au = audit_of(model, audit);
  const Json* v = au ? &(*au)["aggregate"] : nullptr;
  for (const auto& k : path) v = v && v->contains(k) ? &(*v)[k] : nullptr;
  return v;
}

std::string header(const Json& audit, const std::string& first) {
  std::string h = "<tr><th>" + first + "</th>";
  for (const auto& m : audit["models"]) h += "<th>" + html_escape(m["role"].get<std::string>()) + "</th>";
  return h + "</tr>";
}

// A row per aggregate: what each audit reports in one number.
std::string aggregates(const Json& a) {
  struct Row {
    std::string audit, label;
    std::vector<std::string> path;
  };
  const std::vector<Row> rows = {
      {"exposure", "exposure: mean over canaries (bits)", {"mean_exposure"}},
      {"exposure", "exposure: canaries ranked first", {"ranked_first"}},
      {"extract", "extract: memorised samples", {"memorized"}},
      {"extract", "extract: precision@top, perplexity", {"precision_at_top", "perplexity"}},
      {"extract", "extract: precision@top, zlib", {"precision_at_top", "zlib"}},
      {"extract", "extract: precision@top, lowercase", {"precision_at_top", "lowercase"}},
      {"extract", "extract: precision@top, reference", {"precision_at_top", "reference"}},
      {"forcing", "forcing: best mean log p", {"best_mean_logprob"}},
      {"ghost", "ghost: last-k-words completed", {"completed"}},
      {"ghost", "ghost: perplexity AUC (pooled)", {"auc"}}};
  std::string h = "<table>" + header(a, "aggregate");
  for (const Row& r : rows) {
    std::string cells;
    bool any = false;
    for (const auto& m : a["models"]) {
      const Json* v = aggregate_at(m, r.audit, r.path);
      any = any || v;
      cells += "<td>" + (v ? with_ci(*v) : std::string("–")) + "</td>";
    }
    if (any) h += "<tr><td>" + html_escape(r.label) + "</td>" + cells + "</tr>";
  }
  return h + "</table>";
}

// Items of one audit, one row per item, a column per model: `cell(item)` gives the cell.
template <typename F>
std::string item_table(const Json& a, const std::string& name, const std::string& first, const std::string& key,
                       std::size_t limit, F cell) {
  const Json* first_audit = audit_of(a["models"][0], name);
  if (!first_audit) return "";
  std::string h = "<table>" + header(a, first);
  for (std::size_t i = 0; i < (*first_audit)["items"].size() && i < limit; ++i) {
    h += "<tr><td>" + html_escape((*first_audit)["items"][i][key].get<std::string>()) + "</td>";
    for (const auto& m : a["models"]) {
      const Json* au = audit_of(m, name);
      h += "<td>" + (au && i < (*au)["items"].size() ? cell((*au)["items"][i]) : std::string("–")) + "</td>";
    }
    h += "</tr>";
  }
  return h + "</table>";
}

// One plot of `by_repetitions` (at `path` in an audit's aggregate: {"<d>": {"value", ...}}), a
// line per model that has it; "" when none does.
std::string repetition_plot(const Json& a, const std::string& audit, const std::vector<std::string>& path,
                            const std::string& title, const std::string& y_label) {
  eval::LinePlot plot;
  plot.title = title;
  plot.x_label = "repetitions in training";
  plot.y_label = y_label;
  plot.log2_x = true;
  for (const auto& m : a["models"]) {
    const Json* v = aggregate_at(m, audit, path);
    if (!v || !v->is_object()) continue;
    eval::PlotSeries s;
    s.name = m["role"];
    for (const auto& [r, x] : v->items()) {
      if (x["value"].is_number()) s.points.emplace_back(std::stod(r), x["value"].get<double>());
    }
    std::sort(s.points.begin(), s.points.end());
    if (!s.points.empty()) plot.series.push_back(std::move(s));
  }
  return plot.series.empty() ? "" : eval::line_plot_svg(plot);
}

// Every audit's numbers against duplication: exposure (each canary group apart when there are
// groups), the ghost tests, the share of corpus documents extracted.
std::string duplication_plots(const Json& a) {
  std::vector<std::string> figs;
  auto add = [&](std::string svg) {
    if (!svg.empty()) figs.push_back(std::move(svg));
  };
  std::set<std::string> groups;
  for (const auto& m : a["models"]) {
    if (const Json* g = aggregate_at(m, "exposure", {"groups"})) {
      for (const auto& [name, _] : g->items()) groups.insert(name);
    }
  }
  if (groups.empty()) add(repetition_plot(a, "exposure", {"by_repetitions"}, "exposure", "mean exposure (bits)"));
  for (const auto& g : groups) {
    add(repetition_plot(a, "exposure", {"groups", g, "by_repetitions"}, "exposure: " + g, "mean exposure (bits)"));
  }
  add(repetition_plot(a, "ghost", {"by_repetitions", "completed"}, "ghost: last words completed", "share completed"));
  add(repetition_plot(a, "ghost", {"by_repetitions", "auc"}, "ghost: perplexity AUC", "mean AUC"));
  add(repetition_plot(a, "extract", {"by_repetitions"}, "extraction", "share of documents extracted"));
  return figs.empty() ? "" : eval::figure_grid(figs);
}

}  // namespace

std::string audit_report_html(const Json& a) {
  std::string h = "<h2>What leaks</h2>" + aggregates(a);
  if (audit_of(a["models"][0], "exposure")) {
    h += "<h3>Canary exposure (bits, of the space's maximum)</h3>" +
         item_table(a, "exposure", "canary", "text", 200, [](const Json& it) {
           return num(it["exposure"], 2) + " / " + num(it["max_exposure"], 1) + " <small>rank " +
                  std::to_string(it["rank"].get<std::uint64_t>()) + (it["method"] == "exact" ? "" : " of sample") +
                  "</small>";
         });
  }
  const std::string against = duplication_plots(a);
  if (!against.empty()) {
    h += "<h3>Against duplication</h3><p class=\"note\">How often each item was trained (the inputs' "
         "\"repetitions\") against what the audits measure, a line per model, as Hubble plots memorisation "
         "against duplication.</p>" + against;
  }
  if (audit_of(a["models"][0], "ghost")) {
    h += "<h3>Ghost sentences: completed? perplexity AUC against the population</h3>" +
         item_table(a, "ghost", "sentence", "text", 200, [](const Json& it) {
           return std::string(it["completed"].get<bool>() ? "completed" : "not completed") + ", AUC " + num(it["auc"], 2);
         });
  }
  for (const auto& m : a["models"]) {
    const Json* f = audit_of(m, "forcing");
    if (!f) continue;
    h += "<h3>Token forcing: the " + html_escape(m["role"].get<std::string>()) +
         "'s most certain continuations</h3><table><tr><th>token</th><th>BOS</th><th>continuation</th><th>mean log "
         "p</th></tr>";
    for (std::size_t i = 0; i < (*f)["items"].size() && i < 10; ++i) {
      const Json& it = (*f)["items"][i];
      h += "<tr><td>" + html_escape(it["token_text"].get<std::string>()) + "</td><td>" +
           (it["bos"].get<bool>() ? "yes" : "no") + "</td><td>" + html_escape(it["text"].get<std::string>()) + "</td><td>" +
           num(it["mean_logprob"]) + "</td></tr>";
    }
    h += "</table>";
  }
  for (const auto& m : a["models"]) {
    const Json* e = audit_of(m, "extract");
    if (!e) continue;
    h += "<h3>Extraction: the " + html_escape(m["role"].get<std::string>()) +
         "'s memorised samples</h3><table><tr><th>sample</th><th>perplexity</th><th>words in the corpus</th></tr>";
    std::size_t shown = 0;
    for (const auto& it : (*e)["items"]) {
      if (!it["memorized"].get<bool>() || ++shown > 10) continue;
      h += "<tr><td>" + html_escape(it["text"].get<std::string>()) + "</td><td>" + num(it["perplexity"], 2) + "</td><td>" +
           std::to_string(it["covered_words"].get<std::size_t>()) + "</td></tr>";
    }
    if (shown == 0) h += "<tr><td colspan=\"3\">none found</td></tr>";
    h += "</table>";
  }
  return h;
}

}  // namespace lethe::audit

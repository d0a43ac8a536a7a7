// PROBE.json as HTML (docs/probes.md "report"): the verdict per model first, then one figure
// per probe and metric — the metric against bit width, against relearning steps, the leak rate
// per prompt attack, CKA per layer — laid out side by side. Used by `lethe probe` (probe.html)
// and the demo's report.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "lethe/core/file.h"
#include "lethe/eval/report.h"
#include "lethe/probe/probe.h"

namespace lethe::probe {
namespace {

using eval::html_escape;
using eval::LinePlot;
using eval::PlotSeries;

// The models in reading order — before, yardstick, after — which fixes each one's colour in
// every figure (as the demo report's other plots order them).
std::vector<std::string> roles_of(const Json& p) {
  std::vector<std::string> out;
  for (const char* r : {"target", "oracle", "candidate"}) {
    if (p["models"].contains(r)) out.emplace_back(r);
  }
  return out;
}

std::string display(const std::map<std::string, std::string>& names, const std::string& role) {
  const auto it = names.find(role);
  return it == names.end() ? role : it->second;
}

// A categorical plot over "unattacked" and each attack's setting: `value(role json, i)` gives
// attack i's number (i = -1: unattacked), NaN where absent.
template <typename F>
std::string settings_plot(const Json& p, const std::map<std::string, std::string>& names, const std::string& title,
                          const std::string& y_label, const std::string& first_tick, const std::vector<std::string>& settings,
                          F value) {
  LinePlot plot;
  plot.title = title;
  plot.x_label = "attack";
  plot.y_label = y_label;
  plot.x_ticks.push_back(first_tick);
  for (const auto& s : settings) plot.x_ticks.push_back(s);
  for (const auto& role : roles_of(p)) {
    const Json& m = p["models"][role];
    PlotSeries s;
    s.name = display(names, role);
    for (int i = -1; i < static_cast<int>(settings.size()); ++i) s.points.emplace_back(i + 1, value(m, i));
    plot.series.push_back(std::move(s));
  }
  return eval::line_plot_svg(plot);
}

double number_at(const Json& j, const std::string& key) {
  return j.contains(key) && j[key].contains("value") ? j[key]["value"].get<double>() : NAN;
}

}  // namespace

std::string probe_report_html(const Json& p, const std::map<std::string, std::string>& names) {
  std::string h = "<table class=\"summary\"><thead><tr><th>model</th><th>verdict</th><th>why</th></tr></thead><tbody>\n";
  for (const auto& role : roles_of(p)) {
    const Json& m = p["models"][role];
    h += "<tr><td>" + html_escape(display(names, role)) + "</td><td><b>" + html_escape(m["verdict"].get<std::string>()) +
         "</b></td><td class=\"doc\">" + html_escape(m["verdict_reason"].get<std::string>()) + "</td></tr>\n";
  }
  h += "</tbody></table>\n<p class=\"note\">removed: every forget metric, after every attack, stays within the attacked "
       "oracle's 95% interval; suppressed: it matches the oracle unattacked but an attack brings a metric back towards the "
       "target; not forgotten: it differs from the oracle before any attack (docs/probes.md).</p>\n";
  std::vector<std::string> figures;
  const auto keys = p["keys"].get<std::vector<std::string>>();
  for (const auto& [name, pj] : p["probes"].items()) {
    std::vector<std::string> settings;
    for (const auto& a : pj["attacks"]) settings.push_back(a["setting"].get<std::string>());
    if (name == "quantize") {
      for (const auto& k : keys) {
        figures.push_back(settings_plot(p, names, "quantization: " + k, k, "fp32", settings, [&](const Json& m, int i) {
          return i < 0 ? number_at(m["baseline"], k) : number_at(m["probes"]["quantize"][i]["metrics"], k);
        }));
      }
    } else if (name == "relearn") {
      // One line per model and set (forget half solid, benign dashed), from the unattacked value
      // on the measured half at 0 steps.
      for (const auto& k : keys) {
        LinePlot plot;
        plot.title = "relearning: " + k + " (held-back half)";
        plot.x_label = "fine-tuning steps";
        plot.y_label = k;
        const auto roles = roles_of(p);
        for (std::size_t ri = 0; ri < roles.size(); ++ri) {
          const Json& m = p["models"][roles[ri]];
          const std::string& role = roles[ri];
          std::map<std::string, PlotSeries> by_set;
          for (const auto& a : m["probes"]["relearn"]) {
            const std::string setting = a["setting"];
            const std::string set = setting.substr(0, setting.find(' '));
            PlotSeries& s = by_set[set];
            if (s.points.empty()) {
              s.name = display(names, role) + ", " + set;
              s.dashed = set != "forget-half";
              s.color = static_cast<int>(ri);
              s.points.emplace_back(0, number_at(a["unattacked"], k));
            }
            s.points.emplace_back(std::stod(setting.substr(setting.find(' ') + 1)), number_at(a["metrics"], k));
          }
          for (auto& [_, s] : by_set) plot.series.push_back(std::move(s));
        }
        figures.push_back(eval::line_plot_svg(plot));
      }
    } else if (name == "representation" && pj.contains("comparison")) {
      LinePlot plot;
      plot.title = "linear CKA per layer (forget prompts)";
      plot.x_label = "layer (0: embeddings, last: final norm)";
      plot.y_label = "CKA";
      for (const auto& [pair, layers] : pj["comparison"]["cka"].items()) {
        PlotSeries s;
        const std::string a = pair.substr(0, pair.find('~')), b = pair.substr(pair.find('~') + 1);
        s.name = display(names, a) + " ~ " + display(names, b);
        for (std::size_t l = 0; l < layers.size(); ++l) {
          s.points.emplace_back(l, layers[l].is_null() ? NAN : layers[l].get<double>());
        }
        plot.series.push_back(std::move(s));
      }
      figures.push_back(eval::line_plot_svg(plot));
    } else if (name == "parametric" && pj.contains("comparison")) {
      const Json& c = pj["comparison"];
      LinePlot plot;
      plot.title = "parametric traces: alignment with the forget-only tokens";
      plot.x_label = "block";
      plot.y_label = "log lens mass, top " + std::to_string(c["vectors"].get<std::int64_t>()) + " units";
      const auto roles = roles_of(p);
      for (std::size_t ri = 0; ri < roles.size(); ++ri) {
        for (const bool on_target : {false, true}) {
          const std::string key = on_target ? roles[ri] + "_on_target_units" : roles[ri];
          if (!c["per_layer"].contains(key)) continue;
          PlotSeries s;
          s.name = display(names, roles[ri]) + (on_target ? ", on the target's units" : "");
          s.color = static_cast<int>(ri);
          s.dashed = on_target;
          const Json& v = c["per_layer"][key];
          for (std::size_t l = 0; l < v.size(); ++l) s.points.emplace_back(l, v[l].get<double>());
          plot.series.push_back(std::move(s));
        }
      }
      figures.push_back(eval::line_plot_svg(plot));
    } else if (name == "linear" && pj.contains("comparison")) {
      const Json& c = pj["comparison"];
      LinePlot plot;
      plot.title = "linear probe: forget people's attribute";
      plot.x_label = "layer (0: embeddings, last: final norm)";
      plot.y_label = "held-out accuracy";
      const auto roles = roles_of(p);
      std::size_t layers = 0;
      for (std::size_t ri = 0; ri < roles.size(); ++ri) {
        if (!c["accuracy"].contains(roles[ri])) continue;
        PlotSeries s;
        s.name = display(names, roles[ri]);
        s.color = static_cast<int>(ri);
        const Json& acc = c["accuracy"][roles[ri]];
        layers = acc.size();
        for (std::size_t l = 0; l < acc.size(); ++l) s.points.emplace_back(l, acc[l].get<double>());
        plot.series.push_back(std::move(s));
      }
      PlotSeries chance;
      chance.name = "chance (the retained people's commonest value)";
      chance.dashed = true;
      chance.color = 5;
      for (std::size_t l = 0; l < layers; ++l) chance.points.emplace_back(l, c["chance"].get<double>());
      plot.series.push_back(std::move(chance));
      figures.push_back(eval::line_plot_svg(plot));
    }
  }
  // Measuring probes (in_context): their own keys, unattacked ("plain") and per setting.
  for (const auto& [name, pj] : p["probes"].items()) {
    const Json& any = p["models"][roles_of(p).front()];
    if (!any.contains("measured") || !any["measured"].contains(name)) continue;
    std::vector<std::string> settings;
    for (const auto& a : pj["attacks"]) settings.push_back(a["setting"].get<std::string>());
    for (const auto& [k, _] : any["measured"][name]["baseline"].items()) {
      const std::string key = k;
      figures.push_back(settings_plot(p, names, name + ": " + key, key, "plain", settings, [&](const Json& m, int i) {
        const Json& me = m["measured"][name];
        return i < 0 ? number_at(me["baseline"], key) : number_at(me["attacks"][i]["metrics"], key);
      }));
    }
  }
  return h + eval::figure_grid(figures);
}

}  // namespace lethe::probe

// The probes' registry, their arithmetic (recovery, verdict) and the run over candidate, oracle
// and target (include/lethe/probe/probe.h, docs/probes.md).
#include "lethe/probe/probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <sstream>
#include <utility>

#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/core/output.h"
#include "lethe/core/progress.h"
#include "lethe/core/runtime.h"
#include "lethe/core/version.h"
#include "lethe/eval/metric.h"
#include "lethe/eval/report.h"
#include "lethe/model/load.h"
#include "lethe/text/tokenizer.h"
#include "probe/probes.h"

namespace lethe::probe {
namespace fs = std::filesystem;

const std::vector<const Probe*>& all_probes() {
  static const std::vector<const Probe*> probes = {&quantize_probe(), &relearn_probe(), &in_context_probe(),
                                                       &representation_probe(), &parametric_probe(),
                                                   &linear_probe()};
  return probes;
}

const Probe& find_probe(const std::string& name) {
  std::string known;
  for (const Probe* p : all_probes()) {
    if (p->name == name) return *p;
    known += (known.empty() ? "" : ", ") + p->name;
  }
  throw Error("unknown probe '" + name + "' (known: " + known + "; " + kRobustness + ": all of them)");
}

std::vector<data::QARecord> forget_records(const eval::EvalOptions& opt, const char* probe) {
  const eval::ForgetView view = eval::forget_view(opt);
  LETHE_CHECK(!view.forget_qa.empty(), "probe ", probe, ": the ", opt.suite,
              " suite has no forget QA file (tofu has)");
  std::vector<data::QARecord> items = data::read_qa(view.forget_qa);
  if (opt.max_items > 0 && items.size() > static_cast<std::size_t>(opt.max_items)) {
    items.resize(static_cast<std::size_t>(opt.max_items));
  }
  return items;
}

std::optional<double> recovery(double attacked, double oracle, double target) {
  const double span = target - oracle;
  if (!(std::fabs(span) > 1e-12 * std::max({1.0, std::fabs(target), std::fabs(oracle)}))) return std::nullopt;
  return (attacked - oracle) / span;
}

bool overlap(const Measured& a, const Measured& b) { return a.lo <= b.hi && b.lo <= a.hi; }

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kRemoved: return "removed";
    case Verdict::kSuppressed: return "suppressed";
    case Verdict::kNotForgotten: return "not forgotten";
  }
  return "?";
}

namespace {

std::string describe(const Measured& m) {
  std::ostringstream os;
  os.precision(4);
  os << m.value << " [" << m.lo << ", " << m.hi << "]";
  return os.str();
}

// Whether `m` lies beyond `oracle`'s interval on the target's side (any side without a target).
bool toward_target(const Measured& m, const Measured& oracle, const std::optional<Measured>& target) {
  if (overlap(m, oracle)) return false;
  if (!target) return true;
  return (target->value > oracle.value) == (m.value > oracle.value);
}

}  // namespace

VerdictReason judge(const std::vector<MetricTrace>& metrics) {
  for (const auto& t : metrics) {
    if (toward_target(t.baseline, t.oracle_baseline, t.target_baseline)) {
      return {Verdict::kNotForgotten, t.key + " " + describe(t.baseline) + " unattacked, the oracle's " +
                                          describe(t.oracle_baseline)};
    }
  }
  for (const auto& t : metrics) {
    for (std::size_t i = 0; i < t.attacked.size(); ++i) {
      if (toward_target(t.attacked[i], t.oracle_attacked[i], t.target_baseline)) {
        return {Verdict::kSuppressed, t.key + " " + describe(t.attacked[i]) + " after " + t.settings[i] +
                                          ", the oracle's " + describe(t.oracle_attacked[i]) + " after it"};
      }
    }
  }
  return {Verdict::kRemoved, "every metric after every attack within the attacked oracle's interval"};
}

Measures measures_of(const Json& summary) {
  Measures out;
  for (const auto& [k, v] : summary.items()) {
    if (!v.is_number() || k == "format_version") continue;
    Measured m{v.get<double>(), v.get<double>(), v.get<double>()};
    if (summary.contains("ci") && summary["ci"].contains(k) && summary["ci"][k].is_array()) {
      m.lo = summary["ci"][k][0].get<double>();
      m.hi = summary["ci"][k][1].get<double>();
    }
    out[k] = m;
  }
  return out;
}

Json measures_json(const Measures& m) {
  Json j = Json::object();
  for (const auto& [k, v] : m) j[k] = {{"value", v.value}, {"ci", {v.lo, v.hi}}};
  return j;
}

namespace {

// The forget items an attack is measured on: {skip_items, max_items}; {0, 0} all of them.
using Window = std::pair<std::int64_t, std::int64_t>;
Window window_of(const Attack& a) { return {a.skip_items, a.max_items}; }

struct Role {
  std::string name;  // "oracle", "target", "candidate"
  fs::path path;
  std::map<Window, Measures> baseline;  // unattacked, on every window an attack is measured on
  std::map<std::string, std::vector<Measures>> attacked;  // probe -> one per attack
  std::map<std::string, Measurement> measured;            // probe -> its own keys (measuring probes)
  std::map<std::string, double> seconds;                  // probe -> wall time on this model ("baseline": unattacked)
};

}  // namespace

namespace {

// The probes to run, each one's options checked. A probe named in --probes that cannot run is an
// error; "robustness" (every probe, in registry order) leaves out those the data cannot serve —
// the linear probe on TOFU, relearning on MUSE — and says why in `skipped`.
struct Selection {
  std::vector<const Probe*> probes;
  std::map<std::string, std::string> skipped;
};

Selection select_probes(const ProbeOptions& opt) {
  LETHE_CHECK(!opt.probes.empty(), "probe: no probes to run");
  Selection s;
  const bool robustness = std::find(opt.probes.begin(), opt.probes.end(), kRobustness) != opt.probes.end();
  for (const auto& name : opt.probes) {
    const std::vector<const Probe*> named =
        name == kRobustness ? all_probes() : std::vector<const Probe*>{&find_probe(name)};
    for (const Probe* p : named) {
      if (std::find(s.probes.begin(), s.probes.end(), p) == s.probes.end()) s.probes.push_back(p);
    }
  }
  std::vector<const Probe*> kept;
  for (const Probe* p : s.probes) {
    const bool named = std::find(opt.probes.begin(), opt.probes.end(), p->name) != opt.probes.end();
    try {
      if (p->check) p->check(opt);
      kept.push_back(p);
    } catch (const Error& e) {
      if (named || !robustness) throw;
      s.skipped[p->name] = e.what();
    }
  }
  s.probes = kept;
  LETHE_CHECK(std::any_of(s.probes.begin(), s.probes.end(),
                          [](const Probe* p) { return p->attacks != nullptr || p->measure != nullptr; }),
              "probe: the verdict needs an attack; add quantize, relearn or in_context to --probes");
  return s;
}

// The evaluation the attacks re-measure: the suite's forget view, with the options' metrics
// (refusing those that need a reference) or the view's.
eval::EvalOptions forget_evaluation(const ProbeOptions& opt) {
  eval::EvalOptions x = opt.eval;
  const eval::ForgetView view = eval::forget_view(x);
  if (x.metrics.empty()) x.metrics = view.metrics;
  x.splits = view.splits;
  x.report = false;
  for (const auto& name : x.metrics) {
    LETHE_CHECK(!eval::find_metric(name).needs_reference(), "probe: metric '", name,
                "' compares the model with a reference; the probes compare with the oracle themselves — give metrics "
                "of one model (e.g. probability, rouge, truth_ratio)");
  }
  eval::check_metrics(x.suite, x.metrics, /*have_reference=*/false);
  return x;
}

std::vector<NamedPath> probe_inputs(const ProbeOptions& opt) {
  std::vector<NamedPath> inputs = {{"--reference", opt.reference}, {"--data", opt.eval.data}};
  if (!opt.target.empty()) inputs.emplace_back("--target", opt.target);
  if (!opt.eval.tokenizer.empty()) inputs.emplace_back("--tokenizer", opt.eval.tokenizer);
  return inputs;
}

}  // namespace

namespace {

// check_probe_options and what it works out, once: the selection and the evaluation.
std::pair<Selection, eval::EvalOptions> checked(const ProbeOptions& opt) {
  LETHE_CHECK(!opt.reference.empty(),
              "probe: give --reference DIR: the oracle (retrained without the forget set) that a removal must match");
  LETHE_CHECK(!opt.eval.data.empty(), "probe: give --data DIR (the ", opt.eval.suite, " data folder)");
  for (const auto& [what, p] : probe_inputs(opt)) {
    LETHE_CHECK(fs::exists(p), "probe: ", what, " ", p.string(), ": no such file or folder");
  }
  eval::EvalOptions x = forget_evaluation(opt);
  return {select_probes(opt), std::move(x)};
}

}  // namespace

void check_probe_options(const ProbeOptions& opt) { (void)checked(opt); }

Json run_probes(const ProbeOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  LETHE_CHECK(!opt.model.empty(), "probe: give --model DIR (the unlearned model)");
  LETHE_CHECK(fs::exists(opt.model), "probe: --model ", opt.model.string(), ": no such file or folder");
  const auto prepared = checked(opt);
  const Selection& selection = prepared.first;
  const eval::EvalOptions& x = prepared.second;
  LETHE_CHECK(!opt.out.empty(), "probe: give --out DIR (PROBE.json goes there)");
  std::vector<NamedPath> inputs = probe_inputs(opt);
  inputs.emplace_back("--model", opt.model);
  check_output_apart(opt.out, "--out", inputs);
  StagedFolder staged(opt.out, opt.force, "--out");  // refuses a non-empty --out before any work

  for (const auto& [name, why] : selection.skipped) log_info("probe: ", name, " left out of ", kRobustness, ": ", why);
  const std::vector<const Probe*>& probes = selection.probes;
  ProbeOptions po = opt;  // what record and measure get: the options with the evaluation settled
  po.eval = x;
  const auto tok = text::load_tokenizer(x.tokenizer.empty() ? opt.model : x.tokenizer);
  std::map<std::string, std::vector<Attack>> attacks;
  std::vector<Window> windows = {{0, 0}};
  for (const Probe* p : probes) {
    attacks[p->name] = p->attacks ? p->attacks(opt, *tok) : std::vector<Attack>{};
    for (const Attack& a : attacks[p->name]) {
      if (std::find(windows.begin(), windows.end(), window_of(a)) == windows.end()) windows.push_back(window_of(a));
    }
  }

  std::map<std::string, std::map<std::string, Record>> records;  // probe -> role -> record
  std::vector<Role> roles = {{"oracle", opt.reference, {}, {}}};
  if (!opt.target.empty()) roles.push_back({"target", opt.target, {}, {}});
  roles.push_back({"candidate", opt.model, {}, {}});
  model::LoadOptions lo;
  lo.device = parse_device(x.device);
  for (Role& r : roles) {
    log_info("probe: the ", r.name, " (", r.path.string(), ")");
    auto m = model::load_model(r.path, lo);
    auto measure = [&](model::CausalLM& mm, const Window& w) {
      eval::EvalOptions e = x;
      e.model = r.path;
      if (w != Window{0, 0}) {
        e.skip_items = w.first;
        e.max_items = w.second;
      }
      const Json ev = eval::evaluate_model(mm, *tok, e, nullptr);
      return measures_of(eval::summarize(ev, nullptr, x.metrics, x.seed));
    };
    auto tb = std::chrono::steady_clock::now();
    for (const Window& w : windows) r.baseline[w] = measure(*m, w);
    r.seconds["baseline"] = seconds_since(tb);
    for (const Probe* p : probes) {
      const auto tp = std::chrono::steady_clock::now();
      if (p->record) records[p->name][r.name] = p->record(*m, *tok, po);
      if (p->measure) r.measured[p->name] = p->measure(*m, *tok, po);
      for (const Attack& a : attacks[p->name]) {
        log_info("probe: ", p->name, " ", a.setting, " on the ", r.name);
        auto attacked = a.apply(*m);
        r.attacked[p->name].push_back(measure(*attacked, window_of(a)));
      }
      r.seconds[p->name] = seconds_since(tp);
    }
  }

  const Role& oracle = roles.front();
  const Role* target = opt.target.empty() ? nullptr : &roles[1];
  Json out = {{"format", "lethe.probe"},
              {"format_version", 1},
              {"suite", x.suite},
              {"data", x.data.string()},
              {"forget_split", x.forget_split},
              {"splits", x.splits},
              {"metrics", x.metrics},
              {"lethe_version", version()}};
  std::vector<std::string> keys;
  for (const auto& [k, _] : oracle.baseline.at({0, 0})) keys.push_back(k);
  out["keys"] = keys;
  out["skipped"] = selection.skipped;
  for (const Probe* p : probes) {
    Json pj = {{"description", p->description}, {"x_label", p->x_label}, {"attacks", Json::array()}};
    for (const Attack& a : attacks[p->name]) {
      Json aj = {{"setting", a.setting}, {"x", a.x}};
      if (window_of(a) != Window{0, 0}) aj["items"] = {{"skip", a.skip_items}, {"max", a.max_items}};
      pj["attacks"].push_back(aj);
    }
    if (p->measure) {
      for (const auto& setting : oracle.measured.at(p->name).settings) pj["attacks"].push_back({{"setting", setting}});
    }
    if (p->compare) pj["comparison"] = p->compare(records[p->name]);
    out["probes"][p->name] = pj;
  }
  for (const Role& r : roles) {
    Json mj = {{"path", r.path.string()}, {"baseline", measures_json(r.baseline.at({0, 0}))}, {"seconds", r.seconds}};
    for (const Probe* p : probes) {
      if (!p->attacks) continue;
      Json list = Json::array();
      const auto& att = attacks[p->name];
      for (std::size_t i = 0; i < att.size(); ++i) {
        const Window w = window_of(att[i]);
        Json a = {{"setting", att[i].setting}, {"metrics", measures_json(r.attacked.at(p->name)[i])}};
        if (w != Window{0, 0}) a["unattacked"] = measures_json(r.baseline.at(w));
        if (target) {
          for (const auto& k : keys) {
            const auto rec = recovery(r.attacked.at(p->name)[i].at(k).value, oracle.baseline.at(w).at(k).value,
                                      target->baseline.at(w).at(k).value);
            a["recovery"][k] = rec ? Json(*rec) : Json();
          }
        }
        list.push_back(a);
      }
      mj["probes"][p->name] = list;
    }
    for (const Probe* p : probes) {
      if (!p->measure) continue;
      const Measurement& me = r.measured.at(p->name);
      const Measurement& om = oracle.measured.at(p->name);
      LETHE_CHECK(me.settings == om.settings, "probe ", p->name, ": the ", r.name, " was measured under other settings than the oracle");
      Json pj = {{"baseline", measures_json(me.baseline)}, {"attacks", Json::array()}, {"examples", me.examples}};
      for (std::size_t i = 0; i < me.settings.size(); ++i) {
        Json a = {{"setting", me.settings[i]}, {"metrics", measures_json(me.attacked[i])}};
        if (target) {
          for (const auto& [k, v] : me.attacked[i]) {
            const auto rec = recovery(v.value, om.baseline.at(k).value, target->measured.at(p->name).baseline.at(k).value);
            a["recovery"][k] = rec ? Json(*rec) : Json();
          }
        }
        pj["attacks"].push_back(a);
      }
      mj["measured"][p->name] = pj;
    }
    // The verdict over every probe's attacks together.
    std::vector<MetricTrace> traces;
    for (const auto& k : keys) {
      MetricTrace t;
      t.key = k;
      for (const Probe* p : probes) {
        for (const Attack& a : attacks[p->name]) t.settings.push_back(p->name + " " + a.setting);
      }
      t.baseline = r.baseline.at({0, 0}).at(k);
      t.oracle_baseline = oracle.baseline.at({0, 0}).at(k);
      if (target) t.target_baseline = target->baseline.at({0, 0}).at(k);
      for (const Probe* p : probes) {
        for (std::size_t i = 0; i < attacks[p->name].size(); ++i) {
          t.attacked.push_back(r.attacked.at(p->name)[i].at(k));
          t.oracle_attacked.push_back(oracle.attacked.at(p->name)[i].at(k));
        }
      }
      traces.push_back(std::move(t));
    }
    for (const Probe* p : probes) {  // a measuring probe's keys, against the oracle's under the same prompts
      if (!p->measure) continue;
      const Measurement& me = r.measured.at(p->name);
      const Measurement& om = oracle.measured.at(p->name);
      for (const auto& [k, base] : me.baseline) {
        MetricTrace t;
        t.key = p->name + " " + k;
        t.baseline = base;
        t.oracle_baseline = om.baseline.at(k);
        if (target) t.target_baseline = target->measured.at(p->name).baseline.at(k);
        for (std::size_t i = 0; i < me.settings.size(); ++i) {
          t.settings.push_back(p->name + " " + me.settings[i]);
          t.attacked.push_back(me.attacked[i].at(k));
          t.oracle_attacked.push_back(om.attacked[i].at(k));
        }
        traces.push_back(std::move(t));
      }
    }
    const VerdictReason v = judge(traces);
    mj["verdict"] = verdict_name(v.verdict);
    mj["verdict_reason"] = v.why;
    out["models"][r.name] = mj;
  }
  out["seconds"] = seconds_since(t0);
  write_file_atomic(staged.path() / "PROBE.json", out.dump(2) + "\n");
  eval::ReportInput page;
  page.title = "lethe probe: " + opt.model.string();
  page.lead_html = probe_report_html(out);
  page.notes = {"Candidate " + opt.model.string() + ", oracle " + opt.reference.string() +
                (opt.target.empty() ? std::string() : ", target " + opt.target.string()) + "; data " + x.data.string() +
                ", forget split " + x.forget_split + ". The numbers are in PROBE.json."};
  write_file_atomic(staged.path() / "probe.html", eval::render_report(page, nullptr));
  staged.commit();
  return out;
}

}  // namespace lethe::probe

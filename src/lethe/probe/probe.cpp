// The probes' registry, their arithmetic (recovery, verdict) and the run over candidate, oracle
// and target (include/lethe/probe/probe.h, docs/probes.md).
#include "lethe/probe/probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <sstream>

#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/core/log.h"
#include "lethe/core/output.h"
#include "lethe/core/runtime.h"
#include "lethe/core/version.h"
#include "lethe/eval/metric.h"
#include "lethe/model/load.h"
#include "lethe/text/tokenizer.h"
#include "probe/probes.h"

namespace lethe::probe {
namespace fs = std::filesystem;

const std::vector<const Probe*>& all_probes() {
  static const std::vector<const Probe*> probes = {&quantize_probe(), &relearn_probe(), &representation_probe()};
  return probes;
}

const Probe& find_probe(const std::string& name) {
  std::string known;
  for (const Probe* p : all_probes()) {
    if (p->name == name) return *p;
    known += (known.empty() ? "" : ", ") + p->name;
  }
  throw Error("unknown probe '" + name + "' (known: " + known + ")");
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

VerdictReason judge(const std::vector<MetricTrace>& metrics, const std::vector<std::string>& settings) {
  for (const auto& t : metrics) {
    if (toward_target(t.baseline, t.oracle_baseline, t.target_baseline)) {
      return {Verdict::kNotForgotten, t.key + " " + describe(t.baseline) + " unattacked, the oracle's " +
                                          describe(t.oracle_baseline)};
    }
  }
  for (const auto& t : metrics) {
    for (std::size_t i = 0; i < t.attacked.size(); ++i) {
      if (toward_target(t.attacked[i], t.oracle_attacked[i], t.target_baseline)) {
        return {Verdict::kSuppressed, t.key + " " + describe(t.attacked[i]) + " after " + settings[i] +
                                          ", the oracle's " + describe(t.oracle_attacked[i]) + " after it"};
      }
    }
  }
  return {Verdict::kRemoved, "every metric after every attack within the attacked oracle's interval"};
}

namespace {

// The tracked keys of one summary, as Measured values.
using Measures = std::map<std::string, Measured>;

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

// The forget items an attack is measured on: {skip_items, max_items}; {0, 0} all of them.
using Window = std::pair<std::int64_t, std::int64_t>;
Window window_of(const Attack& a) { return {a.skip_items, a.max_items}; }

struct Role {
  std::string name;  // "oracle", "target", "candidate"
  fs::path path;
  std::map<Window, Measures> baseline;  // unattacked, on every window an attack is measured on
  std::map<std::string, std::vector<Measures>> attacked;  // probe -> one per attack
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Json run_probes(const ProbeOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  LETHE_CHECK(!opt.model.empty(), "probe: give --model DIR (the unlearned model)");
  LETHE_CHECK(!opt.reference.empty(),
              "probe: give --reference DIR: the oracle (retrained without the forget set) that a removal must match");
  LETHE_CHECK(!opt.eval.data.empty(), "probe: give --data DIR (the ", opt.eval.suite, " data folder)");
  LETHE_CHECK(!opt.out.empty(), "probe: give --out DIR (PROBE.json goes there)");
  LETHE_CHECK(!opt.probes.empty(), "probe: no probes to run");
  std::vector<const Probe*> probes;
  for (const auto& name : opt.probes) {
    const Probe* p = &find_probe(name);
    if (std::find(probes.begin(), probes.end(), p) == probes.end()) probes.push_back(p);
  }
  LETHE_CHECK(std::any_of(probes.begin(), probes.end(), [](const Probe* p) { return p->attacks != nullptr; }),
              "probe: the verdict needs an attack; add quantize or relearn to --probes");
  std::vector<NamedPath> inputs = {{"--model", opt.model}, {"--reference", opt.reference}, {"--data", opt.eval.data}};
  if (!opt.target.empty()) inputs.emplace_back("--target", opt.target);
  if (!opt.eval.tokenizer.empty()) inputs.emplace_back("--tokenizer", opt.eval.tokenizer);
  for (const auto& [what, p] : inputs) LETHE_CHECK(fs::exists(p), "probe: ", what, " ", p.string(), ": no such file or folder");
  check_output_apart(opt.out, "--out", inputs);
  StagedFolder staged(opt.out, opt.force, "--out");  // refuses a non-empty --out before any work

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
    for (const Window& w : windows) r.baseline[w] = measure(*m, w);
    for (const Probe* p : probes) {
      if (p->record) records[p->name][r.name] = p->record(*m, *tok, x);
    }
    for (const Probe* p : probes) {
      for (const Attack& a : attacks[p->name]) {
        log_info("probe: ", p->name, " ", a.setting, " on the ", r.name);
        auto attacked = a.apply(*m);
        r.attacked[p->name].push_back(measure(*attacked, window_of(a)));
      }
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
  for (const Probe* p : probes) {
    Json pj = {{"description", p->description}, {"x_label", p->x_label}, {"attacks", Json::array()}};
    for (const Attack& a : attacks[p->name]) {
      Json aj = {{"setting", a.setting}, {"x", a.x}};
      if (window_of(a) != Window{0, 0}) aj["items"] = {{"skip", a.skip_items}, {"max", a.max_items}};
      pj["attacks"].push_back(aj);
    }
    if (p->compare) pj["comparison"] = p->compare(records[p->name]);
    out["probes"][p->name] = pj;
  }
  for (const Role& r : roles) {
    Json mj = {{"path", r.path.string()}, {"baseline", measures_json(r.baseline.at({0, 0}))}};
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
    // The verdict over every probe's attacks together.
    std::vector<MetricTrace> traces;
    std::vector<std::string> settings;
    for (const Probe* p : probes) {
      for (const Attack& a : attacks[p->name]) settings.push_back(p->name + " " + a.setting);
    }
    for (const auto& k : keys) {
      MetricTrace t;
      t.key = k;
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
    const VerdictReason v = judge(traces, settings);
    mj["verdict"] = verdict_name(v.verdict);
    mj["verdict_reason"] = v.why;
    out["models"][r.name] = mj;
  }
  out["seconds"] = seconds_since(t0);
  write_file_atomic(staged.path() / "PROBE.json", out.dump(2) + "\n");
  staged.commit();
  return out;
}

}  // namespace lethe::probe

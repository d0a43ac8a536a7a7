// The `probe:` section of an unlearn config (docs/probes.md "In a run config"), read with the
// strict section reader every config uses (core/config.h).
#include <algorithm>
#include <utility>

#include "lethe/core/config.h"
#include "lethe/core/error.h"
#include "lethe/probe/probe.h"

namespace lethe::probe {
namespace fs = std::filesystem;

namespace {

std::vector<std::string> string_list(ConfigSection& c, const char* key, std::vector<std::string> fallback) {
  const Json& v = c.raw(key);
  if (v.is_null()) return fallback;
  LETHE_CHECK(v.is_array() && !v.empty() && std::all_of(v.begin(), v.end(), [](const Json& e) { return e.is_string(); }),
              "config: '", c.where(key), "' must be a non-empty list of names, got ", v.dump());
  return v.get<std::vector<std::string>>();
}

}  // namespace

ProbeOptions probe_options_from_config(const Json& section, const fs::path& base, const ProbeOptions& defaults) {
  ConfigSection c(section, "probe");
  auto path = [&](const char* k, const fs::path& fallback) {
    const std::string p = c.get_path(k);
    if (p.empty()) return fallback;
    return fs::path(p).is_absolute() ? fs::path(p) : base / p;
  };
  const Range positive = Range::at_least(1).whole();
  ProbeOptions o = defaults;
  o.reference = path("reference", {});
  LETHE_CHECK(!o.reference.empty(),
              "config: missing required key 'probe.reference' (the oracle: a model retrained without the forget set)");
  o.target = path("target", defaults.target);
  o.eval.data = path("data", defaults.eval.data);
  LETHE_CHECK(!o.eval.data.empty(), "config: missing key 'probe.data' (the suite's data folder; default: eval.data)");
  o.eval.suite = c.get<std::string>("suite", defaults.eval.suite);
  o.eval.forget_split = c.get<std::string>("forget_split", defaults.eval.forget_split);
  o.probes = string_list(c, "probes", defaults.probes);
  o.eval.metrics = string_list(c, "metrics", defaults.eval.metrics);
  o.quantizations.clear();
  for (const auto& q : string_list(c, "quantize", {})) o.quantizations.push_back(model::parse_quant_spec(q));
  {
    ConfigSection r = c.sub("relearn");
    const Json& steps = r.raw("steps");
    if (!steps.is_null()) {
      LETHE_CHECK(steps.is_array() && !steps.empty() &&
                      std::all_of(steps.begin(), steps.end(),
                                  [](const Json& e) { return e.is_number_integer() && e.get<std::int64_t>() > 0; }),
                  "config: 'probe.relearn.steps' must be a non-empty list of positive step counts, got ", steps.dump());
      o.relearn_steps = steps.get<std::vector<std::int64_t>>();
    }
    o.relearn_lr = r.get<double>("lr", defaults.relearn_lr, Range::positive());
    o.relearn_batch = r.get<std::int64_t>("batch_size", defaults.relearn_batch, positive);
    o.relearn_lora_rank = r.get<std::int64_t>("lora_rank", defaults.relearn_lora_rank, positive);
    r.done();
  }
  {
    ConfigSection ic = c.sub("in_context");
    o.in_context = string_list(ic, "settings", defaults.in_context);
    o.context_facts = ic.get<std::int64_t>("context_facts", defaults.context_facts, positive);
    o.shots = ic.get<std::int64_t>("shots", defaults.shots, positive);
    o.samples = ic.get<std::int64_t>("samples", defaults.samples, positive);
    o.leak_threshold = ic.get<double>("leak_threshold", defaults.leak_threshold, Range::unit_left_open());
    o.items_per_person = ic.get<std::int64_t>("items_per_person", defaults.items_per_person, positive);
    ic.done();
  }
  o.linear_attribute = c.get<std::string>("linear_attribute", defaults.linear_attribute);
  o.trace_vectors = c.get<std::int64_t>("trace_vectors", defaults.trace_vectors, positive);
  o.eval.max_items = c.get<std::int64_t>("max_items", defaults.eval.max_items, positive);
  o.eval.max_new_tokens = c.get<std::int64_t>("max_new_tokens", defaults.eval.max_new_tokens, positive);
  o.eval.max_length = c.get<std::int64_t>("max_length", defaults.eval.max_length, positive);
  o.eval.batch_size = c.get<std::int64_t>("batch_size", defaults.eval.batch_size, positive);
  c.done();
  for (const auto& [key, p] : {std::pair{"probe.reference", o.reference}, std::pair{"probe.target", o.target},
                               std::pair{"probe.data", o.eval.data}}) {
    LETHE_CHECK(p.empty() || fs::exists(p), "config: '", key, "' ", p.string(), ": no such file or folder");
  }
  check_probe_options(o);  // names, metrics, files: now, before any training
  return o;
}

}  // namespace lethe::probe

// The metric registry: one line per metric, in reading order (default lists, report rows), and
// the helpers aggregates share.
#include <algorithm>

#include "eval/suite.h"
#include "lethe/core/error.h"
#include "lethe/eval/metric.h"

// Each X(name) is a metric defined as `const Metric& metric_<name>()` in a file of this folder.
#define LETHE_METRICS(X)   \
  X(probability)           \
  X(probability_w_options) \
  X(rouge)                 \
  X(truth_ratio)           \
  X(model_utility)         \
  X(forget_quality)        \
  X(exact_memorization)    \
  X(extraction_strength)   \
  X(mia_loss)              \
  X(mia_zlib)              \
  X(mia_min_k)             \
  X(mia_min_k_plus_plus)   \
  X(mia_gradnorm)          \
  X(mia_reference)         \
  X(privleak)              \
  X(verbmem_rouge)         \
  X(knowmem_rouge)         \
  X(mc_accuracy)

namespace lethe::eval {

#define LETHE_DECLARE_METRIC(name) const Metric& metric_##name();
LETHE_METRICS(LETHE_DECLARE_METRIC)
#undef LETHE_DECLARE_METRIC

const std::vector<const Metric*>& all_metrics() {
#define LETHE_LIST_METRIC(name) &metric_##name(),
  static const std::vector<const Metric*> metrics = {LETHE_METRICS(LETHE_LIST_METRIC)};
#undef LETHE_LIST_METRIC
  return metrics;
}

const Metric& find_metric(const std::string& name) {
  for (const Metric* m : all_metrics()) {
    if (m->name == name) return *m;
  }
  std::string known;
  for (const Metric* m : all_metrics()) known += (known.empty() ? "" : ", ") + m->name;
  fail("unknown metric '", name, "' (known: ", known, ")");
}

std::vector<std::string> metric_suites(const std::string& metric) {
  std::vector<std::string> out;
  for (const Suite* s : all_suites()) {
    if (std::find(s->metrics.begin(), s->metrics.end(), metric) != s->metrics.end()) out.push_back(s->name);
  }
  return out;
}

std::vector<std::string> default_metrics(const std::string& suite, bool have_reference) {
  const Suite& s = find_suite(suite);
  std::vector<std::string> out;
  for (const Metric* m : all_metrics()) {
    if (std::find(s.metrics.begin(), s.metrics.end(), m->name) == s.metrics.end() || m->opt_in) continue;
    if (m->needs_reference() && !have_reference) continue;
    out.push_back(m->name);
  }
  return out;
}

void check_metrics(const std::string& suite, const std::vector<std::string>& metrics, bool have_reference) {
  const Suite& s = find_suite(suite);
  for (const auto& name : metrics) {
    const Metric& m = find_metric(name);
    LETHE_CHECK(std::find(s.metrics.begin(), s.metrics.end(), name) != s.metrics.end(), "metric '", name,
                "' is not part of the ", suite, " suite");
    LETHE_CHECK(!m.needs_reference() || have_reference, "metric '", name,
                "' needs a reference (the retain-only model): pass --reference ", s.reference_forms);
  }
}

// ---- what aggregates read -----------------------------------------------------------------------

const Json& SummaryContext::items(const std::string& split) const {
  static const Json kEmpty = Json::array();
  if (!eval.contains("splits") || !eval["splits"].contains(split)) return kEmpty;
  return eval["splits"][split]["items"];
}

std::vector<std::string> SummaryContext::splits_of(const std::string& metric) const {
  std::vector<std::string> out;
  for (const auto& sp : find_suite(suite).splits) {
    if (std::find(sp.metrics.begin(), sp.metrics.end(), metric) != sp.metrics.end()) out.push_back(sp.name);
  }
  return out;
}

std::pair<std::string, std::string> SummaryContext::mia_pair() const {
  const Suite& s = find_suite(suite);
  return {s.mia_forget, s.mia_holdout};
}

const TofuSummary& SummaryContext::tofu() const {
  if (!tofu_) tofu_ = summarize_tofu(tofu_items_from_eval(eval), nullptr, seed);
  return *tofu_;
}

bool has_field(const Json& items, const char* key) {
  return !items.empty() && std::all_of(items.begin(), items.end(), [&](const Json& it) { return it.contains(key); });
}

std::vector<double> field_values(const Json& items, const char* key) {
  std::vector<double> v;
  for (const auto& it : items) v.push_back(it.at(key).get<double>());
  return v;
}

std::vector<double> mia_values(const Json& items, const std::string& attack) {
  std::vector<double> v;
  for (const auto& it : items) {
    if (!it.contains("mia") || !it["mia"].contains(attack)) return {};
    v.push_back(it["mia"][attack].get<double>());
  }
  return v;
}

Json ci_json(const Interval& ci) { return Json::array({ci.lo, ci.hi}); }

std::uint64_t key_seed(std::uint64_t seed, const std::string& key) { return seed ^ std::hash<std::string>{}(key); }

void add_mean(Json& s, const std::string& key, const std::vector<double>& v, std::uint64_t seed) {
  if (v.empty()) return;
  s[key] = mean(v);
  s["ci"][key] = ci_json(bootstrap_mean_ci(v, key_seed(seed, key)));
}

}  // namespace lethe::eval

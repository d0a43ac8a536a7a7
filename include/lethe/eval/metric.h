// Metrics as registered code (architecture.md §3, docs/HOWTO-add-metric.md).
//
// A metric is {info, needs, per_item, aggregate}: what the engine must measure for it (`needs`),
// what it writes into each item of EVAL.json from those measurements (`per_item`), and what it
// writes into SUMMARY.json from EVAL.json (`aggregate`). Suites (eval/suites/) say on which of
// their splits each metric's per-item part runs; the evaluation derives its scoring plan from
// the union of the requested metrics' needs, split by split. Summary and report iterate this
// registry: a new metric is one file under src/lethe/eval/metrics/, one line in registry.cpp and
// its test. Torch-free: measurements arrive as SequenceScores and texts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lethe/eval/metrics.h"
#include "lethe/eval/summary.h"

namespace lethe::eval {

// What a metric needs measured, as bit flags.
enum Need : unsigned {
  kScores = 1u << 0,      // teacher-forced log-probabilities of each item's scored sequence
  kExtras = 1u << 1,      // and per-position distribution mean / sd and argmax matches
  kAlternates = 1u << 2,  // the item's alternative answers scored too (TOFU: paraphrased, perturbed)
  kGeneration = 1u << 3,  // a greedy generation from the item's prompt (skipped with generation off)
  kGradients = 1u << 4,   // the norm of the item's loss gradient (one backward pass per item)
  kReference = 1u << 5,   // the reference model's numbers: an error without --reference
};

// What the engine measured for one item of one split. What no requested metric needed is absent.
struct ItemMeasure {
  std::string split;                      // the split's name in EVAL.json
  std::size_t index = 0;
  const SequenceScore* score = nullptr;   // kScores / kExtras (extras filled only with kExtras)
  std::string_view scored_text;           // the text of the scored sequence (answer or document)
  std::vector<const SequenceScore*> alternates;  // kAlternates: [paraphrased unless options], wrong...
  bool options = false;                   // the alternates are wrong options; the answer is its own paraphrase
  const std::string* generation = nullptr;  // kGeneration
  std::string_view truth;                 // what a generation is compared with
  std::optional<double> gradient_norm;    // kGradients
  const ReferenceData* reference = nullptr;
  double min_k = 0.4;                     // k of the Min-K% attacks (--min-k)
};

// What an aggregate reads: EVAL.json and where the suite put things.
struct SummaryContext {
  SummaryContext(const Json& eval_log, std::string suite_name, const ReferenceData* ref, std::uint64_t bootstrap_seed)
      : eval(eval_log), suite(std::move(suite_name)), reference(ref), seed(bootstrap_seed) {}

  const Json& eval;
  std::string suite;
  const ReferenceData* reference = nullptr;
  std::uint64_t seed = 0;

  const Json& items(const std::string& split) const;  // an empty array when the split is absent
  // The splits of this suite on which `metric`'s per-item part runs, in the suite's order.
  std::vector<std::string> splits_of(const std::string& metric) const;
  // The forget / holdout pair the suite's membership inference compares.
  std::pair<std::string, std::string> mia_pair() const;
  // TOFU's components of this EVAL.json (eval/tofu.h), computed once.
  const TofuSummary& tofu() const;

 private:
  mutable std::optional<TofuSummary> tofu_;
};

struct SummaryKey {
  std::string key;      // written into SUMMARY.json (and its "ci")
  std::string meaning;  // one line for a reader of the report
};

struct Metric {
  std::string name;         // OpenUnlearning's where it has one
  std::string description;  // `lethe eval --list-metrics`
  unsigned needs = 0;       // Need flags
  bool opt_in = false;      // not in the suites' defaults (costly)
  std::vector<SummaryKey> keys;  // what aggregate writes, in reading order (report rows)
  void (*per_item)(const ItemMeasure& m, Json& item) = nullptr;
  void (*aggregate)(const SummaryContext& c, Json& summary) = nullptr;
  // What a reference model must compute for this metric (the reference pass's metrics).
  std::vector<std::string> from_reference;

  bool needs_reference() const { return (needs & kReference) != 0; }
};

// Every metric, in reading order (default lists, report rows).
const std::vector<const Metric*>& all_metrics();
const Metric& find_metric(const std::string& name);  // error listing the known names

// Suites by name (eval/suites/): what they are called and which metrics they compute.
std::vector<std::string> suite_names();
void check_suite(const std::string& suite);  // error listing the known suites
std::vector<std::string> metric_suites(const std::string& metric);

// The metrics a suite computes by default; those that need a reference only when one is given.
std::vector<std::string> default_metrics(const std::string& suite, bool have_reference);
// Validates a --metrics list for a suite (unknown, wrong suite, missing reference → error).
void check_metrics(const std::string& suite, const std::vector<std::string>& metrics, bool have_reference);

// ---- helpers for aggregates -------------------------------------------------------------------

// SUMMARY.json's envelope: format, suite, model, the reference, empty ci / details / omitted.
Json summary_header(const std::string& suite, const std::string& model, const ReferenceData* reference);

bool has_field(const Json& items, const char* key);                 // every item has it (and there are items)
std::vector<double> field_values(const Json& items, const char* key);
std::vector<double> mia_values(const Json& items, const std::string& attack);  // empty unless every item has it
Json ci_json(const Interval& ci);
std::uint64_t key_seed(std::uint64_t seed, const std::string& key);  // each key's own bootstrap stream
// summary[key] = mean(v) and summary.ci[key] its percentile-bootstrap interval; nothing when v is empty.
void add_mean(Json& summary, const std::string& key, const std::vector<double>& v, std::uint64_t seed);

}  // namespace lethe::eval

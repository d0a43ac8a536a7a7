// Probability, exact memorization and extraction strength of one scored sequence, and the
// exact_memorization / extraction_strength metrics.
#include <cmath>

#include "lethe/core/error.h"
#include "lethe/eval/metric.h"
#include "lethe/eval/metrics.h"

namespace lethe::eval {

double avg_nll(const SequenceScore& s) {
  LETHE_CHECK(s.size() > 0, "metric: a sequence has no scored tokens");
  double sum = 0;
  for (float lp : s.logprobs) sum += lp;
  return -sum / static_cast<double>(s.size());
}

double probability(const SequenceScore& s) { return std::exp(-avg_nll(s)); }

double exact_memorization(const SequenceScore& s) {
  LETHE_CHECK(s.argmax_hit.size() == s.size() && s.size() > 0, "exact_memorization needs argmax matches");
  double hits = 0;
  for (auto h : s.argmax_hit) hits += h ? 1 : 0;
  return hits / static_cast<double>(s.size());
}

double extraction_strength(const SequenceScore& s) {
  LETHE_CHECK(s.argmax_hit.size() == s.size() && s.size() > 0, "extraction_strength needs argmax matches");
  std::size_t run = 0;  // the matched suffix
  while (run < s.size() && s.argmax_hit[s.size() - 1 - run]) ++run;
  return static_cast<double>(run) / static_cast<double>(s.size());
}

namespace {

// The mean over the first split the suite computes the metric on (TOFU: forget; MUSE: VerbMem's
// forget text), under the metric's own name.
void mean_over_first_split(const SummaryContext& c, Json& s, const char* name) {
  const auto splits = c.splits_of(name);
  if (splits.empty()) return;
  const Json& items = c.items(splits.front());
  if (has_field(items, name)) add_mean(s, name, field_values(items, name), c.seed);
}

}  // namespace

const Metric& metric_exact_memorization() {
  static const Metric m{
      "exact_memorization", "share of answer tokens the model predicts exactly (teacher forced)", kScores | kExtras,
      false, {{"exact_memorization", "share of forget answer tokens predicted exactly"}},
      [](const ItemMeasure& x, Json& it) { it["exact_memorization"] = exact_memorization(*x.score); },
      [](const SummaryContext& c, Json& s) { mean_over_first_split(c, s, "exact_memorization"); }};
  return m;
}

const Metric& metric_extraction_strength() {
  static const Metric m{
      "extraction_strength", "longest predicted answer suffix, as a share of the answer", kScores | kExtras, false,
      {{"extraction_strength", "longest predicted suffix of forget answers (0 = nothing extracted)"}},
      [](const ItemMeasure& x, Json& it) { it["extraction_strength"] = extraction_strength(*x.score); },
      [](const SummaryContext& c, Json& s) { mean_over_first_split(c, s, "extraction_strength"); }};
  return m;
}

}  // namespace lethe::eval

// Probability, exact memorization and extraction strength of one scored sequence.
#include <cmath>

#include "lethe/core/error.h"
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

}  // namespace lethe::eval

// The metric registry: names (OpenUnlearning's), which suites compute them, what they need.
#include <algorithm>

#include "lethe/core/error.h"
#include "lethe/eval/metrics.h"

namespace lethe::eval {

const std::vector<MetricInfo>& metric_infos() {
  static const std::vector<MetricInfo> infos = {
      {"probability", "per-token geometric-mean probability of the answer (forget, retain)", {"tofu"}},
      {"probability_w_options", "answer probability normalised against the wrong options (real authors, world facts)", {"tofu"}},
      {"rouge", "ROUGE-L recall (stemmed) of the greedy answer vs the ground truth", {"tofu"}},
      {"truth_ratio", "P(wrong answers) / P(paraphrased answer), aggregated per split", {"tofu"}},
      {"model_utility", "harmonic mean of the nine retain / real-author / world-fact components", {"tofu"}},
      {"forget_quality", "KS p-value of forget truth ratios against the reference model's", {"tofu"}, true},
      {"exact_memorization", "share of answer tokens the model predicts exactly (teacher forced)", {"tofu", "muse"}},
      {"extraction_strength", "longest predicted answer suffix, as a share of the answer", {"tofu", "muse"}},
      {"mia_loss", "LOSS attack: average NLL", {"tofu", "muse"}},
      {"mia_zlib", "ZLib attack: average NLL / zlib-compressed size of the text", {"tofu", "muse"}},
      {"mia_min_k", "Min-K% attack (k = 0.4): mean of the lowest log-probabilities", {"tofu", "muse"}},
      {"mia_min_k_plus_plus", "Min-K%++ attack: Min-K% over log-probabilities standardised by the vocabulary distribution", {"tofu", "muse"}},
      {"mia_gradnorm", "GradNorm attack: L2 norm of the loss gradient over all parameters (one backward pass per item)", {"tofu", "muse"}, false, true},
      {"mia_reference", "Reference attack: NLL minus the reference model's NLL (needs a reference model folder)", {"tofu", "muse"}, true},
      {"privleak", "(AUC − reference AUC) / reference AUC · 100 for the Min-K% attack, forget vs holdout", {"tofu", "muse"}, true},
      {"verbmem_rouge", "VerbMem: ROUGE-L F1 of 128 greedy tokens after each forget prefix", {"muse"}},
      {"knowmem_rouge", "KnowMem: ROUGE-L F1 of few-shot greedy answers (forget and retain QA)", {"muse"}},
  };
  return infos;
}

const MetricInfo& metric_info(const std::string& name) {
  for (const auto& m : metric_infos()) {
    if (m.name == name) return m;
  }
  std::string known;
  for (const auto& m : metric_infos()) known += (known.empty() ? "" : ", ") + m.name;
  fail("unknown metric '", name, "' (known: ", known, ")");
}

std::vector<std::string> default_metrics(const std::string& suite, bool have_reference) {
  std::vector<std::string> out;
  for (const auto& m : metric_infos()) {
    if (std::find(m.suites.begin(), m.suites.end(), suite) == m.suites.end() || m.opt_in) continue;
    if (m.needs_reference && !have_reference) continue;
    out.push_back(m.name);
  }
  return out;
}

void check_metrics(const std::string& suite, const std::vector<std::string>& metrics, bool have_reference) {
  for (const auto& name : metrics) {
    const MetricInfo& m = metric_info(name);
    LETHE_CHECK(std::find(m.suites.begin(), m.suites.end(), suite) != m.suites.end(), "metric '", name,
                "' is not part of the ", suite, " suite");
    LETHE_CHECK(!m.needs_reference || have_reference, "metric '", name,
                "' needs a reference (the retain-only model): pass --reference DIR|EVAL.json",
                suite == "tofu" ? "|legacy.json" : "");
  }
}

}  // namespace lethe::eval

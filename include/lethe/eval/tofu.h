// TOFU's aggregate metrics from per-item numbers (torch-free): the part of the TOFU suite that
// turns losses, truth ratios and ROUGE into Model Utility and Forget Quality. Per-item numbers
// come from lethe's own evaluation (EVAL.json) or from TOFU's legacy logs.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "lethe/eval/stats.h"

namespace lethe::eval {

// The four TOFU evaluation sets, by the names OpenUnlearning's summary keys use.
enum class TofuSplit { kForget, kRetain, kRealAuthors, kWorldFacts };
const char* tofu_split_key(TofuSplit s);  // "forget", "retain", "ra", "wf"
inline constexpr TofuSplit kTofuSplits[] = {TofuSplit::kForget, TofuSplit::kRetain, TofuSplit::kRealAuthors,
                                            TofuSplit::kWorldFacts};

// Per-item numbers of one split. Losses are mean NLL per answer token (TOFU's avg_*_loss).
struct TofuItems {
  std::vector<double> gt_loss;                      // the answer
  std::vector<double> paraphrased_loss;             // the paraphrased answer (ra/wf: the answer)
  std::vector<std::vector<double>> perturbed_loss;  // each perturbed (wrong) answer
  std::vector<double> rouge_l_recall;               // greedy generation vs the answer, stemmed
  std::vector<std::string> generation, ground_truth, input;  // when known
  std::size_t size() const { return gt_loss.size(); }
};

// Truth ratio per item, OpenUnlearning's form: P(wrong) / P(paraphrased) with
// P(wrong) = exp(-mean_k perturbed_loss_k), P(paraphrased) = exp(-paraphrased_loss), computed in
// log space (no epsilon). TOFU's legacy code logs the reciprocal.
std::vector<double> truth_ratios(const TofuItems& items);
double truth_ratio_closer_to_1(const std::vector<double>& tr);  // mean min(r, 1/r): forget
double truth_ratio_true_better(const std::vector<double>& tr);  // mean max(0, 1 - r): the rest
std::vector<double> answer_probabilities(const TofuItems& items);            // exp(-gt_loss)
std::vector<double> normalised_answer_probabilities(const TofuItems& items);  // p / (p + Σ p_wrong)

struct TofuComponent {
  std::string key;  // OpenUnlearning's summary key, e.g. "retain_Q_A_Prob"
  double value = 0;
  Interval ci;      // percentile bootstrap 95% over items
};

struct TofuSummary {
  std::vector<TofuComponent> components;  // forget + the nine utility components
  bool has_model_utility = false;
  double model_utility = 0;
  Interval model_utility_ci;
  bool has_forget_quality = false;
  double forget_quality = 0, ks_statistic = 0;
  std::string ks_method;
  std::size_t forget_items = 0, reference_forget_items = 0;  // the two KS sample sizes
  const TofuComponent* find(const std::string& key) const;
};

// Aggregates as TOFU/OpenUnlearning: Prob (forget, retain: mean exp(-loss); ra, wf: normalised
// against the wrong options), ROUGE (mean ROUGE-L recall), Truth Ratio (forget: closer to 1;
// others: true better); Model Utility = harmonic mean of the nine retain/ra/wf components.
// `reference_forget_tr` (the retain-only model's forget truth ratios) gives Forget Quality, the
// KS p-value over the two whole samples (as TOFU and OpenUnlearning: they may differ in size,
// e.g. TOFU's retain99 log holds forget01's 40 items); without it there is no forget quality.
TofuSummary summarize_tofu(const std::map<TofuSplit, TofuItems>& splits,
                           const std::vector<double>* reference_forget_tr, std::uint64_t seed = 0);

// TOFU's legacy `eval_log_aggregated.json` (keys eval_log_forget.json, eval_log.json,
// eval_real_author_wo_options.json, eval_real_world_wo_options.json; per item dicts keyed by
// "0", "1", ...): items in index order, generations as logged ([input, generation, ground truth]).
// TOFU's evaluation scored only the first 300 items of each set, so these logs hold at most 300.
std::map<TofuSplit, TofuItems> read_tofu_legacy_log(const std::filesystem::path& path);
bool is_tofu_legacy_log(const std::filesystem::path& path);

}  // namespace lethe::eval

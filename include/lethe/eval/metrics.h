// Per-item metric formulas over scored sequences (the registry of metrics built on them:
// eval/metric.h).
// Torch-free: the scorer and generator produce SequenceScores and texts; everything here is
// arithmetic on them, tested against hand-computed values. Formulas: docs/metrics.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::eval {

// The scored tokens of one sequence (the answer / continuation / text), in order.
struct SequenceScore {
  std::vector<float> logprobs;                    // log p(y_t | x, y_<t)
  std::vector<float> mean_logprob, std_logprob;   // E_p[log p], sd_p[log p] per position (Min-K%++)
  std::vector<std::uint8_t> argmax_hit;           // argmax == y_t (teacher forced)
  std::size_t size() const { return logprobs.size(); }
};

double avg_nll(const SequenceScore& s);      // −mean log p: TOFU's avg loss
double probability(const SequenceScore& s);  // exp(−avg_nll): per-token geometric mean
// Share of positions where the teacher-forced argmax is the target (OpenUnlearning's
// exact_memorization).
double exact_memorization(const SequenceScore& s);
// 1 − k/|y| for the smallest k such that the argmax predictions match y from position k to the
// end; 0 when even the last token is not predicted. (OpenUnlearning's loop leaves k = |y| − 1
// when nothing matches, reporting 1/|y| for a model that extracted nothing.)
double extraction_strength(const SequenceScore& s);

// Membership-inference scores, oriented "higher = looks less like training data".
double mia_loss(const SequenceScore& s);                              // avg NLL
double mia_zlib(const SequenceScore& s, std::string_view text);       // avg NLL / zlib bytes of the text
double mia_min_k(const SequenceScore& s, double k);                   // −mean of the k·n lowest log p
double mia_min_k_plus_plus(const SequenceScore& s, double k);         // the same on (log p − μ)/σ
double mia_reference(const SequenceScore& s, const SequenceScore& reference);  // avg NLL − reference's
std::size_t zlib_compressed_size(std::string_view text);  // len(zlib.compress(text)) at level 6

// AUC of an attack: P(score(forget item) > score(holdout item)) + ties/2 — MUSE's and
// OpenUnlearning's orientation, in which a model that memorised the forget set scores ≈ 0, one
// that never saw it ≈ 0.5, and one that over-forgot > 0.5.
double mia_auc(const std::vector<double>& forget_scores, const std::vector<double>& holdout_scores);
// (auc − reference_auc) / reference_auc · 100. reference_auc must be given and > 0.
double privleak(double auc, double reference_auc);

}  // namespace lethe::eval

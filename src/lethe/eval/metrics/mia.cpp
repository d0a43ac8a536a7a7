// Membership-inference scores and the AUC / privleak built on them.
#include <zlib.h>

#include <algorithm>
#include <cmath>

#include "lethe/core/error.h"
#include "lethe/eval/metrics.h"
#include "lethe/eval/stats.h"

namespace lethe::eval {
namespace {

// −mean of the ⌊k·n⌋ (at least 1) smallest values, as OpenUnlearning's Min-K% attacks.
double neg_mean_lowest(std::vector<double> v, double k) {
  LETHE_CHECK(k > 0 && k <= 1, "Min-K%: k must be in (0, 1], got ", k);
  LETHE_CHECK(!v.empty(), "Min-K%: a sequence has no scored tokens");
  const std::size_t m = std::max<std::size_t>(1, static_cast<std::size_t>(static_cast<double>(v.size()) * k));
  std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(m), v.end());
  double sum = 0;
  for (std::size_t i = 0; i < m; ++i) sum += v[i];
  return -sum / static_cast<double>(m);
}

}  // namespace

double mia_loss(const SequenceScore& s) { return avg_nll(s); }

std::size_t zlib_compressed_size(std::string_view text) {
  uLongf size = compressBound(static_cast<uLong>(text.size()));
  std::vector<Bytef> buf(size);
  const int rc = compress2(buf.data(), &size, reinterpret_cast<const Bytef*>(text.data()),
                           static_cast<uLong>(text.size()), Z_DEFAULT_COMPRESSION);
  LETHE_CHECK(rc == Z_OK, "zlib compress failed (", rc, ")");
  return size;
}

double mia_zlib(const SequenceScore& s, std::string_view text) {
  return avg_nll(s) / static_cast<double>(zlib_compressed_size(text));
}

double mia_min_k(const SequenceScore& s, double k) {
  return neg_mean_lowest(std::vector<double>(s.logprobs.begin(), s.logprobs.end()), k);
}

double mia_min_k_plus_plus(const SequenceScore& s, double k) {
  LETHE_CHECK(s.mean_logprob.size() == s.size() && s.std_logprob.size() == s.size(),
              "Min-K%++ needs the distribution statistics of every position");
  std::vector<double> z;
  for (std::size_t i = 0; i < s.size(); ++i) {
    // σ = 0 only for a one-hot distribution; its z-score is then 0 rather than ±inf.
    const double sd = s.std_logprob[i];
    z.push_back(sd > 0 ? (s.logprobs[i] - s.mean_logprob[i]) / sd : 0.0);
  }
  return neg_mean_lowest(std::move(z), k);
}

double mia_reference(const SequenceScore& s, const SequenceScore& reference) {
  return avg_nll(s) - avg_nll(reference);
}

double mia_auc(const std::vector<double>& forget_scores, const std::vector<double>& holdout_scores) {
  return roc_auc(/*negatives=*/holdout_scores, /*positives=*/forget_scores);
}

double privleak(double auc, double reference_auc) {
  LETHE_CHECK(reference_auc > 0, "privleak: the reference AUC must be > 0, got ", reference_auc);
  return (auc - reference_auc) / reference_auc * 100.0;
}

}  // namespace lethe::eval

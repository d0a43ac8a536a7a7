// Statistics the metrics are built on, each matching the reference library the field's numbers
// come from (scipy / scikit-learn / numpy): see docs/metrics.md for every formula.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lethe::eval {

struct KsResult {
  double statistic = 0;  // D = sup |F1 - F2|
  double pvalue = 1;
  std::string method;    // "exact" or "asymp"
};

// Two-sample two-sided Kolmogorov–Smirnov test as scipy.stats.ks_2samp(a, b) with
// method="auto": exact when max(n1, n2) <= 10000 (equal sizes: the closed-form sum over paths
// outside the square; unequal: the Hodges/Viehmann inside-paths recursion), otherwise the
// asymptotic Kolmogorov distribution of sqrt(n1 n2 / (n1 + n2)) D. Both samples must be
// non-empty and finite.
KsResult ks_2samp(std::vector<double> a, std::vector<double> b);

// Area under the ROC curve with `positives` as the positive class, scores higher = more
// positive: P(pos > neg) + P(pos == neg) / 2, which is what sklearn's roc_auc_score computes
// (ties collapse into one ROC step). Both classes must be non-empty.
double roc_auc(const std::vector<double>& negatives, const std::vector<double>& positives);

struct RocPoint {
  double fpr, tpr;
};
// The ROC curve (distinct thresholds, from (0,0) to (1,1)), for plots.
std::vector<RocPoint> roc_curve(const std::vector<double>& negatives, const std::vector<double>& positives);

double mean(const std::vector<double>& v);
// scipy.stats.hmean: n / Σ 1/x; 0 if any value is 0. Values must be >= 0.
double harmonic_mean(const std::vector<double>& v);
// numpy.percentile with linear interpolation, q in [0, 100].
double percentile(std::vector<double> v, double q);

struct Interval {
  double lo = 0, hi = 0;
};
// Percentile bootstrap: `resamples` draws of n indices with replacement (a fixed generator
// seeded by `seed`, so the same inputs give the same interval everywhere), the statistic of
// each draw, and its (1-level)/2 and (1+level)/2 percentiles. `statistic` receives the drawn
// indices.
Interval bootstrap_ci(std::size_t n, const std::function<double(const std::vector<std::size_t>&)>& statistic,
                      std::uint64_t seed, int resamples = 1000, double level = 0.95);
// The same over several groups resampled independently (e.g. the splits of a suite, or the two
// samples of a test): `statistic` receives one index draw per group.
Interval bootstrap_ci_groups(const std::vector<std::size_t>& sizes,
                             const std::function<double(const std::vector<std::vector<std::size_t>>&)>& statistic,
                             std::uint64_t seed, int resamples = 1000, double level = 0.95);
// The same for the mean of `values`.
Interval bootstrap_mean_ci(const std::vector<double>& values, std::uint64_t seed, int resamples = 1000,
                           double level = 0.95);

}  // namespace lethe::eval

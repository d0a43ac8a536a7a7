#include "lethe/eval/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "lethe/core/error.h"
#include "lethe/core/random.h"

namespace lethe::eval {
namespace {

constexpr std::size_t kMaxExactN = 10000;  // scipy's MAX_AUTO_N

void check_sample(const std::vector<double>& v, const char* what) {
  LETHE_CHECK(!v.empty(), "ks_2samp: the ", what, " sample is empty");
  for (double x : v) LETHE_CHECK(std::isfinite(x), "ks_2samp: the ", what, " sample holds a non-finite value ", x);
}

// P(D >= h/n) for two samples of n each: 2 Σ_k (-1)^{k+1} C(2n, n - k h) / C(2n, n), summed
// Horner-style from the innermost term (as scipy does, to avoid cancellation).
double prob_outside_square(std::int64_t n, std::int64_t h) {
  double p = 0.0;
  for (std::int64_t k = n / h; k >= 0; --k) {
    double p1 = 1.0;
    for (std::int64_t j = 0; j < h; ++j) {
      p1 = static_cast<double>(n - k * h - j) * p1 / static_cast<double>(n + k * h + j + 1);
    }
    p = p1 * (1.0 - p);
  }
  return 2.0 * p;
}

// P(D >= h/lcm) for samples of m and n: the share of lattice paths (0,0)->(m,n) that leave the
// band |x/m - y/n| < h/lcm, by the recursion on "1 - share inside" (Viehmann 2021): at an
// inside point q(i,j) = (i q(i-1,j) + j q(i,j-1)) / (i+j), outside points are 1.
double prob_outside_band(std::int64_t m, std::int64_t n, std::int64_t g, std::int64_t h) {
  if (m < n) std::swap(m, n);
  const std::int64_t mg = m / g, ng = n / g;
  auto inside = [&](std::int64_t i, std::int64_t j) { return std::llabs(mg * j - ng * i) < h; };
  std::vector<double> q(static_cast<std::size_t>(n + 1));
  for (std::int64_t j = 0; j <= n; ++j) q[static_cast<std::size_t>(j)] = inside(0, j) ? 0.0 : 1.0;
  for (std::int64_t i = 1; i <= m; ++i) {
    double below = 0.0;
    for (std::int64_t j = 0; j <= n; ++j) {
      double& cell = q[static_cast<std::size_t>(j)];
      cell = inside(i, j) ? (cell * static_cast<double>(i) + below * static_cast<double>(j)) / static_cast<double>(i + j)
                          : 1.0;
      below = cell;
    }
  }
  return q[static_cast<std::size_t>(n)];
}

// Kolmogorov's limiting survival function Q(λ) = 2 Σ_{k>=1} (-1)^{k-1} exp(-2 k² λ²).
double kolmogorov_sf(double lambda) {
  if (lambda <= 0) return 1.0;
  if (lambda < 0.2) return 1.0;  // Q(0.2) = 1 - 5e-13, and the series converges slowly below
  double s = 0;
  for (int k = 1; k <= 100; ++k) {
    const double term = std::exp(-2.0 * k * k * lambda * lambda);
    s += (k % 2 ? 1.0 : -1.0) * term;
    if (term < 1e-18) break;
  }
  return std::clamp(2.0 * s, 0.0, 1.0);
}

}  // namespace

KsResult ks_2samp(std::vector<double> a, std::vector<double> b) {
  check_sample(a, "first");
  check_sample(b, "second");
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  const auto n1 = static_cast<std::int64_t>(a.size()), n2 = static_cast<std::int64_t>(b.size());
  // D over every observed value x: F1(x) - F2(x) with right-continuous ECDFs (searchsorted
  // side='right').
  double max_s = -1.0, min_s = 2.0;
  std::size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    const double x = j >= b.size() || (i < a.size() && a[i] <= b[j]) ? a[i] : b[j];
    while (i < a.size() && a[i] <= x) ++i;
    while (j < b.size() && b[j] <= x) ++j;
    const double diff = static_cast<double>(i) / static_cast<double>(n1) - static_cast<double>(j) / static_cast<double>(n2);
    max_s = std::max(max_s, diff);
    min_s = std::min(min_s, diff);
  }
  const double neg = std::clamp(-min_s, 0.0, 1.0);
  double d = neg > max_s ? neg : max_s;

  KsResult r;
  const std::int64_t g = std::gcd(n1, n2);
  if (static_cast<std::size_t>(std::max(n1, n2)) <= kMaxExactN) {
    const std::int64_t lcm = (n1 / g) * n2;
    const auto h = static_cast<std::int64_t>(std::nearbyint(d * static_cast<double>(lcm)));
    d = static_cast<double>(h) / static_cast<double>(lcm);
    double p = 1.0;
    if (h != 0) p = n1 == n2 ? prob_outside_square(n1, h) : prob_outside_band(n1, n2, g, h);
    if (std::isfinite(p) && p >= 0.0 && p <= 1.0) {
      r.statistic = d;
      r.pvalue = std::clamp(p, 0.0, 1.0);
      r.method = "exact";
      return r;
    }
  }
  const double m = static_cast<double>(std::max(n1, n2)), n = static_cast<double>(std::min(n1, n2));
  const double en = m * n / (m + n);
  r.statistic = d;
  r.pvalue = kolmogorov_sf(std::sqrt(en) * d);
  r.method = "asymp";
  return r;
}

double roc_auc(const std::vector<double>& negatives, const std::vector<double>& positives) {
  LETHE_CHECK(!negatives.empty() && !positives.empty(), "roc_auc: both classes need at least one score (got ",
              negatives.size(), " negative, ", positives.size(), " positive)");
  std::vector<std::pair<double, bool>> all;
  all.reserve(negatives.size() + positives.size());
  for (double x : negatives) all.emplace_back(x, false);
  for (double x : positives) all.emplace_back(x, true);
  for (const auto& [x, _] : all) LETHE_CHECK(!std::isnan(x), "roc_auc: a score is NaN");
  std::sort(all.begin(), all.end(), [](const auto& l, const auto& r) { return l.first < r.first; });
  // Mann–Whitney U with mid-ranks for ties.
  double rank_sum = 0;
  for (std::size_t k = 0; k < all.size();) {
    std::size_t e = k;
    while (e < all.size() && all[e].first == all[k].first) ++e;
    const double mid = (static_cast<double>(k + 1) + static_cast<double>(e)) / 2.0;
    for (std::size_t t = k; t < e; ++t) {
      if (all[t].second) rank_sum += mid;
    }
    k = e;
  }
  const double np = static_cast<double>(positives.size()), nn = static_cast<double>(negatives.size());
  return (rank_sum - np * (np + 1) / 2.0) / (np * nn);
}

std::vector<RocPoint> roc_curve(const std::vector<double>& negatives, const std::vector<double>& positives) {
  LETHE_CHECK(!negatives.empty() && !positives.empty(), "roc_curve: both classes need at least one score");
  std::vector<std::pair<double, bool>> all;
  for (double x : negatives) all.emplace_back(x, false);
  for (double x : positives) all.emplace_back(x, true);
  std::sort(all.begin(), all.end(), [](const auto& l, const auto& r) { return l.first > r.first; });
  std::vector<RocPoint> pts{{0.0, 0.0}};
  double tp = 0, fp = 0;
  for (std::size_t k = 0; k < all.size();) {
    std::size_t e = k;
    while (e < all.size() && all[e].first == all[k].first) {
      (all[e].second ? tp : fp) += 1;
      ++e;
    }
    pts.push_back({fp / static_cast<double>(negatives.size()), tp / static_cast<double>(positives.size())});
    k = e;
  }
  return pts;
}

double mean(const std::vector<double>& v) {
  LETHE_CHECK(!v.empty(), "mean of an empty set");
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double harmonic_mean(const std::vector<double>& v) {
  LETHE_CHECK(!v.empty(), "harmonic mean of an empty set");
  double s = 0;
  for (double x : v) {
    LETHE_CHECK(x >= 0, "harmonic mean: negative value ", x);
    if (x == 0) return 0.0;
    s += 1.0 / x;
  }
  return static_cast<double>(v.size()) / s;
}

double percentile(std::vector<double> v, double q) {
  LETHE_CHECK(!v.empty(), "percentile of an empty set");
  LETHE_CHECK(q >= 0 && q <= 100, "percentile: q must be in [0, 100], got ", q);
  std::sort(v.begin(), v.end());
  const double pos = q / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  const double t = pos - static_cast<double>(lo), diff = v[hi] - v[lo];
  // numpy's _lerp: from the nearer end, so the result is monotone and exact at t = 1.
  return t >= 0.5 ? v[hi] - diff * (1.0 - t) : v[lo] + diff * t;
}

Interval bootstrap_ci_groups(const std::vector<std::size_t>& sizes,
                             const std::function<double(const std::vector<std::vector<std::size_t>>&)>& statistic,
                             std::uint64_t seed, int resamples, double level) {
  LETHE_CHECK(!sizes.empty(), "bootstrap without data");
  for (auto n : sizes) LETHE_CHECK(n > 0, "bootstrap of an empty set");
  LETHE_CHECK(resamples > 0 && level > 0 && level < 1, "bootstrap: bad resamples or level");
  SplitMix64 rng(seed ^ 0x626f6f7473747270ULL);
  std::vector<double> stats;
  stats.reserve(static_cast<std::size_t>(resamples));
  std::vector<std::vector<std::size_t>> idx;
  for (auto n : sizes) idx.emplace_back(n);
  for (int r = 0; r < resamples; ++r) {
    for (std::size_t g = 0; g < sizes.size(); ++g) {
      for (auto& k : idx[g]) k = rng.below(sizes[g]);
    }
    stats.push_back(statistic(idx));
  }
  return {percentile(stats, 50.0 * (1.0 - level)), percentile(stats, 50.0 * (1.0 + level))};
}

Interval bootstrap_ci(std::size_t n, const std::function<double(const std::vector<std::size_t>&)>& statistic,
                      std::uint64_t seed, int resamples, double level) {
  return bootstrap_ci_groups(
      {n}, [&](const std::vector<std::vector<std::size_t>>& idx) { return statistic(idx[0]); }, seed, resamples,
      level);
}

Interval bootstrap_mean_ci(const std::vector<double>& values, std::uint64_t seed, int resamples, double level) {
  return bootstrap_ci(
      values.size(),
      [&](const std::vector<std::size_t>& idx) {
        double s = 0;
        for (auto k : idx) s += values[k];
        return s / static_cast<double>(idx.size());
      },
      seed, resamples, level);
}

}  // namespace lethe::eval

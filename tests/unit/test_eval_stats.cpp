// Statistics, ROUGE and TOFU aggregation against independent computations: brute-force
// enumeration for KS p-values, hand-worked AUC/percentile/ROUGE cases, NLTK's documented stems,
// and TOFU's own per-item logs and aggregates (../shared/data/tofu/reference).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>

#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/eval/rouge.h"
#include "lethe/eval/stats.h"
#include "lethe/eval/tofu.h"
#include "support/fixtures.h"

namespace lethe::eval {
namespace {

// KS statistic from scratch: max over all points of |F1 - F2|.
double ks_d(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> all = a;
  all.insert(all.end(), b.begin(), b.end());
  double d = 0;
  for (double x : all) {
    const double f1 = static_cast<double>(std::count_if(a.begin(), a.end(), [&](double v) { return v <= x; })) / a.size();
    const double f2 = static_cast<double>(std::count_if(b.begin(), b.end(), [&](double v) { return v <= x; })) / b.size();
    d = std::max(d, std::fabs(f1 - f2));
  }
  return d;
}

// Exact p-value by enumerating every way to split the pooled (distinct) values into samples of
// n1 and n2: the permutation distribution of D under H0.
double ks_p_bruteforce(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> pool = a;
  pool.insert(pool.end(), b.begin(), b.end());
  const double d_obs = ks_d(a, b);
  const std::size_t n = pool.size(), n1 = a.size();
  std::vector<bool> pick(n, false);
  std::fill(pick.begin(), pick.begin() + static_cast<std::ptrdiff_t>(n1), true);
  std::size_t total = 0, extreme = 0;
  do {
    std::vector<double> x, y;
    for (std::size_t i = 0; i < n; ++i) (pick[i] ? x : y).push_back(pool[i]);
    ++total;
    if (ks_d(x, y) >= d_obs - 1e-12) ++extreme;
  } while (std::prev_permutation(pick.begin(), pick.end()));
  return static_cast<double>(extreme) / static_cast<double>(total);
}

TEST(Stats, KsSeparatedSamplesHasClosedForm) {
  // D = 1 for n = m: p = 2 / C(2n, n). n = 3: 2/20; n = 5: 2/252.
  auto r = ks_2samp({1, 2, 3}, {4, 5, 6});
  EXPECT_DOUBLE_EQ(r.statistic, 1.0);
  EXPECT_NEAR(r.pvalue, 0.1, 1e-15);
  EXPECT_EQ(r.method, "exact");
  EXPECT_NEAR(ks_2samp({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}).pvalue, 2.0 / 252.0, 1e-15);
  EXPECT_DOUBLE_EQ(ks_2samp({1, 2, 3}, {1, 2, 3}).pvalue, 1.0);
}

TEST(Stats, KsExactMatchesEnumeration) {
  std::mt19937 gen(7);
  std::normal_distribution<double> nd;
  const std::pair<int, int> sizes[] = {{5, 5}, {6, 6}, {4, 7}, {3, 8}, {6, 8}, {7, 5}};
  for (const auto& [n1, n2] : sizes) {
    for (int rep = 0; rep < 3; ++rep) {
      std::vector<double> a, b;
      for (int i = 0; i < n1; ++i) a.push_back(nd(gen) + 0.7 * rep);
      for (int i = 0; i < n2; ++i) b.push_back(nd(gen));
      const auto r = ks_2samp(a, b);
      EXPECT_NEAR(r.statistic, ks_d(a, b), 1e-12) << n1 << "x" << n2;
      EXPECT_NEAR(r.pvalue, ks_p_bruteforce(a, b), 1e-12) << n1 << "x" << n2 << " rep " << rep;
    }
  }
}

TEST(Stats, KsAsymptoticBeyondTenThousand) {
  // Two samples of 20000 shifted so that D = 200/20000 = 0.01: λ = sqrt(20000·20000/40000)·D = 1,
  // and Kolmogorov's Q(1) = 2 (e^-2 - e^-8 + e^-18 - ...) = 0.26999967167735456.
  std::vector<double> a, b;
  for (int i = 0; i < 20000; ++i) a.push_back(i);
  for (int i = 0; i < 20000; ++i) b.push_back(i + 199.5);
  const auto r = ks_2samp(a, b);
  EXPECT_EQ(r.method, "asymp");
  EXPECT_NEAR(r.statistic, 0.01, 1e-15);
  EXPECT_NEAR(r.pvalue, 0.26999967167735456, 1e-12);
}

TEST(Stats, KsRejectsEmptyOrNonFinite) {
  EXPECT_THROW(ks_2samp({}, {1.0}), Error);
  EXPECT_THROW(ks_2samp({1.0, NAN}, {1.0}), Error);
}

TEST(Stats, RocAucHandWorked) {
  // scikit-learn's docstring example: y = [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8] -> 0.75.
  EXPECT_DOUBLE_EQ(roc_auc({0.1, 0.4}, {0.35, 0.8}), 0.75);
  // Ties count one half: pairs (2>1) (2=2) (3>1) (3>2) -> 3.5 / 4.
  EXPECT_DOUBLE_EQ(roc_auc({1, 2}, {2, 3}), 0.875);
  EXPECT_DOUBLE_EQ(roc_auc({0.5, 0.5}, {0.5}), 0.5);
  EXPECT_DOUBLE_EQ(roc_auc({3, 4}, {1, 2}), 0.0);
  EXPECT_THROW(roc_auc({}, {1.0}), Error);
  // The curve's trapezoids give the same area.
  const std::vector<double> neg = {0.1, 0.4, 0.4, 0.2, 0.9}, pos = {0.35, 0.8, 0.4, 0.95};
  auto pts = roc_curve(neg, pos);
  double area = 0;
  for (std::size_t i = 1; i < pts.size(); ++i) area += (pts[i].fpr - pts[i - 1].fpr) * (pts[i].tpr + pts[i - 1].tpr) / 2;
  EXPECT_NEAR(area, roc_auc(neg, pos), 1e-15);
  EXPECT_DOUBLE_EQ(pts.back().fpr, 1.0);
  EXPECT_DOUBLE_EQ(pts.back().tpr, 1.0);
}

TEST(Stats, MeansAndPercentiles) {
  EXPECT_DOUBLE_EQ(harmonic_mean({1, 2, 4}), 12.0 / 7.0);
  EXPECT_DOUBLE_EQ(harmonic_mean({1, 0, 4}), 0.0);
  EXPECT_THROW(harmonic_mean({}), Error);
  // numpy.percentile([1, 2, 3, 4], q): 25 -> 1.75, 50 -> 2.5, 100 -> 4.
  EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 25), 1.75);
  EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile({4, 1, 3, 2}, 100), 4.0);
  EXPECT_DOUBLE_EQ(percentile({7}, 2.5), 7.0);
}

TEST(Stats, BootstrapIsSeededAndCoversTheMean) {
  std::mt19937 gen(3);
  std::normal_distribution<double> nd;
  std::vector<double> v;
  for (int i = 0; i < 1000; ++i) v.push_back(nd(gen));
  const Interval a = bootstrap_mean_ci(v, 1), b = bootstrap_mean_ci(v, 1), c = bootstrap_mean_ci(v, 2);
  EXPECT_EQ(a.lo, b.lo);
  EXPECT_EQ(a.hi, b.hi);
  EXPECT_NE(a.lo, c.lo);
  const double m = mean(v);
  EXPECT_LT(a.lo, m);
  EXPECT_GT(a.hi, m);
  // Width of a 95% interval of a mean of 1000 unit-variance values: 2 · 1.96 / sqrt(1000) = 0.124.
  EXPECT_NEAR(a.hi - a.lo, 0.124, 0.02);
  const Interval k = bootstrap_mean_ci({2.5, 2.5, 2.5}, 0);
  EXPECT_DOUBLE_EQ(k.lo, 2.5);
  EXPECT_DOUBLE_EQ(k.hi, 2.5);
}

TEST(Rouge, PorterStemsAsNltk) {
  // NLTK's stem howto (PorterStemmer(), NLTK_EXTENSIONS).
  const std::pair<const char*, const char*> cases[] = {
      {"caresses", "caress"}, {"flies", "fli"},    {"dies", "die"},       {"mules", "mule"},
      {"denied", "deni"},     {"died", "die"},     {"agreed", "agre"},    {"owned", "own"},
      {"humbled", "humbl"},   {"sized", "size"},   {"meeting", "meet"},   {"stating", "state"},
      {"siezing", "siez"},    {"itemization", "item"}, {"sensational", "sensat"},
      {"traditional", "tradit"}, {"reference", "refer"}, {"colonizer", "colon"}, {"plotted", "plot"},
      {"running", "run"},     {"generously", "gener"}, {"dying", "die"},  {"skies", "sky"},
      {"happy", "happi"},     {"enjoy", "enjoy"},  {"hopping", "hop"},    {"falling", "fall"},
      {"filing", "file"},     {"1990s", "1990"},   {"is", "is"}};
  for (const auto& [w, s] : cases) EXPECT_EQ(porter_stem(w), s) << w;
}

TEST(Rouge, TokenizerAndScores) {
  EXPECT_EQ(rouge_tokenize("The cat's 2 Hats—naïve!", false),
            (std::vector<std::string>{"the", "cat", "s", "2", "hats", "na", "ve"}));
  EXPECT_EQ(rouge_tokenize("running cats", true), (std::vector<std::string>{"run", "cat"}));
  auto r = rouge("The cat sat on the mat", "the cat is on the mat", false);
  EXPECT_DOUBLE_EQ(r.rouge_l.recall, 5.0 / 6.0);
  EXPECT_DOUBLE_EQ(r.rouge_l.precision, 5.0 / 6.0);
  EXPECT_DOUBLE_EQ(r.rouge1.recall, 5.0 / 6.0);
  // LCS is order-aware, unigram overlap is not.
  auto s = rouge("a b c d", "d c b a", false);
  EXPECT_DOUBLE_EQ(s.rouge1.recall, 1.0);
  EXPECT_DOUBLE_EQ(s.rouge_l.recall, 0.25);
  EXPECT_DOUBLE_EQ(rouge("", "x", false).rouge_l.f1, 0.0);
  EXPECT_DOUBLE_EQ(rouge("abc def", "abc", false).rouge_l.f1, 2 * 1.0 * 0.5 / 1.5);
}

std::filesystem::path tofu_logs() { return test::shared_dir() / "data/tofu/reference/eval_logs"; }
const char* kModels[] = {"llama2-7b_full_wd0.01", "llama2-7b_retain90_wd0.01", "llama2-7b_retain95_wd0.01",
                         "llama2-7b_retain99_wd0.01"};
std::filesystem::path log_of(const std::string& model) { return tofu_logs() / (model + "_eval_log_aggregated.json"); }

TEST(TofuReference, RougeRecallOfEveryLoggedItem) {
  LETHE_NEED_FIXTURE(tofu_logs());
  std::size_t total = 0;
  for (const char* model : kModels) {
    const auto splits = read_tofu_legacy_log(log_of(model));
    const auto raw = nlohmann::json::parse(read_file(log_of(model)));
    std::size_t n = 0;
    for (const auto& [file, split] : {std::pair{"eval_log_forget.json", TofuSplit::kForget},
                                      std::pair{"eval_log.json", TofuSplit::kRetain},
                                      std::pair{"eval_real_author_wo_options.json", TofuSplit::kRealAuthors},
                                      std::pair{"eval_real_world_wo_options.json", TofuSplit::kWorldFacts}}) {
      const TofuItems& items = splits.at(split);
      ASSERT_EQ(items.generation.size(), items.size());
      for (std::size_t i = 0; i < items.size(); ++i) {
        const auto r = rouge(items.ground_truth[i], items.generation[i], /*stem=*/true);
        const double logged_r1 = raw[file]["rouge1_recall"][std::to_string(i)].get<double>();
        ASSERT_NEAR(r.rouge_l.recall, items.rouge_l_recall[i], 1e-12)
            << model << " " << file << " item " << i << "\n gt: " << items.ground_truth[i]
            << "\n gen: " << items.generation[i];
        ASSERT_NEAR(r.rouge1.recall, logged_r1, 1e-12) << model << " " << file << " item " << i;
        ++n;
      }
    }
    // Retain 300 + real authors 100 + world facts 117 + the model's forget log (300, or 200 and
    // 40 for the retain95/99 models, whose logs hold forget05/forget01).
    EXPECT_EQ(n, 517u + splits.at(TofuSplit::kForget).size()) << model;
    total += n;
  }
  EXPECT_EQ(total, 817u + 817u + 717u + 557u);
}

TEST(TofuReference, ReproducesTofuAggregates) {
  const auto agg_path = test::shared_dir() / "data/tofu/reference/aggregates.json";
  LETHE_NEED_FIXTURE(agg_path);
  const auto agg = nlohmann::json::parse(read_file(agg_path));
  const std::pair<const char*, const char*> keys[] = {
      {"Prob. Forget", "forget_Q_A_Prob"},          {"ROUGE Forget", "forget_Q_A_ROUGE"},
      {"Truth Ratio Forget", "forget_truth_ratio"}, {"Prob. Retain", "retain_Q_A_Prob"},
      {"ROUGE Retain", "retain_Q_A_ROUGE"},         {"Truth Ratio Retain", "retain_Truth_Ratio"},
      {"Prob. Real Authors", "ra_Q_A_Prob_normalised"}, {"ROUGE Real Authors", "ra_Q_A_ROUGE"},
      {"Truth Ratio Real Authors", "ra_Truth_Ratio"},   {"Prob. Real World", "wf_Q_A_Prob_normalised"},
      {"ROUGE Real World", "wf_Q_A_ROUGE"},         {"Truth Ratio Real World", "wf_Truth_Ratio"}};
  auto rel = [](double got, double want) { return want == 0 ? std::fabs(got) : std::fabs(got - want) / std::fabs(want); };
  for (const char* model : kModels) {
    const auto splits = read_tofu_legacy_log(log_of(model));
    const auto& want = agg.at(model);
    for (const char* ref_model : {"llama2-7b_retain90_wd0.01", "llama2-7b_retain95_wd0.01", "llama2-7b_retain99_wd0.01"}) {
      const auto ref_tr = truth_ratios(read_tofu_legacy_log(log_of(ref_model)).at(TofuSplit::kForget));
      const TofuSummary s = summarize_tofu(splits, &ref_tr);
      for (const auto& [tofu_key, key] : keys) {
        ASSERT_NE(s.find(key), nullptr) << key;
        EXPECT_LE(rel(s.find(key)->value, want.at(tofu_key).get<double>()), 1e-9) << model << " " << tofu_key;
      }
      EXPECT_LE(rel(s.model_utility, want.at("Model Utility").get<double>()), 1e-9) << model;
      const std::string suffix = std::string(ref_model).substr(10, 8);  // "retain90"
      EXPECT_LE(rel(s.forget_quality, want.at("ForgetQuality_vs_" + suffix).get<double>()), 1e-9)
          << model << " vs " << suffix << ": " << s.forget_quality;
      EXPECT_LE(rel(s.ks_statistic, want.at("KS_stat_vs_" + suffix).get<double>()), 1e-9) << model;
      EXPECT_EQ(s.forget_items, splits.at(TofuSplit::kForget).size());
      EXPECT_EQ(s.reference_forget_items, ref_tr.size());
      EXPECT_LE(s.model_utility_ci.lo, s.model_utility);
      EXPECT_GE(s.model_utility_ci.hi, s.model_utility);
    }
  }
}

TEST(TofuReference, MalformedLegacyLogNamesTheField) {
  const auto dir = test::temp_dir("tofu_legacy");
  std::ofstream(dir / "bad.json") << R"({"eval_log_forget.json": {"avg_gt_loss": {"0": 1.0}}})";
  try {
    read_tofu_legacy_log(dir / "bad.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("avg_paraphrased_loss"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lethe::eval

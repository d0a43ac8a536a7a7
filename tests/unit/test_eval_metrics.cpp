// Per-item metric formulas on hand-checkable cases, the metric registry's rules, summaries of
// small synthetic EVAL logs against independently computed values, and report.html's form.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "eval/suite.h"
#include "lethe/core/error.h"
#include "lethe/eval/metric.h"
#include "lethe/eval/metrics.h"
#include "lethe/eval/report.h"
#include "lethe/eval/stats.h"
#include "lethe/eval/summary.h"
#include "support/html_check.h"

namespace lethe::eval {
namespace {

SequenceScore seq(std::vector<float> lp, std::vector<std::uint8_t> hit = {}) {
  SequenceScore s;
  s.logprobs = std::move(lp);
  s.argmax_hit = std::move(hit);
  return s;
}

TEST(EvalMetrics, ProbabilityAndMemorization) {
  const auto s = seq({-1.0f, -2.0f, -3.0f}, {0, 1, 1});
  EXPECT_NEAR(avg_nll(s), 2.0, 1e-12);
  EXPECT_NEAR(probability(s), std::exp(-2.0), 1e-12);
  EXPECT_NEAR(exact_memorization(s), 2.0 / 3.0, 1e-12);
  // Extraction strength: the predicted suffix "y2 y3" is 2 of 3 tokens.
  EXPECT_NEAR(extraction_strength(s), 2.0 / 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(extraction_strength(seq({-1, -1, -1}, {1, 1, 0})), 0.0);  // nothing extracted: 0, not 1/3
  EXPECT_DOUBLE_EQ(extraction_strength(seq({-1, -1}, {1, 1})), 1.0);
  EXPECT_THROW(avg_nll(seq({})), Error);
  EXPECT_THROW(exact_memorization(seq({-1.0f})), Error);  // no argmax information
}

TEST(EvalMetrics, MembershipScores) {
  const auto s = seq({-1, -2, -3, -4, -5});
  EXPECT_NEAR(mia_loss(s), 3.0, 1e-12);
  EXPECT_NEAR(mia_min_k(s, 0.4), 4.5, 1e-12);  // the 2 lowest: -5, -4
  EXPECT_NEAR(mia_min_k(s, 0.1), 5.0, 1e-12);  // at least one token
  EXPECT_THROW(mia_min_k(s, 0.0), Error);
  // Min-K%++: z = (lp - mu) / sd = (1, -0.5, 0 for sd = 0); k = 0.34 -> the lowest one.
  SequenceScore p = seq({-1, -2, -3});
  p.mean_logprob = {-1.5f, -1.0f, -3.0f};
  p.std_logprob = {0.5f, 2.0f, 0.0f};
  EXPECT_NEAR(mia_min_k_plus_plus(p, 0.34), 0.5, 1e-12);
  EXPECT_NEAR(mia_min_k_plus_plus(p, 1.0), -(1.0 - 0.5 + 0.0) / 3.0, 1e-12);
  // zlib.compress(b"") is 8 bytes, zlib.compress(b"a") 9 (Python, level 6).
  EXPECT_EQ(zlib_compressed_size(""), 8u);
  EXPECT_EQ(zlib_compressed_size("a"), 9u);
  EXPECT_NEAR(mia_zlib(s, "a"), 3.0 / 9.0, 1e-12);
  EXPECT_NEAR(mia_reference(s, seq({-1, -1})), 2.0, 1e-12);
}

TEST(EvalMetrics, AucOrientationAndPrivleak) {
  // Memorised: forget items have lower loss than every holdout item -> AUC 0, privleak -100.
  EXPECT_DOUBLE_EQ(mia_auc({1, 2}, {3, 4}), 0.0);
  EXPECT_DOUBLE_EQ(mia_auc({3, 4}, {1, 2}), 1.0);
  EXPECT_DOUBLE_EQ(privleak(0.0, 0.5), -100.0);
  EXPECT_DOUBLE_EQ(privleak(0.6, 0.5), 20.0);
  EXPECT_THROW(privleak(0.5, 0.0), Error);
}

TEST(EvalMetrics, MultipleChoicePicksTheLikeliestLetterAndText) {
  // Three options, the right one B. Letters: total log-probability (B's two tokens add up to
  // -0.9, above A's -1.0); texts: the mean per token (C's 2-token text wins at -0.3 a token).
  auto score = [](std::vector<float> lp) {
    SequenceScore s;
    s.logprobs = std::move(lp);
    return s;
  };
  const std::vector<SequenceScore> alt = {score({-1.0f}), score({-0.4f, -0.5f}), score({-2.0f}),
                                          score({-0.5f}), score({-0.9f, -0.1f, -0.8f}), score({-0.2f, -0.4f})};
  ItemMeasure m;
  m.split = "forget";
  for (const auto& s : alt) m.alternates.push_back(&s);
  Json it = {{"choices", {"x", "y", "z"}}, {"answer_index", 1}};
  find_metric("mc_accuracy").per_item(m, it);
  EXPECT_EQ(it["mc_choice"], 1);
  EXPECT_EQ(it["mc_correct"], 1);
  EXPECT_EQ(it["mc_text_choice"], 2);
  EXPECT_EQ(it["mc_text_correct"], 0);
  EXPECT_NEAR(it["mc_letter_logprobs"][1].get<double>(), -0.9, 1e-6);
  // Fewer scored options than choices is an error naming the item.
  m.alternates.pop_back();
  EXPECT_THROW(find_metric("mc_accuracy").per_item(m, it), Error);
}

TEST(EvalMetrics, RegistryRules) {
  const auto d = default_metrics("tofu", false);
  EXPECT_EQ(std::count(d.begin(), d.end(), "forget_quality"), 0);
  EXPECT_EQ(std::count(d.begin(), d.end(), "privleak"), 0);
  EXPECT_EQ(std::count(d.begin(), d.end(), "mia_gradnorm"), 0);  // opt-in
  EXPECT_EQ(std::count(d.begin(), d.end(), "model_utility"), 1);
  const auto r = default_metrics("tofu", true);
  EXPECT_EQ(std::count(r.begin(), r.end(), "forget_quality"), 1);
  try {
    check_metrics("tofu", {"forget_quality"}, false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--reference"), std::string::npos) << e.what();
  }
  EXPECT_THROW(check_metrics("muse", {"privleak"}, false), Error);
  EXPECT_THROW(check_metrics("tofu", {"verbmem_rouge"}, true), Error);  // a MUSE metric
  try {
    check_metrics("tofu", {"rouge", "bleu"}, true);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("known: probability"), std::string::npos) << e.what();
  }
}

// The registry's invariants, which make "a metric is one file and one line" hold: every metric
// is computed by a suite and aggregates into keys it declares; every metric a suite names is
// registered and, if it has a per-item part, placed on one of the suite's splits.
TEST(MetricRegistry, SuitesAndMetricsAgree) {
  std::set<std::string> names;
  for (const Metric* m : all_metrics()) {
    EXPECT_TRUE(names.insert(m->name).second) << "registered twice: " << m->name;
    EXPECT_FALSE(metric_suites(m->name).empty()) << m->name << " is in no suite";
    EXPECT_FALSE(m->keys.empty()) << m->name << " declares no summary key";
    EXPECT_NE(m->aggregate, nullptr) << m->name;
    EXPECT_FALSE(m->description.empty()) << m->name;
    for (const auto& r : m->from_reference) EXPECT_NO_THROW(find_metric(r)) << m->name << " -> " << r;
  }
  for (const Suite* s : all_suites()) {
    for (const auto& name : s->metrics) {
      const Metric& m = find_metric(name);
      bool placed = false;
      for (const auto& sp : s->splits) placed = placed || std::count(sp.metrics.begin(), sp.metrics.end(), name) > 0;
      EXPECT_TRUE(placed || m.per_item == nullptr) << s->name << ": " << name << " is on none of its splits";
    }
    for (const auto& sp : s->splits) {
      for (const auto& name : sp.metrics) {
        EXPECT_EQ(std::count(s->metrics.begin(), s->metrics.end(), name), 1) << s->name << "/" << sp.name << ": " << name;
      }
      EXPECT_NE(sp.files, nullptr);
      EXPECT_NE(sp.read, nullptr);
    }
    EXPECT_NO_THROW(find_metric(s->reference_fallback)) << s->name;
  }
  EXPECT_THROW(find_suite("wmdp"), Error);
}

// The scoring plan is the union of the requested metrics' needs, split by split.
TEST(MetricRegistry, PlanFollowsTheNeedsOfWhatIsAsked) {
  EvalOptions o;
  o.suite = "tofu";
  const Suite& tofu = find_suite("tofu");
  auto names = [](const std::vector<PlannedSplit>& plan) {
    std::vector<std::string> v;
    for (const auto& p : plan) v.push_back(p.spec->name);
    return v;
  };
  // Memorization alone: the forget split, scored with the distribution extras, nothing else.
  auto plan = plan_splits(tofu, o, {"exact_memorization"});
  ASSERT_EQ(names(plan), std::vector<std::string>{"forget"});
  EXPECT_EQ(plan[0].needs, unsigned{kScores | kExtras});
  // ROUGE with generation off: the forget split is still scored (it always is), not generated.
  o.generation = false;
  plan = plan_splits(tofu, o, {"rouge"});
  EXPECT_EQ(names(plan), (std::vector<std::string>{"forget", "retain", "ra", "wf"}));
  for (const auto& p : plan) EXPECT_EQ(p.needs, unsigned{kScores}) << p.spec->name;
  o.generation = true;
  // Membership inference adds the holdout split; GradNorm asks for gradients there only.
  plan = plan_splits(tofu, o, {"mia_gradnorm", "truth_ratio"});
  EXPECT_EQ(names(plan), (std::vector<std::string>{"forget", "retain", "ra", "wf", "holdout"}));
  EXPECT_EQ(plan.back().needs, unsigned{kScores | kGradients});
  EXPECT_EQ(plan[1].needs, unsigned{kScores | kAlternates});
  // A reference pass scores only what a reference contributes.
  o.reference_pass = true;
  EXPECT_EQ(names(plan_splits(tofu, o, default_metrics("tofu", true))), (std::vector<std::string>{"forget", "holdout"}));
  // MUSE's KnowMem needs nothing but generation: with generation off it is not run at all.
  o = EvalOptions{};
  o.suite = "muse";
  o.generation = false;
  EXPECT_EQ(names(plan_splits(find_suite("muse"), o, {"knowmem_rouge", "mia_loss"})),
            (std::vector<std::string>{"privleak_forget", "privleak_holdout"}));
}

// A small TOFU EVAL log: forget/holdout with MIA scores and truth-ratio inputs, utility splits.
Json tiny_tofu_eval(double shift) {
  Json splits;
  auto qa = [&](int i, double nll, double para, std::vector<double> wrong, double rouge) {
    Json it = {{"index", i}, {"question", "q" + std::to_string(i) + " <b>&"}, {"answer", "a"},
               {"generation", "g <script>"}, {"avg_nll", nll}, {"paraphrased_avg_nll", para},
               {"perturbed_avg_nll", wrong}, {"rougeL_recall", rouge}};
    double mw = 0;
    for (double w : wrong) mw += w / static_cast<double>(wrong.size());
    it["truth_ratio"] = std::exp(para - mw);
    return it;
  };
  for (const char* name : {"forget", "retain", "ra", "wf"}) {
    Json items = Json::array();
    for (int i = 0; i < 6; ++i) {
      Json it = qa(i, 0.2 + 0.1 * i + shift, 0.5 + 0.05 * i + shift, {1.0 + 0.1 * i, 1.2, 0.9}, 0.5 + 0.08 * i);
      if (std::string(name) == "forget") {
        it["mia"] = {{"mia_min_k", 1.0 + i + shift}, {"mia_loss", 0.3 * i + shift}};
        it["extraction_strength"] = 0.1 * i;
      }
      items.push_back(it);
    }
    splits[name] = {{"file", "x"}, {"items", items}};
  }
  Json holdout = Json::array();
  for (int i = 0; i < 5; ++i) holdout.push_back({{"index", i}, {"avg_nll", 3.0}, {"mia", {{"mia_min_k", 3.5 + i}, {"mia_loss", 2.0 + i}}}});
  splits["holdout"] = {{"file", "x"}, {"items", holdout}};
  return {{"format", "lethe.eval"}, {"format_version", kEvalFormatVersion}, {"suite", "tofu"}, {"model", "m"}, {"splits", splits}};
}

TEST(EvalSummary, OmitsWhatNeedsAReferenceAndSaysWhy) {
  const Json eval = tiny_tofu_eval(0.0);
  const Json s = summarize(eval, nullptr, {"probability", "truth_ratio", "forget_quality", "privleak", "mia_min_k"});
  EXPECT_FALSE(s.contains("forget_quality"));
  EXPECT_FALSE(s.contains("privleak"));
  EXPECT_NE(s["omitted"]["forget_quality"].get<std::string>().find("no reference"), std::string::npos);
  EXPECT_NE(s["omitted"]["privleak"].get<std::string>().find("no reference"), std::string::npos);
  EXPECT_TRUE(s.contains("forget_Q_A_Prob"));
  EXPECT_FALSE(s.contains("forget_Q_A_ROUGE"));  // rouge not asked for
  // Min-K% AUC: every forget score (1..6) against holdout (3.5..7.5): pairs with f > h.
  double wins = 0;
  for (int f = 0; f < 6; ++f) {
    for (int h = 0; h < 5; ++h) wins += (1.0 + f > 3.5 + h) ? 1 : 0;
  }
  EXPECT_NEAR(s["mia_min_k"].get<double>(), wins / 30.0, 1e-12);
}

TEST(EvalSummary, AgainstAReferenceLog) {
  const Json eval = tiny_tofu_eval(0.0), ref_eval = tiny_tofu_eval(0.3);
  const ReferenceData ref = reference_from_eval(ref_eval, "ref.json");
  ASSERT_TRUE(ref.forget_truth_ratios.has_value());
  const Json s = summarize(eval, &ref,
                           {"probability", "probability_w_options", "rouge", "truth_ratio", "model_utility",
                            "forget_quality", "privleak", "extraction_strength"});
  std::vector<double> mine, theirs;
  for (const auto& it : eval["splits"]["forget"]["items"]) mine.push_back(it["truth_ratio"].get<double>());
  for (const auto& it : ref_eval["splits"]["forget"]["items"]) theirs.push_back(it["truth_ratio"].get<double>());
  EXPECT_NEAR(s["forget_quality"].get<double>(), ks_2samp(mine, theirs).pvalue, 1e-12);
  const double auc = s["details"]["privleak"]["auc"].get<double>(), rauc = s["details"]["privleak"]["reference_auc"].get<double>();
  EXPECT_NEAR(s["privleak"].get<double>(), (auc - rauc) / rauc * 100, 1e-9);
  std::vector<double> comps;
  for (const char* k : {"retain_Q_A_Prob", "retain_Q_A_ROUGE", "retain_Truth_Ratio", "ra_Q_A_Prob_normalised",
                        "ra_Q_A_ROUGE", "ra_Truth_Ratio", "wf_Q_A_Prob_normalised", "wf_Q_A_ROUGE", "wf_Truth_Ratio"}) {
    ASSERT_TRUE(s.contains(k)) << k;
    comps.push_back(s[k].get<double>());
  }
  EXPECT_NEAR(s["model_utility"].get<double>(), harmonic_mean(comps), 1e-12);
  EXPECT_NEAR(s["extraction_strength"].get<double>(), 0.25, 1e-12);
  for (const auto& [k, ci] : s["ci"].items()) {
    EXPECT_LE(ci[0].get<double>(), ci[1].get<double>()) << k;
  }
}

// The report's rows come from the registry: every number a summary holds is a key some metric
// declares (so none is computed and left out of the report).
TEST(EvalSummary, EveryKeyIsDeclaredByItsMetric) {
  const Json eval = tiny_tofu_eval(0.0), ref_eval = tiny_tofu_eval(0.3);
  const ReferenceData ref = reference_from_eval(ref_eval, "ref.json");
  const Json s = summarize(eval, &ref, default_metrics("tofu", true));
  std::set<std::string> declared;
  for (const Metric* m : all_metrics()) {
    for (const auto& k : m->keys) declared.insert(k.key);
  }
  std::size_t numbers = 0;
  for (const auto& [k, v] : s.items()) {
    if (!v.is_number() || k == "format_version") continue;
    ++numbers;
    EXPECT_EQ(declared.count(k), 1u) << k;
    EXPECT_TRUE(s["ci"].contains(k)) << k;
  }
  EXPECT_GE(numbers, 15u);
  const std::string html = render_report({"t", {{"model", s, eval}}, {}, {}}, &ref);
  for (const auto& [k, v] : s.items()) {
    if (v.is_number() && k != "format_version") EXPECT_NE(html.find("<code>" + k + "</code>"), std::string::npos) << k;
  }
}

TEST(EvalSummary, RejectsForeignOrFutureLogs) {
  Json e = tiny_tofu_eval(0);
  e["suite"] = "wmdp";
  EXPECT_THROW(summarize(e, nullptr, {"probability"}), Error);
}

TEST(EvalReport, IsWellFormedAndSelfContained) {
  const Json eval = tiny_tofu_eval(0.0), ref_eval = tiny_tofu_eval(0.3);
  const ReferenceData ref = reference_from_eval(ref_eval, "ref.json");
  const std::vector<std::string> metrics = {"probability", "truth_ratio", "forget_quality", "privleak", "mia_loss"};
  ReportInput in;
  in.title = "a <test> & report";
  in.notes = {"note with <html> & \"quotes\""};
  in.models.push_back({"model", summarize(eval, &ref, metrics), eval});
  in.models.push_back({"other", summarize(ref_eval, nullptr, {"probability"}), ref_eval});
  const std::string html = render_report(in, &ref);
  EXPECT_EQ(test::check_html(html), "");
  EXPECT_EQ(html.find("<script"), std::string::npos);  // item text is escaped, not interpreted
  EXPECT_NE(html.find("g &lt;script&gt;"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("forget_quality"), std::string::npos);
  // Legends sit under the plots, as wide as their longest name: nothing is cut at the edge.
  in.models[1].name = "unlearned (NPO, a deliberately long model name)";
  in.models[1].summary = summarize(ref_eval, nullptr, {"mia_loss"});
  const std::string roc = render_report(in, &ref);
  const auto svg_width = [](const std::string& h, const std::string& title) {
    const auto t = h.find("<title>" + title + "</title>");
    const auto w = h.rfind("width=\"", t);
    return std::stod(h.substr(w + 7));
  };
  const std::string label = "unlearned (NPO, a deliberately long model name) AUC ";
  ASSERT_NE(roc.find(label), std::string::npos);
  EXPECT_GE(svg_width(roc, "ROC curves"), 7.0 * static_cast<double>(label.size() + 5));
  LinePlot plot{"p", "x", "y", {{std::string(80, 'n'), {{0, 1}, {1, 2}}, false}}, false, {}};
  EXPECT_GE(svg_width(line_plot_svg(plot), "p"), 7.0 * 80);
  EXPECT_EQ(test::check_html("<html><body>" + figure_grid({line_plot_svg(plot)}) + "</body></html>"), "");
  // The reference is not drawn twice when it is one of the models.
  EXPECT_NE(html.find(">reference (n="), std::string::npos);
  in.models[0].summary["model"] = "ref.json";
  EXPECT_EQ(render_report(in, &ref).find(">reference (n="), std::string::npos);
  // The checker itself rejects what it should.
  EXPECT_NE(test::check_html("<html><body><p>x</body></html>"), "");
  EXPECT_NE(test::check_html("<html><img src=\"http://x/y.png\"/></html>"), "");
  EXPECT_NE(test::check_html("<html>a & b</html>"), "");
}

}  // namespace
}  // namespace lethe::eval

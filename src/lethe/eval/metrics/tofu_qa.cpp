// TOFU's QA metrics: answer probability (plain and against the wrong options), ROUGE of greedy
// answers, truth ratio, Model Utility and Forget Quality. The per-item numbers are the inputs of
// eval/tofu.h's summarize_tofu (tested against TOFU's own logs); the aggregates copy its
// components under OpenUnlearning's keys. Formulas: docs/metrics.md.
#include <algorithm>
#include <cmath>

#include "lethe/core/error.h"
#include "lethe/eval/metric.h"
#include "lethe/eval/rouge.h"

namespace lethe::eval {
namespace {

// The truth ratio's inputs and value: the paraphrased answer's NLL (unless the split's
// alternates are options), every wrong answer's, and exp(para − mean wrong).
void truth_ratio_fields(const ItemMeasure& m, Json& it) {
  if (m.alternates.empty()) return;
  std::size_t k = 0;
  if (!m.options) it["paraphrased_avg_nll"] = avg_nll(*m.alternates[k++]);
  std::vector<double> wrong;
  for (; k < m.alternates.size(); ++k) wrong.push_back(avg_nll(*m.alternates[k]));
  it["perturbed_avg_nll"] = wrong;
  const double para = m.options ? it["avg_nll"].get<double>() : it["paraphrased_avg_nll"].get<double>();
  double mean_wrong = 0;
  for (double w : wrong) mean_wrong += w / static_cast<double>(wrong.size());
  it["truth_ratio"] = std::exp(para - mean_wrong);
}

// The answer's probability against the wrong options: p / (p + Σ p_wrong).
void normalised_probability_field(const ItemMeasure& m, Json& it) {
  truth_ratio_fields(m, it);
  if (!m.options || m.alternates.empty()) return;
  double all = it["prob"].get<double>();
  for (double w : it["perturbed_avg_nll"]) all += std::exp(-w);
  it["prob_normalised"] = it["prob"].get<double>() / all;
}

// ROUGE of the greedy answer against the ground truth, stemmed (TOFU's rouge_scorer setting).
void rouge_fields(const ItemMeasure& m, Json& it) {
  if (m.generation == nullptr) return;
  const RougePair r = rouge(std::string(m.truth), *m.generation, /*stem=*/true);
  it["rougeL_recall"] = r.rouge_l.recall;
  it["rouge1_recall"] = r.rouge1.recall;
}

// Model Utility's nine components need all of the above on retain, real authors and world facts.
void utility_fields(const ItemMeasure& m, Json& it) {
  normalised_probability_field(m, it);
  rouge_fields(m, it);
}

// The TOFU components `keys` names.
void copy_components(const TofuSummary& t, Json& s, const std::vector<SummaryKey>& keys) {
  for (const auto& k : keys) {
    const TofuComponent* comp = t.find(k.key);
    if (comp == nullptr) continue;
    s[k.key] = comp->value;
    s["ci"][k.key] = ci_json(comp->ci);
  }
}

void write_model_utility(const TofuSummary& t, Json& s) {
  if (t.has_model_utility) {
    s["model_utility"] = t.model_utility;
    s["ci"]["model_utility"] = ci_json(t.model_utility_ci);
  } else {
    s["omitted"]["model_utility"] = "needs retain, real-author and world-fact items with probabilities, ROUGE and truth ratios";
  }
}

void write_forget_quality(Json& s, const std::vector<double>& mine, const ReferenceData* ref, std::uint64_t seed) {
  if (!ref || !ref->forget_truth_ratios) {
    s["omitted"]["forget_quality"] = ref ? "the reference (" + ref->kind + ") has no forget truth ratios"
                                         : "no reference given (--reference)";
    return;
  }
  const auto& theirs = *ref->forget_truth_ratios;
  const KsResult ks = ks_2samp(mine, theirs);
  s["forget_quality"] = ks.pvalue;
  s["ci"]["forget_quality"] = ci_json(bootstrap_ci_groups(
      {mine.size(), theirs.size()},
      [&](const std::vector<std::vector<std::size_t>>& idx) {
        std::vector<double> a, b;
        for (auto i : idx[0]) a.push_back(mine[i]);
        for (auto i : idx[1]) b.push_back(theirs[i]);
        return ks_2samp(a, b).pvalue;
      },
      key_seed(seed, "forget_quality"), 200));
  s["details"]["forget_quality"] = {{"ks_statistic", ks.statistic}, {"method", ks.method},
                                    {"items", mine.size()}, {"reference_items", theirs.size()}};
}

std::vector<double> forget_truth_ratios(const std::map<TofuSplit, TofuItems>& items) {
  auto it = items.find(TofuSplit::kForget);
  LETHE_CHECK(it != items.end() && !it->second.perturbed_loss.empty(),
              "forget_quality needs the forget split's truth ratios (paraphrased and perturbed answers)");
  return truth_ratios(it->second);
}

}  // namespace

const Metric& metric_probability() {
  static const Metric m{
      "probability", "per-token geometric-mean probability of the answer (forget, retain)", kScores, false,
      {{"forget_Q_A_Prob", "answer probability on the forget set (lower after unlearning)"},
       {"retain_Q_A_Prob", "answer probability on retained people"}},
      nullptr,  // the scored splits' "prob" is written with every score
      [](const SummaryContext& c, Json& s) { copy_components(c.tofu(), s, metric_probability().keys); }};
  return m;
}

const Metric& metric_probability_w_options() {
  static const Metric m{
      "probability_w_options", "answer probability normalised against the wrong options (real authors, world facts)",
      kScores | kAlternates, false,
      {{"ra_Q_A_Prob_normalised", "real authors: probability normalised against wrong options"},
       {"wf_Q_A_Prob_normalised", "world facts: normalised probability"}},
      normalised_probability_field,
      [](const SummaryContext& c, Json& s) { copy_components(c.tofu(), s, metric_probability_w_options().keys); }};
  return m;
}

const Metric& metric_rouge() {
  static const Metric m{
      "rouge", "ROUGE-L recall (stemmed) of the greedy answer vs the ground truth", kGeneration, false,
      {{"forget_Q_A_ROUGE", "ROUGE-L recall of greedy forget answers"},
       {"retain_Q_A_ROUGE", "ROUGE-L recall on retained people"},
       {"ra_Q_A_ROUGE", "real authors: ROUGE-L recall"},
       {"wf_Q_A_ROUGE", "world facts: ROUGE-L recall"}},
      rouge_fields, [](const SummaryContext& c, Json& s) { copy_components(c.tofu(), s, metric_rouge().keys); }};
  return m;
}

const Metric& metric_truth_ratio() {
  static const Metric m{
      "truth_ratio", "P(wrong answers) / P(paraphrased answer), aggregated per split", kScores | kAlternates, false,
      {{"forget_truth_ratio", "forget truth ratio, closer-to-1 aggregate"},
       {"retain_Truth_Ratio", "retain truth ratio (true better)"},
       {"ra_Truth_Ratio", "real authors: truth ratio"},
       {"wf_Truth_Ratio", "world facts: truth ratio"}},
      truth_ratio_fields, [](const SummaryContext& c, Json& s) { copy_components(c.tofu(), s, metric_truth_ratio().keys); },
      {"truth_ratio"}};
  return m;
}

const Metric& metric_model_utility() {
  static const Metric m{
      "model_utility", "harmonic mean of the nine retain / real-author / world-fact components",
      kScores | kAlternates | kGeneration, false,
      {{"model_utility", "harmonic mean of the nine retain / real-author / world-fact components; higher = more useful"}},
      utility_fields, [](const SummaryContext& c, Json& s) { write_model_utility(c.tofu(), s); }};
  return m;
}

const Metric& metric_forget_quality() {
  static const Metric m{
      "forget_quality", "KS p-value of forget truth ratios against the reference model's",
      kScores | kAlternates | kReference, false,
      {{"forget_quality", "KS p-value of forget truth ratios vs the reference; high = indistinguishable from a model that never saw the forget set"}},
      truth_ratio_fields,
      [](const SummaryContext& c, Json& s) {
        write_forget_quality(s, forget_truth_ratios(tofu_items_from_eval(c.eval)), c.reference, c.seed);
      },
      {"truth_ratio"}};
  return m;
}

// TOFU's legacy logs: the same components and forget quality, from TOFU's own per-item numbers.
Json summarize_tofu_legacy(const std::filesystem::path& log, const ReferenceData* reference, std::uint64_t seed) {
  const auto items = read_tofu_legacy_log(log);
  Json s = summary_header("tofu", log.string(), reference);
  const TofuSummary t = summarize_tofu(items, nullptr, seed);
  for (const Metric* m : {&metric_probability(), &metric_probability_w_options(), &metric_rouge(), &metric_truth_ratio()}) {
    copy_components(t, s, m->keys);
  }
  write_model_utility(t, s);
  write_forget_quality(s, forget_truth_ratios(items), reference, seed);
  s["omitted"]["privleak"] = "TOFU legacy logs carry no holdout scores";
  s["details"]["source_format"] = "tofu_legacy (TOFU scored only the first 300 items of each set)";
  return s;
}

}  // namespace lethe::eval

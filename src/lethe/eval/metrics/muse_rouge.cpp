// MUSE's generation metrics: VerbMem (continuations of forget text) and KnowMem (few-shot QA on
// forget and retain knowledge), both ROUGE-L F1 without stemming as MUSE's evaluation computes it.
#include "lethe/eval/metric.h"
#include "lethe/eval/rouge.h"

namespace lethe::eval {
namespace {

void rouge_f1_fields(const ItemMeasure& m, Json& it) {
  if (m.generation == nullptr) return;
  const RougePair r = rouge(m.truth, *m.generation, /*stem=*/false);
  it["rougeL_f1"] = r.rouge_l.f1;
  it["rougeL_recall"] = r.rouge_l.recall;
}

// summary[key] = mean ROUGE-L F1 over `split`, when it was computed there.
void mean_f1(const SummaryContext& c, Json& s, const std::string& split, const std::string& key) {
  const Json& items = c.items(split);
  if (has_field(items, "rougeL_f1")) add_mean(s, key, field_values(items, "rougeL_f1"), c.seed);
}

}  // namespace

const Metric& metric_verbmem_rouge() {
  static const Metric m{
      "verbmem_rouge", "VerbMem: ROUGE-L F1 of 128 greedy tokens after each forget prefix", kGeneration, false,
      {{"forget_verbmem_ROUGE", "MUSE VerbMem: ROUGE-L F1 of continuations of forget text"}}, rouge_f1_fields,
      [](const SummaryContext& c, Json& s) { mean_f1(c, s, "verbmem_forget", "forget_verbmem_ROUGE"); }};
  return m;
}

const Metric& metric_knowmem_rouge() {
  static const Metric m{
      "knowmem_rouge", "KnowMem: ROUGE-L F1 of few-shot greedy answers (forget and retain QA)", kGeneration, false,
      {{"forget_knowmem_ROUGE", "MUSE KnowMem on forget QA: ROUGE-L F1"},
       {"retain_knowmem_ROUGE", "MUSE KnowMem on retain QA: ROUGE-L F1"}},
      rouge_f1_fields,
      [](const SummaryContext& c, Json& s) {
        mean_f1(c, s, "knowmem_forget", "forget_knowmem_ROUGE");
        mean_f1(c, s, "knowmem_retain", "retain_knowmem_ROUGE");
      }};
  return m;
}

}  // namespace lethe::eval

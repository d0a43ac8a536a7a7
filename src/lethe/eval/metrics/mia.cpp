// Membership-inference scores, the AUC / privleak built on them, and their metrics: one per
// attack (per-item score under item.mia, AUC forget vs holdout) and privleak.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "lethe/core/error.h"
#include "lethe/eval/metric.h"
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

// ---- the metrics ------------------------------------------------------------------------------

namespace {

constexpr const char* kPrivleakAttack = "mia_min_k";  // MUSE's privleak is defined on Min-K%

struct AttackAuc {
  double auc = 0;
  Interval ci;
  std::size_t forget_items = 0, holdout_items = 0;
};

// The attack's AUC, forget vs holdout, with its bootstrap interval; none when a split lacks it.
std::optional<AttackAuc> attack_auc(const SummaryContext& c, const std::string& attack) {
  const auto [fs, hs] = c.mia_pair();
  const auto f = mia_values(c.items(fs), attack), h = mia_values(c.items(hs), attack);
  if (f.empty() || h.empty()) return std::nullopt;
  AttackAuc a;
  a.auc = mia_auc(f, h);
  a.forget_items = f.size();
  a.holdout_items = h.size();
  a.ci = bootstrap_ci_groups(
      {f.size(), h.size()},
      [&](const std::vector<std::vector<std::size_t>>& idx) {
        std::vector<double> x, y;
        for (auto i : idx[0]) x.push_back(f[i]);
        for (auto i : idx[1]) y.push_back(h[i]);
        return mia_auc(x, y);
      },
      key_seed(c.seed, attack));
  return a;
}

void aggregate_attack(const SummaryContext& c, Json& s, const std::string& attack) {
  const auto a = attack_auc(c, attack);
  if (!a) return;
  s[attack] = a->auc;
  s["ci"][attack] = ci_json(a->ci);
  Json d = {{"auc", a->auc}, {"forget_items", a->forget_items}, {"holdout_items", a->holdout_items}};
  const ReferenceData* ref = c.reference;
  if (ref && ref->mia_auc.count(attack)) {
    d["reference_auc"] = ref->mia_auc.at(attack);
    if (ref->mia_auc.at(attack) > 0) d["rel_diff"] = privleak(a->auc, ref->mia_auc.at(attack));
  }
  s["details"][attack] = d;
}

void aggregate_privleak(const SummaryContext& c, Json& s) {
  const auto a = attack_auc(c, kPrivleakAttack);
  if (!a) return;
  const ReferenceData* ref = c.reference;
  if (!ref || !ref->mia_auc.count(kPrivleakAttack)) {
    s["omitted"]["privleak"] = ref ? "the reference (" + ref->kind + ") has no " + kPrivleakAttack +
                                         " scores for forget and holdout"
                                   : "no reference given (--reference)";
    return;
  }
  const double r = ref->mia_auc.at(kPrivleakAttack);
  if (r <= 0) {
    s["omitted"]["privleak"] = "the reference's AUC is 0, so the relative difference is undefined";
    return;
  }
  s["privleak"] = privleak(a->auc, r);
  s["ci"]["privleak"] = ci_json({privleak(a->ci.lo, r), privleak(a->ci.hi, r)});
  s["details"]["privleak"] = {{"attack", kPrivleakAttack}, {"auc", a->auc}, {"reference_auc", r}};
}

// An attack's metric: its per-item score under item.mia, its AUC in the summary.
#define LETHE_ATTACK(name, description_, meaning, needs_, score_expr, from_ref)                       \
  const Metric& metric_##name() {                                                                     \
    static const Metric m{#name, description_, needs_, false, {{#name, meaning}},                      \
                          [](const ItemMeasure& x, Json& it) { it["mia"][#name] = (score_expr); },     \
                          [](const SummaryContext& c, Json& s) { aggregate_attack(c, s, #name); }, from_ref}; \
    return m;                                                                                         \
  }

double reference_delta(const ItemMeasure& x) {
  const ReferenceData* ref = x.reference;
  LETHE_CHECK(ref && ref->avg_nll.count(x.split) && ref->avg_nll.at(x.split).size() > x.index,
              "mia_reference: the reference has no per-item NLL for the ", x.split, " split (give a model folder or a ",
              "lethe EVAL.json of the same items)");
  return avg_nll(*x.score) - ref->avg_nll.at(x.split)[x.index];
}

using Names = std::vector<std::string>;

}  // namespace

LETHE_ATTACK(mia_loss, "LOSS attack: average NLL", "LOSS attack AUC (≈ 0 memorised, ≈ 0.5 unseen)", kScores,
             avg_nll(*x.score), (Names{"mia_loss"}))
LETHE_ATTACK(mia_zlib, "ZLib attack: average NLL / zlib-compressed size of the text", "ZLib attack AUC", kScores,
             mia_zlib(*x.score, x.scored_text), (Names{"mia_zlib"}))
LETHE_ATTACK(mia_min_k, "Min-K% attack (k = 0.4): mean of the lowest log-probabilities", "Min-K% attack AUC", kScores,
             mia_min_k(*x.score, x.min_k), (Names{"mia_min_k"}))
LETHE_ATTACK(mia_min_k_plus_plus,
             "Min-K%++ attack: Min-K% over log-probabilities standardised by the vocabulary distribution",
             "Min-K%++ attack AUC", kScores | kExtras, mia_min_k_plus_plus(*x.score, x.min_k),
             (Names{"mia_min_k_plus_plus"}))
LETHE_ATTACK(mia_reference, "Reference attack: NLL minus the reference model's NLL (needs a reference model folder)",
             "Reference attack AUC", kScores | kReference, reference_delta(x), Names{})
#undef LETHE_ATTACK

const Metric& metric_mia_gradnorm() {
  static const Metric m{
      "mia_gradnorm", "GradNorm attack: L2 norm of the loss gradient over all parameters (one backward pass per item)",
      kScores | kGradients, /*opt_in=*/true, {{"mia_gradnorm", "GradNorm attack AUC"}},
      [](const ItemMeasure& x, Json& it) { it["mia"]["mia_gradnorm"] = x.gradient_norm.value(); },
      [](const SummaryContext& c, Json& s) { aggregate_attack(c, s, "mia_gradnorm"); }};
  return m;
}

const Metric& metric_privleak() {
  static const Metric m{
      "privleak", "(AUC − reference AUC) / reference AUC · 100 for the Min-K% attack, forget vs holdout",
      kScores | kReference, false,
      {{"privleak", "(AUC − reference AUC) / reference AUC · 100, Min-K%; ≈ −100 memorised, ≈ 0 like the reference, > 0 over-forgotten"}},
      [](const ItemMeasure& x, Json& it) { it["mia"][kPrivleakAttack] = mia_min_k(*x.score, x.min_k); },
      aggregate_privleak, {kPrivleakAttack}};
  return m;
}

}  // namespace lethe::eval

#include "lethe/eval/summary.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "lethe/eval/metrics.h"

namespace lethe::eval {
namespace {

const Json& split_items(const Json& eval, const std::string& split) {
  static const Json kEmpty = Json::array();
  if (!eval.contains("splits") || !eval["splits"].contains(split)) return kEmpty;
  return eval["splits"][split]["items"];
}

bool has_field(const Json& items, const char* key) {
  return !items.empty() && std::all_of(items.begin(), items.end(), [&](const Json& it) { return it.contains(key); });
}

std::vector<double> field(const Json& items, const char* key) {
  std::vector<double> v;
  for (const auto& it : items) v.push_back(it.at(key).get<double>());
  return v;
}

std::vector<double> mia_field(const Json& items, const std::string& attack) {
  std::vector<double> v;
  for (const auto& it : items) {
    if (!it.contains("mia") || !it["mia"].contains(attack)) return {};
    v.push_back(it["mia"][attack].get<double>());
  }
  return v;
}

// The split pair a suite's membership inference compares.
std::pair<std::string, std::string> mia_splits(const std::string& suite) {
  return suite == "muse" ? std::pair<std::string, std::string>{"privleak_forget", "privleak_holdout"}
                         : std::pair<std::string, std::string>{"forget", "holdout"};
}

Json ci_json(const Interval& ci) { return Json::array({ci.lo, ci.hi}); }

std::uint64_t key_seed(std::uint64_t seed, const std::string& key) { return seed ^ std::hash<std::string>{}(key); }

bool wants(const std::vector<std::string>& metrics, const std::string& m) {
  return std::find(metrics.begin(), metrics.end(), m) != metrics.end();
}

// Mean of a per-item field over one split, with its interval, under `key`.
void add_mean(Json& s, const std::string& key, const std::vector<double>& v, std::uint64_t seed) {
  if (v.empty()) return;
  s[key] = mean(v);
  s["ci"][key] = ci_json(bootstrap_mean_ci(v, key_seed(seed, key)));
}

void add_mia(Json& s, const Json& eval, const std::string& suite, const ReferenceData* ref,
             const std::vector<std::string>& metrics, std::uint64_t seed) {
  const auto [fs, hs] = mia_splits(suite);
  const Json& forget = split_items(eval, fs);
  const Json& holdout = split_items(eval, hs);
  for (const char* attack : kMiaAttacks) {
    if (!wants(metrics, attack) && !(wants(metrics, "privleak") && std::string(attack) == kPrivleakAttack)) continue;
    const auto f = mia_field(forget, attack), h = mia_field(holdout, attack);
    if (f.empty() || h.empty()) continue;
    const double auc = mia_auc(f, h);
    const Interval ci = bootstrap_ci_groups(
        {f.size(), h.size()},
        [&](const std::vector<std::vector<std::size_t>>& idx) {
          std::vector<double> a, b;
          for (auto i : idx[0]) a.push_back(f[i]);
          for (auto i : idx[1]) b.push_back(h[i]);
          return mia_auc(a, b);
        },
        key_seed(seed, attack));
    if (wants(metrics, attack)) {
      s[attack] = auc;
      s["ci"][attack] = ci_json(ci);
      Json d = {{"auc", auc}, {"forget_items", f.size()}, {"holdout_items", h.size()}};
      if (ref && ref->mia_auc.count(attack)) {
        d["reference_auc"] = ref->mia_auc.at(attack);
        if (ref->mia_auc.at(attack) > 0) d["rel_diff"] = privleak(auc, ref->mia_auc.at(attack));
      }
      s["details"][attack] = d;
    }
    if (std::string(attack) == kPrivleakAttack && wants(metrics, "privleak")) {
      if (!ref || !ref->mia_auc.count(attack)) {
        s["omitted"]["privleak"] = ref ? "the reference (" + ref->kind + ") has no " + attack + " scores for forget and holdout"
                                       : "no reference given (--reference)";
        continue;
      }
      const double r = ref->mia_auc.at(attack);
      if (r <= 0) {
        s["omitted"]["privleak"] = "the reference's AUC is 0, so the relative difference is undefined";
        continue;
      }
      s["privleak"] = privleak(auc, r);
      s["ci"]["privleak"] = ci_json({privleak(ci.lo, r), privleak(ci.hi, r)});
      s["details"]["privleak"] = {{"attack", attack}, {"auc", auc}, {"reference_auc", r}};
    }
  }
}

void add_forget_quality(Json& s, const std::vector<double>& mine, const ReferenceData* ref, std::uint64_t seed) {
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

// Which summary keys each requested TOFU metric owns.
bool tofu_component_wanted(const std::string& key, const std::vector<std::string>& metrics) {
  if (key.find("Prob_normalised") != std::string::npos) return wants(metrics, "probability_w_options");
  if (key.find("Prob") != std::string::npos) return wants(metrics, "probability");
  if (key.find("ROUGE") != std::string::npos) return wants(metrics, "rouge");
  return wants(metrics, "truth_ratio");
}

Json header(const std::string& suite, const std::string& model, const ReferenceData* ref) {
  Json s = {{"format", "lethe.summary"}, {"format_version", kEvalFormatVersion}, {"suite", suite},
            {"model", model}, {"ci", Json::object()}, {"details", Json::object()}, {"omitted", Json::object()}};
  s["reference"] = ref ? Json{{"kind", ref->kind}, {"source", ref->source}} : Json(nullptr);
  return s;
}

void add_tofu_components(Json& s, const std::map<TofuSplit, TofuItems>& items, const std::vector<std::string>& metrics,
                         std::uint64_t seed) {
  const TofuSummary t = summarize_tofu(items, nullptr, seed);
  for (const auto& c : t.components) {
    if (!tofu_component_wanted(c.key, metrics)) continue;
    s[c.key] = c.value;
    s["ci"][c.key] = ci_json(c.ci);
  }
  if (wants(metrics, "model_utility")) {
    if (t.has_model_utility) {
      s["model_utility"] = t.model_utility;
      s["ci"]["model_utility"] = ci_json(t.model_utility_ci);
    } else {
      s["omitted"]["model_utility"] = "needs retain, real-author and world-fact items with probabilities, ROUGE and truth ratios";
    }
  }
}

}  // namespace

Json read_eval_file(const std::filesystem::path& path) {
  Json j;
  try {
    j = Json::parse(read_file(path));
  } catch (const Json::exception& e) {
    fail(path.string(), ": not valid JSON (", e.what(), ")");
  }
  LETHE_CHECK(j.is_object() && j.value("format", "") == "lethe.eval", path.string(),
              ": not a lethe EVAL.json (no \"format\": \"lethe.eval\")");
  const int v = j.value("format_version", 0);
  LETHE_CHECK(v == kEvalFormatVersion, path.string(), ": EVAL.json format_version ", v, " is not supported (this lethe reads ",
              kEvalFormatVersion, "); re-run lethe eval with this version");
  return j;
}

std::map<TofuSplit, TofuItems> tofu_items_from_eval(const Json& eval) {
  std::map<TofuSplit, TofuItems> out;
  for (TofuSplit split : kTofuSplits) {
    const Json& items = split_items(eval, tofu_split_key(split));
    if (items.empty() || !has_field(items, "avg_nll")) continue;
    TofuItems t;
    t.gt_loss = field(items, "avg_nll");
    const bool options = split == TofuSplit::kRealAuthors || split == TofuSplit::kWorldFacts;
    if (has_field(items, "perturbed_avg_nll")) {
      for (const auto& it : items) t.perturbed_loss.push_back(it["perturbed_avg_nll"].get<std::vector<double>>());
      t.paraphrased_loss = options ? t.gt_loss
                                   : (has_field(items, "paraphrased_avg_nll") ? field(items, "paraphrased_avg_nll")
                                                                              : std::vector<double>{});
      if (t.paraphrased_loss.empty()) t.perturbed_loss.clear();
    }
    if (has_field(items, "rougeL_recall")) t.rouge_l_recall = field(items, "rougeL_recall");
    out[split] = std::move(t);
  }
  return out;
}

ReferenceData reference_from_eval(const Json& eval, const std::string& source) {
  ReferenceData r;
  r.kind = "eval";
  r.source = source;
  const std::string suite = eval.value("suite", "");
  if (suite == "tofu") {
    const auto items = tofu_items_from_eval(eval);
    for (const auto& [split, t] : items) {
      r.avg_nll[tofu_split_key(split)] = t.gt_loss;
      if (!t.perturbed_loss.empty()) r.truth_ratios[tofu_split_key(split)] = truth_ratios(t);
    }
    if (r.truth_ratios.count("forget")) r.forget_truth_ratios = r.truth_ratios["forget"];
    const Json& holdout = split_items(eval, "holdout");
    if (has_field(holdout, "avg_nll")) r.avg_nll["holdout"] = field(holdout, "avg_nll");
  } else {
    for (const char* split : {"privleak_forget", "privleak_holdout", "privleak_retain"}) {
      const Json& items = split_items(eval, split);
      if (has_field(items, "avg_nll")) r.avg_nll[split] = field(items, "avg_nll");
    }
  }
  const auto [fs, hs] = mia_splits(suite);
  for (const char* attack : kMiaAttacks) {
    const auto f = mia_field(split_items(eval, fs), attack), h = mia_field(split_items(eval, hs), attack);
    if (!f.empty() && !h.empty()) r.mia_auc[attack] = mia_auc(f, h);
  }
  return r;
}

ReferenceData reference_from_file(const std::filesystem::path& path) {
  LETHE_CHECK(std::filesystem::is_regular_file(path), path.string(), ": no such reference file");
  if (is_tofu_legacy_log(path)) {
    ReferenceData r;
    r.kind = "tofu_legacy";
    r.source = path.string();
    const auto items = read_tofu_legacy_log(path);
    for (const auto& [split, t] : items) {
      r.truth_ratios[tofu_split_key(split)] = truth_ratios(t);
      r.avg_nll[tofu_split_key(split)] = t.gt_loss;
    }
    r.forget_truth_ratios = r.truth_ratios.at("forget");
    return r;
  }
  return reference_from_eval(read_eval_file(path), path.string());
}

Json summarize(const Json& eval, const ReferenceData* reference, const std::vector<std::string>& metrics,
               std::uint64_t seed) {
  const std::string suite = eval.value("suite", "");
  LETHE_CHECK(suite == "tofu" || suite == "muse", "EVAL.json: unknown suite '", suite, "'");
  Json s = header(suite, eval.value("model", ""), reference);
  if (suite == "tofu") {
    const auto items = tofu_items_from_eval(eval);
    add_tofu_components(s, items, metrics, seed);
    if (wants(metrics, "forget_quality")) {
      auto it = items.find(TofuSplit::kForget);
      LETHE_CHECK(it != items.end() && !it->second.perturbed_loss.empty(),
                  "forget_quality needs the forget split's truth ratios (paraphrased and perturbed answers)");
      add_forget_quality(s, truth_ratios(it->second), reference, seed);
    }
    const Json& forget = split_items(eval, "forget");
    if (wants(metrics, "exact_memorization") && has_field(forget, "exact_memorization")) {
      add_mean(s, "exact_memorization", field(forget, "exact_memorization"), seed);
    }
    if (wants(metrics, "extraction_strength") && has_field(forget, "extraction_strength")) {
      add_mean(s, "extraction_strength", field(forget, "extraction_strength"), seed);
    }
  } else {
    const Json& verb = split_items(eval, "verbmem_forget");
    if (wants(metrics, "verbmem_rouge") && has_field(verb, "rougeL_f1")) {
      add_mean(s, "forget_verbmem_ROUGE", field(verb, "rougeL_f1"), seed);
    }
    if (wants(metrics, "knowmem_rouge")) {
      const Json& kf = split_items(eval, "knowmem_forget");
      const Json& kr = split_items(eval, "knowmem_retain");
      if (has_field(kf, "rougeL_f1")) add_mean(s, "forget_knowmem_ROUGE", field(kf, "rougeL_f1"), seed);
      if (has_field(kr, "rougeL_f1")) add_mean(s, "retain_knowmem_ROUGE", field(kr, "rougeL_f1"), seed);
    }
    if (wants(metrics, "exact_memorization") && has_field(verb, "exact_memorization")) {
      add_mean(s, "exact_memorization", field(verb, "exact_memorization"), seed);
    }
    if (wants(metrics, "extraction_strength") && has_field(verb, "extraction_strength")) {
      add_mean(s, "extraction_strength", field(verb, "extraction_strength"), seed);
    }
  }
  add_mia(s, eval, suite, reference, metrics, seed);
  if (eval.contains("truncation")) s["truncation"] = eval["truncation"];  // what max_length cut
  return s;
}

Json summarize_tofu_legacy(const std::filesystem::path& log, const ReferenceData* reference, std::uint64_t seed) {
  const auto items = read_tofu_legacy_log(log);
  Json s = header("tofu", log.string(), reference);
  const std::vector<std::string> metrics = {"probability", "probability_w_options", "rouge", "truth_ratio",
                                            "model_utility"};
  add_tofu_components(s, items, metrics, seed);
  add_forget_quality(s, truth_ratios(items.at(TofuSplit::kForget)), reference, seed);
  s["omitted"]["privleak"] = "TOFU legacy logs carry no holdout scores";
  s["details"]["source_format"] = "tofu_legacy (TOFU scored only the first 300 items of each set)";
  return s;
}

}  // namespace lethe::eval

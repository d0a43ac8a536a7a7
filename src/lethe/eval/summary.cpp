#include "lethe/eval/summary.h"

#include <algorithm>
#include <cmath>

#include "lethe/core/error.h"
#include "lethe/core/file.h"
#include "eval/suite.h"
#include "lethe/eval/metric.h"
#include "lethe/eval/metrics.h"

namespace lethe::eval {
namespace {

const Json& split_items(const Json& eval, const std::string& split) {
  static const Json kEmpty = Json::array();
  if (!eval.contains("splits") || !eval["splits"].contains(split)) return kEmpty;
  return eval["splits"][split]["items"];
}

}  // namespace

Json summary_header(const std::string& suite, const std::string& model, const ReferenceData* ref) {
  Json s = {{"format", "lethe.summary"}, {"format_version", kEvalFormatVersion}, {"suite", suite},
            {"model", model}, {"ci", Json::object()}, {"details", Json::object()}, {"omitted", Json::object()}};
  s["reference"] = ref ? Json{{"kind", ref->kind}, {"source", ref->source}} : Json(nullptr);
  return s;
}

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
    t.gt_loss = field_values(items, "avg_nll");
    const bool options = split == TofuSplit::kRealAuthors || split == TofuSplit::kWorldFacts;
    if (has_field(items, "perturbed_avg_nll")) {
      for (const auto& it : items) t.perturbed_loss.push_back(it["perturbed_avg_nll"].get<std::vector<double>>());
      t.paraphrased_loss = options ? t.gt_loss
                                   : (has_field(items, "paraphrased_avg_nll") ? field_values(items, "paraphrased_avg_nll")
                                                                              : std::vector<double>{});
      if (t.paraphrased_loss.empty()) t.perturbed_loss.clear();
    }
    if (has_field(items, "rougeL_recall")) t.rouge_l_recall = field_values(items, "rougeL_recall");
    out[split] = std::move(t);
  }
  return out;
}

ReferenceData reference_from_eval(const Json& eval, const std::string& source) {
  const std::string suite = eval.value("suite", "");
  const Suite& su = find_suite(suite);
  ReferenceData r;
  r.kind = "eval";
  r.source = source;
  // Every split's per-item NLL (mia_reference) and, where alternatives were scored, its truth
  // ratios (forget_quality, histograms). Without a paraphrased answer the alternatives are
  // options and the answer is its own paraphrase (TOFU's real authors and world facts).
  if (eval.contains("splits")) {
    for (const auto& [name, split] : eval["splits"].items()) {
      const Json& items = split["items"];
      if (!has_field(items, "avg_nll")) continue;
      TofuItems t;
      t.gt_loss = field_values(items, "avg_nll");
      r.avg_nll[name] = t.gt_loss;
      if (!has_field(items, "perturbed_avg_nll")) continue;
      for (const auto& it : items) t.perturbed_loss.push_back(it["perturbed_avg_nll"].get<std::vector<double>>());
      t.paraphrased_loss = has_field(items, "paraphrased_avg_nll") ? field_values(items, "paraphrased_avg_nll") : t.gt_loss;
      r.truth_ratios[name] = truth_ratios(t);
    }
  }
  if (r.truth_ratios.count("forget")) r.forget_truth_ratios = r.truth_ratios["forget"];
  for (const Metric* m : all_metrics()) {
    const auto f = mia_values(split_items(eval, su.mia_forget), m->name);
    const auto h = mia_values(split_items(eval, su.mia_holdout), m->name);
    if (!f.empty() && !h.empty()) r.mia_auc[m->name] = mia_auc(f, h);
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
  const auto known = suite_names();
  LETHE_CHECK(std::find(known.begin(), known.end(), suite) != known.end(), "EVAL.json: unknown suite '", suite, "'");
  Json s = summary_header(suite, eval.value("model", ""), reference);
  const SummaryContext context(eval, suite, reference, seed);
  for (const Metric* m : all_metrics()) {
    if (m->aggregate && std::find(metrics.begin(), metrics.end(), m->name) != metrics.end()) m->aggregate(context, s);
  }
  if (eval.contains("truncation")) s["truncation"] = eval["truncation"];  // what max_length cut
  return s;
}

}  // namespace lethe::eval

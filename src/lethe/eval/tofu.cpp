#include "lethe/eval/tofu.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>

#include "core/json_util.h"
#include "lethe/core/error.h"
#include "lethe/core/file.h"

namespace lethe::eval {
namespace {

using Json = nlohmann::json;

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double mean_perturbed(const std::vector<double>& losses) {
  LETHE_CHECK(!losses.empty(), "TOFU: an item has no perturbed answers");
  return mean_of(losses);
}

template <typename T>
std::vector<T> pick(const std::vector<T>& v, const std::vector<std::size_t>& idx) {
  std::vector<T> out;
  out.reserve(idx.size());
  for (auto i : idx) out.push_back(v[i]);
  return out;
}

// One component: name, and how it is computed from a split's per-item values.
struct ComponentDef {
  TofuSplit split;
  const char* key;
  enum Kind { kProb, kProbNormalised, kRouge, kTruthRatio } kind;
};

constexpr ComponentDef kComponents[] = {
    {TofuSplit::kForget, "forget_Q_A_Prob", ComponentDef::kProb},
    {TofuSplit::kForget, "forget_Q_A_ROUGE", ComponentDef::kRouge},
    {TofuSplit::kForget, "forget_truth_ratio", ComponentDef::kTruthRatio},
    {TofuSplit::kRetain, "retain_Q_A_Prob", ComponentDef::kProb},
    {TofuSplit::kRetain, "retain_Q_A_ROUGE", ComponentDef::kRouge},
    {TofuSplit::kRetain, "retain_Truth_Ratio", ComponentDef::kTruthRatio},
    {TofuSplit::kRealAuthors, "ra_Q_A_Prob_normalised", ComponentDef::kProbNormalised},
    {TofuSplit::kRealAuthors, "ra_Q_A_ROUGE", ComponentDef::kRouge},
    {TofuSplit::kRealAuthors, "ra_Truth_Ratio", ComponentDef::kTruthRatio},
    {TofuSplit::kWorldFacts, "wf_Q_A_Prob_normalised", ComponentDef::kProbNormalised},
    {TofuSplit::kWorldFacts, "wf_Q_A_ROUGE", ComponentDef::kRouge},
    {TofuSplit::kWorldFacts, "wf_Truth_Ratio", ComponentDef::kTruthRatio},
};

// Per-item values whose mean is the component; none when the split's items were not measured
// for it (an evaluation of some metrics only: no alternatives scored, no generations).
std::vector<double> per_item(const ComponentDef& c, const TofuItems& items) {
  const bool alternates = !items.paraphrased_loss.empty() || !items.perturbed_loss.empty();
  switch (c.kind) {
    case ComponentDef::kProb: return answer_probabilities(items);
    case ComponentDef::kProbNormalised:
      return alternates ? normalised_answer_probabilities(items) : std::vector<double>{};
    case ComponentDef::kRouge: return items.rouge_l_recall;
    case ComponentDef::kTruthRatio: {
      if (!alternates) return {};
      std::vector<double> tr = truth_ratios(items), out;
      for (double r : tr) {
        out.push_back(c.split == TofuSplit::kForget ? std::min(r, 1.0 / r) : std::max(0.0, 1.0 - r));
      }
      return out;
    }
  }
  return {};
}

// TOFU keys items by their index as a decimal string ("0", "1", ...).
long item_index(const std::string& key, const std::string& where) {
  long v = 0;
  const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), v);
  LETHE_CHECK(!key.empty() && ec == std::errc() && end == key.data() + key.size() && v >= 0, where, ": key '", key,
              "' is not an item index");
  return v;
}

std::vector<double> dict_values(const Json& d, const std::string& where) {
  LETHE_CHECK(d.is_object(), where, " must be an object keyed by item index");
  std::vector<std::pair<long, double>> kv;
  for (const auto& [k, v] : d.items()) {
    LETHE_CHECK(v.is_number(), where, "[", k, "] must be a number");
    kv.emplace_back(item_index(k, where), v.get<double>());
  }
  std::sort(kv.begin(), kv.end());
  std::vector<double> out;
  for (const auto& [_, v] : kv) out.push_back(v);
  return out;
}

std::vector<std::pair<long, const Json*>> sorted_items(const Json& d, const std::string& where) {
  LETHE_CHECK(d.is_object(), where, " must be an object keyed by item index");
  std::vector<std::pair<long, const Json*>> kv;
  for (const auto& [k, v] : d.items()) kv.emplace_back(item_index(k, where), &v);
  std::sort(kv.begin(), kv.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return kv;
}

}  // namespace

const char* tofu_split_key(TofuSplit s) {
  switch (s) {
    case TofuSplit::kForget: return "forget";
    case TofuSplit::kRetain: return "retain";
    case TofuSplit::kRealAuthors: return "ra";
    case TofuSplit::kWorldFacts: return "wf";
  }
  return "?";
}

std::vector<double> truth_ratios(const TofuItems& items) {
  LETHE_CHECK(items.paraphrased_loss.size() == items.size() && items.perturbed_loss.size() == items.size(),
              "TOFU: truth ratio needs paraphrased and perturbed losses for every item");
  std::vector<double> tr;
  tr.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    tr.push_back(std::exp(items.paraphrased_loss[i] - mean_perturbed(items.perturbed_loss[i])));
  }
  return tr;
}

double truth_ratio_closer_to_1(const std::vector<double>& tr) {
  std::vector<double> v;
  for (double r : tr) v.push_back(std::min(r, 1.0 / r));
  return mean(v);
}

double truth_ratio_true_better(const std::vector<double>& tr) {
  std::vector<double> v;
  for (double r : tr) v.push_back(std::max(0.0, 1.0 - r));
  return mean(v);
}

std::vector<double> answer_probabilities(const TofuItems& items) {
  std::vector<double> p;
  for (double l : items.gt_loss) p.push_back(std::exp(-l));
  return p;
}

std::vector<double> normalised_answer_probabilities(const TofuItems& items) {
  LETHE_CHECK(items.perturbed_loss.size() == items.size(), "TOFU: normalised probability needs wrong options");
  std::vector<double> out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const double p_true = std::exp(-items.gt_loss[i]);
    double all = p_true;
    for (double l : items.perturbed_loss[i]) all += std::exp(-l);
    out.push_back(p_true / all);
  }
  return out;
}

const TofuComponent* TofuSummary::find(const std::string& key) const {
  for (const auto& c : components) {
    if (c.key == key) return &c;
  }
  return nullptr;
}

TofuSummary summarize_tofu(const std::map<TofuSplit, TofuItems>& splits, const std::vector<double>* reference_forget_tr,
                           std::uint64_t seed) {
  TofuSummary s;
  std::map<std::string, std::vector<double>> values;  // per-item values of each component
  for (const auto& def : kComponents) {
    auto it = splits.find(def.split);
    if (it == splits.end() || it->second.size() == 0) continue;
    std::vector<double> v = per_item(def, it->second);
    if (v.empty()) continue;
    TofuComponent c{def.key, mean(v), bootstrap_mean_ci(v, seed ^ std::hash<std::string>{}(def.key))};
    s.components.push_back(c);
    values[def.key] = std::move(v);
  }

  // Model utility: all nine retain/ra/wf components are needed.
  std::vector<std::string> utility_keys;
  for (const auto& def : kComponents) {
    if (def.split != TofuSplit::kForget) utility_keys.push_back(def.key);
  }
  const bool complete = std::all_of(utility_keys.begin(), utility_keys.end(),
                                    [&](const std::string& k) { return values.count(k) > 0; });
  if (complete) {
    std::vector<double> comps;
    for (const auto& k : utility_keys) comps.push_back(s.find(k)->value);
    s.has_model_utility = true;
    s.model_utility = harmonic_mean(comps);
    // Bootstrap: resample each split's items, recompute the nine means and their harmonic mean.
    const TofuSplit groups[] = {TofuSplit::kRetain, TofuSplit::kRealAuthors, TofuSplit::kWorldFacts};
    std::vector<std::size_t> sizes;
    for (auto g : groups) sizes.push_back(splits.at(g).size());
    s.model_utility_ci = bootstrap_ci_groups(
        sizes,
        [&](const std::vector<std::vector<std::size_t>>& idx) {
          std::vector<double> c;
          for (const auto& def : kComponents) {
            if (def.split == TofuSplit::kForget) continue;
            const std::size_t g = def.split == TofuSplit::kRetain ? 0 : def.split == TofuSplit::kRealAuthors ? 1 : 2;
            const auto& v = values[def.key];
            double sum = 0;
            for (auto i : idx[g]) sum += v[i];
            c.push_back(sum / static_cast<double>(idx[g].size()));
          }
          return harmonic_mean(c);
        },
        seed ^ 0x6d75ULL);
  }

  if (reference_forget_tr != nullptr) {
    auto it = splits.find(TofuSplit::kForget);
    LETHE_CHECK(it != splits.end() && it->second.size() > 0, "forget quality needs the forget split's items");
    const std::vector<double> mine = truth_ratios(it->second);
    const std::vector<double>& ref = *reference_forget_tr;
    LETHE_CHECK(!ref.empty(), "forget quality: the reference has no forget truth ratios");
    KsResult ks = ks_2samp(mine, ref);
    s.has_forget_quality = true;
    s.forget_quality = ks.pvalue;
    s.ks_statistic = ks.statistic;
    s.ks_method = ks.method;
    s.forget_items = mine.size();
    s.reference_forget_items = ref.size();
  }
  return s;
}

bool is_tofu_legacy_log(const std::filesystem::path& path) {
  if (!std::filesystem::is_regular_file(path)) return false;
  try {
    Json j = Json::parse(read_file(path));
    return j.is_object() && j.contains("eval_log_forget.json");
  } catch (const std::exception&) {
    return false;
  }
}

namespace {
std::map<TofuSplit, TofuItems> read_legacy_log(const std::filesystem::path& path) {
  Json j;
  try {
    j = Json::parse(read_file(path));
  } catch (const Json::exception& e) {
    fail(path.string(), ": not valid JSON (", e.what(), ")");
  }
  const std::pair<const char*, TofuSplit> files[] = {{"eval_log_forget.json", TofuSplit::kForget},
                                                      {"eval_log.json", TofuSplit::kRetain},
                                                      {"eval_real_author_wo_options.json", TofuSplit::kRealAuthors},
                                                      {"eval_real_world_wo_options.json", TofuSplit::kWorldFacts}};
  std::map<TofuSplit, TofuItems> out;
  for (const auto& [file, split] : files) {
    if (!j.contains(file)) continue;
    const Json& log = j[file];
    const std::string where = path.string() + ": " + file;
    for (const char* key : {"avg_gt_loss", "avg_paraphrased_loss", "average_perturb_loss", "rougeL_recall"}) {
      LETHE_CHECK(log.contains(key), where, " has no '", key, "'");
    }
    TofuItems items;
    items.gt_loss = dict_values(log["avg_gt_loss"], where + ".avg_gt_loss");
    items.paraphrased_loss = dict_values(log["avg_paraphrased_loss"], where + ".avg_paraphrased_loss");
    items.rouge_l_recall = dict_values(log["rougeL_recall"], where + ".rougeL_recall");
    for (const auto& [_, v] : sorted_items(log["average_perturb_loss"], where + ".average_perturb_loss")) {
      LETHE_CHECK(v->is_array() && !v->empty() && std::all_of(v->begin(), v->end(), [](const Json& x) { return x.is_number(); }),
                  where, ".average_perturb_loss: each item must be a non-empty list of numbers");
      items.perturbed_loss.push_back(v->get<std::vector<double>>());
    }
    if (log.contains("generated_text")) {
      for (const auto& [_, v] : sorted_items(log["generated_text"], where + ".generated_text")) {
        LETHE_CHECK(v->is_array() && v->size() == 3 && (*v)[0].is_string() && (*v)[1].is_string() &&
                        (*v)[2].is_string(),
                    where, ".generated_text: each item must be [input, generation, ground truth] (three strings)");
        items.input.push_back((*v)[0].get<std::string>());
        items.generation.push_back((*v)[1].get<std::string>());
        items.ground_truth.push_back((*v)[2].get<std::string>());
      }
    }
    const std::size_t n = items.gt_loss.size();
    LETHE_CHECK(items.paraphrased_loss.size() == n && items.perturbed_loss.size() == n &&
                    items.rouge_l_recall.size() == n,
                where, ": per-item lists differ in length");
    out[split] = std::move(items);
  }
  LETHE_CHECK(out.count(TofuSplit::kForget), path.string(), ": no eval_log_forget.json in this legacy log");
  return out;
}
}  // namespace

// A value of the wrong type the checks above do not name (deep in the file) still names the file.
std::map<TofuSplit, TofuItems> read_tofu_legacy_log(const std::filesystem::path& path) {
  return json_named(path.string(), [&] { return read_legacy_log(path); });
}

}  // namespace lethe::eval

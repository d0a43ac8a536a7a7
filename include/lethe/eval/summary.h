// From per-item evaluation logs to a suite's summary (torch-free). EVAL.json (lethe's per-item
// log, written by run_eval) or TOFU's legacy eval_log_aggregated.json go in; SUMMARY.json comes
// out, with OpenUnlearning's key names, 95% bootstrap intervals, and the details behind each
// number. A reference (the retain-only model) is an explicit input: forget_quality and privleak
// are computed against it, or left out and listed under "omitted" when none was given.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lethe/eval/tofu.h"

namespace lethe::eval {

using Json = nlohmann::json;

inline constexpr int kEvalFormatVersion = 1;

// What the reference contributes, from whichever form it was given in.
struct ReferenceData {
  std::string kind;    // "model", "eval" (a lethe EVAL.json) or "tofu_legacy"
  std::string source;  // path
  std::optional<std::vector<double>> forget_truth_ratios;
  std::map<std::string, double> mia_auc;                     // attack -> AUC, forget vs holdout
  std::map<std::string, std::vector<double>> avg_nll;        // split -> per-item avg NLL
  std::map<std::string, std::vector<double>> truth_ratios;   // split -> per-item (for histograms)
  Json eval;  // a reference model evaluated here: its EVAL.json (written to OUT/reference/)
};

ReferenceData reference_from_eval(const Json& eval, const std::string& source);
// A lethe EVAL.json or a TOFU legacy log, by content.
ReferenceData reference_from_file(const std::filesystem::path& path);

// Reads an EVAL.json, checking format and version.
Json read_eval_file(const std::filesystem::path& path);
// TOFU splits of a lethe EVAL.json as per-item numbers.
std::map<TofuSplit, TofuItems> tofu_items_from_eval(const Json& eval);

// SUMMARY.json of an EVAL.json: the aggregate of every metric in `metrics` (already validated),
// in registry order (eval/metric.h).
Json summarize(const Json& eval, const ReferenceData* reference, const std::vector<std::string>& metrics,
               std::uint64_t seed = 0);
// SUMMARY.json of a TOFU legacy log (TOFU's nine utility components, forget components,
// forget quality when a reference is given; no MIA: those logs carry no holdout scores).
Json summarize_tofu_legacy(const std::filesystem::path& log, const ReferenceData* reference,
                           std::uint64_t seed = 0);

}  // namespace lethe::eval

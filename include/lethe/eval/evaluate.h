// Running an evaluation suite on a model: the `lethe eval` command as a library call.
//
//   suite "tofu" (eval/suites/tofu.cpp): forget (<forget_split>_perturbed.jsonl), retain (retain_perturbed.jsonl), real
//     authors and world facts (*_perturbed.jsonl), holdout (holdoutNN.jsonl, for membership
//     inference) from a TOFU-layout folder;
//   suite "muse" (eval/suites/muse.cpp): verbmem/forget.json, knowmem/{forget,retain}_qa(_icl).json,
//     privleak/{forget,holdout}.json from a MUSE-layout folder.
//
// Writes EVAL.json (every item with every metric), SUMMARY.json (aggregates with 95% CIs) and
// report.html into `out`. Formulas and file formats: docs/metrics.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lethe/eval/summary.h"
#include "lethe/text/template.h"

namespace lethe::model {
class CausalLM;
}
namespace lethe::text {
class Tokenizer;
}

namespace lethe::eval {

struct EvalOptions {
  std::string suite = "tofu";
  std::filesystem::path model;      // HF folder (unless from_logs)
  std::filesystem::path tokenizer;  // default: the model folder's
  std::filesystem::path data;       // the suite's data folder
  std::filesystem::path out;        // output folder
  // The retain-only model: a model folder, a lethe EVAL.json, or (tofu) TOFU's legacy log.
  std::filesystem::path reference;
  // Summarise an existing per-item log (EVAL.json or TOFU legacy log) instead of running a model.
  std::filesystem::path from_logs;
  std::string forget_split = "forget10";  // tofu: forget01 | forget05 | forget10 (holdout follows)
  std::vector<std::string> metrics;       // empty: the suite's defaults
  std::vector<std::string> splits;        // only these of the suite's splits (EVAL.json names); empty: all
  std::int64_t skip_items = 0;      // per split, leave out the first N items (before max_items; probes)
  text::PromptTemplate prompt_template = text::PromptTemplate::named("plain");
  std::int64_t batch_size = 8;
  std::int64_t max_new_tokens = 0;  // 0: the suite's (tofu 200, muse verbmem 128, knowmem 32)
  std::int64_t max_length = 0;      // tokens per scored sequence; 0: tofu 512, muse 2048
  std::int64_t max_items = 0;       // per split, 0 = all (the first N items)
  double min_k = 0.4;               // k of the Min-K% attacks
  std::uint64_t seed = 0;           // bootstrap
  std::string device = "cpu";
  // The dtype the evaluated model and a reference model folder are held in: float32, or
  // bfloat16 / float16 for half the memory (computed in fp32, model/dtype.h).
  std::string dtype = "float32";
  bool progress = true;
  bool report = true;
  bool generation = true;       // false: skip generation (and ROUGE)
  bool force = false;           // replace an existing non-empty `out` as a whole
  bool reference_pass = false;  // internal: only what a reference contributes (forget/holdout, privleak)
};

struct EvalOutputs {
  Json eval;     // EVAL.json content (empty with from_logs)
  Json summary;  // SUMMARY.json content
  std::filesystem::path eval_path, summary_path, report_path;
};

EvalOutputs run_eval(const EvalOptions& options);

// What the probes (probe/) re-measure on a suite after each attack: the splits that hold the
// forget set and the metrics that say how much of it a model knows; and, for the relearning
// attack, the forget set and a benign set sharing no facts with it as QA files (empty where
// the suite has none).
struct ForgetView {
  std::vector<std::string> splits, metrics;
  std::filesystem::path forget_qa, benign_qa;
};
ForgetView forget_view(const EvalOptions& options);

// The metrics a run computes: options.metrics checked against the suite, or its defaults.
std::vector<std::string> eval_metrics(const EvalOptions& options);
// The reference's numbers: from options.reference (a model folder is evaluated here, scoring
// only, its EVAL.json kept in ReferenceData::eval); none without one.
std::optional<ReferenceData> prepare_reference(const EvalOptions& options, const std::vector<std::string>& metrics);
// An `eval:` section of a run config (suite, data, forget_split, reference, metrics, max_items,
// max_new_tokens, max_length, batch_size, every): paths relative to `base`, outputs to `out`.
// Unknown keys are an error listing the accepted ones. `every` (steps, 0 = only at the end) is
// returned through `every`.
EvalOptions eval_options_from_config(const Json& section, const std::filesystem::path& base,
                                     const std::filesystem::path& out, std::int64_t& every);

// Writes EVAL.json (unless null), SUMMARY.json, report.html and the reference model's
// reference/EVAL.json as the whole folder `dir` (core/output.h StagedFolder: built beside it,
// renamed into place when complete). An existing non-empty `dir` is an error unless `replace`.
EvalOutputs write_eval_outputs(const std::filesystem::path& dir, Json eval, Json summary, const ReferenceData* ref,
                               const std::string& title, bool report = true, bool replace = false);

// The same on a model already in memory (e.g. an unlearning run's evaluation callback); no
// files are written. `reference` may be null.
Json evaluate_model(model::CausalLM& model, const text::Tokenizer& tok, const EvalOptions& options,
                    const ReferenceData* reference);

}  // namespace lethe::eval

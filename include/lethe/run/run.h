// Runs (the run/ layer): `lethe finetune` and `lethe unlearn` from a YAML config (examples/configs/, and
// docs/training.md for every key). A run directory receives
//   model/            the result as a Hugging Face folder (with the tokenizer)
//   adapter/          the PEFT adapter, for LoRA runs
//   train_log.jsonl   one line per optimizer step: loss, every loss term, lr, grad norm, evals
//   run.json          the resolved config, versions, input fingerprints and the outcome
//   checkpoints/      resumable state (when train.checkpoint_every > 0)
//   eval/             the `eval:` section's suite on the final model (EVAL.json, SUMMARY.json, report.html)
//   probe/            the `probe:` section's probes of the final model (PROBE.json, probe.html)
//
// A run is named stages over its typed config: check the inputs, prepare the evaluation (the
// reference is evaluated before training), prepare the inputs (tokenizer, model, fingerprints),
// make the job (data, objective, reference copy, probe set: the one place finetune and unlearn
// differ), select the trainable parameters (LoRA, the method's selection, or all), train, write
// the outputs, evaluate, write run.json.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lethe/core/config.h"
#include "lethe/eval/evaluate.h"
#include "lethe/model/dtype.h"
#include "lethe/probe/probe.h"
#include "lethe/text/template.h"
#include "lethe/train/lora.h"
#include "lethe/train/trainer.h"
#include "lethe/unlearn/method.h"

namespace lethe::run {

using train::LoraConfig;
using train::TrainerConfig;
using train::TrainResult;

enum class RunKind { kFinetune, kUnlearn };

struct DataConfig {
  std::string format = "qa";  // finetune data: qa | completion | text
  std::filesystem::path train;             // finetune
  // finetune: pretraining text (`text_key` records) mixed into the examples as max_length chunks,
  // e.g. biographies beside QA (the demo's targets and oracles).
  std::filesystem::path train_text;
  // finetune: controlled insertions (Hubble's perturbation data): documents {"text",
  // "repetitions": d}, each trained d times over the whole run, in the epochs `insert_timing`
  // gives (data::insertion_schedule: spread, first or last), packed into windows of their own.
  std::filesystem::path insert_text;
  std::string insert_timing = "spread";
  std::filesystem::path forget, retain, idk;  // unlearn (idk: refusal strings, one per record)
  // unlearn: raw text to forget (`text_key` records), each record one forget example whose
  // every token after the first is a target — canaries, ghost sentences, a leaked document —
  // beside or instead of the forget QA.
  std::filesystem::path forget_text;
  // unlearn: QA of people the model never saw (holdoutNN), for train.stop_rule holdout_nll.
  std::filesystem::path holdout;
  text::PromptTemplate prompt_template = text::PromptTemplate::named("plain");
  text::SpanRule span_rule = text::SpanRule::kCommonPrefix;
  std::int64_t max_length = 512;
  std::string prompt_key = "prompt", continuation_key = "gt", text_key = "text";
};

struct RunConfig {
  RunKind kind = RunKind::kFinetune;
  std::filesystem::path model;       // HF folder
  // The dtype weights are held in while frozen (model.dtype): the LoRA base, a method's
  // reference, the model of the eval section; trainable tensors are fp32 whatever it says.
  c10::ScalarType model_dtype = c10::kFloat;
  bool from_scratch = false;         // read only config.json from `model`; random init(seed)
  std::filesystem::path tokenizer;   // default: the model folder
  std::filesystem::path output_dir;
  std::uint64_t seed = 0;
  std::string device = "cpu";
  DataConfig data;
  std::string method;                // unlearn
  unlearn::Params method_params;
  TrainerConfig train;
  bool lora = false;
  LoraConfig lora_config;
  bool lora_merge = true;            // also write the merged model/ for LoRA runs
  std::int64_t eval_examples = 32;   // per set, for the train.eval_every probability callback
  // train.stop_rule (unlearn): "" none; "holdout_nll": stop at the first check (every
  // train.stop_every steps) where the forget answers' mean NLL reaches the holdout answers' —
  // the forget set as unfamiliar as never-seen people, a rule that needs no oracle.
  std::string stop_rule;
  std::string resolved_json;         // the whole config after overrides, as JSON
  // The `eval:` section: the suite on the final model into output_dir/eval/, and its summary
  // numbers into train_log.jsonl every `eval_every` steps (0: only at the end). Checked when the
  // config is parsed (suite, metrics, files, reference), before any training.
  std::optional<eval::EvalOptions> eval;
  std::int64_t eval_every = 0;
  // The `probe:` section (unlearn runs): the probes on the final model, against probe.reference
  // (the oracle) and the run's model as the target, into output_dir/probe/ (PROBE.json,
  // probe.html). Checked when the config is parsed.
  std::optional<probe::ProbeOptions> probe;
  std::filesystem::path config_dir;  // relative paths in the config are resolved against it
};

// Reads a YAML config and applies `overrides` ("train.lr=1e-4", "method.beta=0.2"). Every key is
// checked: an unknown key, a wrong type or a bad value is one error that names the key and
// lists what is accepted.
RunConfig load_run_config(const std::filesystem::path& yaml, const std::vector<std::string>& overrides,
                          RunKind kind);
// The same from a config tree already in memory (what the YAML file holds, e.g. one a program
// builds and also writes out for its user to rerun); relative paths resolve against `base`.
RunConfig parse_run_config(const Json& root, const std::filesystem::path& base, RunKind kind);

struct RunSummary {
  TrainResult result;
  std::filesystem::path model_dir, adapter_dir;
  std::filesystem::path eval_summary;  // eval/SUMMARY.json when the config has an eval: section
  std::filesystem::path probe_json;    // probe/PROBE.json when it has a probe: section
  std::map<std::string, double> final_eval;
};

RunSummary run(const RunConfig& config);

}  // namespace lethe::run

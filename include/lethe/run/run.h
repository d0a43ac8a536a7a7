// Runs (the run/ layer): `lethe finetune` and `lethe unlearn` from a YAML config (examples/configs/, and
// docs/training.md for every key). A run directory receives
//   model/            the result as a Hugging Face folder (with the tokenizer)
//   adapter/          the PEFT adapter, for LoRA runs
//   train_log.jsonl   one line per optimizer step: loss, every loss term, lr, grad norm, evals
//   run.json          the resolved config, versions, input fingerprints and the outcome
//   checkpoints/      resumable state (when train.checkpoint_every > 0)
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

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
  std::filesystem::path forget, retain, idk;  // unlearn (idk: refusal strings, one per record)
  text::PromptTemplate prompt_template = text::PromptTemplate::named("plain");
  text::SpanRule span_rule = text::SpanRule::kCommonPrefix;
  std::int64_t max_length = 512;
  std::string prompt_key = "prompt", continuation_key = "gt", text_key = "text";
};

struct RunConfig {
  RunKind kind = RunKind::kFinetune;
  std::filesystem::path model;       // HF folder
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
  std::string resolved_json;         // the whole config after overrides, as JSON
  // The `eval:` section, unparsed (JSON; empty when absent), run by the program that runs the
  // config (apps/lethe/cmd_train.cpp, RunHooks).
  std::string eval_section;
  std::filesystem::path config_dir;  // relative paths in the config are resolved against it
};

// Reads a YAML config and applies `overrides` ("train.lr=1e-4", "method.beta=0.2"). Every key is
// checked: an unknown key, a wrong type or a bad value is one error that names the key and
// lists what is accepted.
RunConfig load_run_config(const std::filesystem::path& yaml, const std::vector<std::string>& overrides,
                          RunKind kind);

// Optional work around a run, supplied by its caller: `periodic` adds numbers to the step's
// train_log entry every `every` optimizer steps; `at_end` sees the final model (merged when
// LoRA) after the outputs are written.
struct RunHooks {
  std::int64_t every = 0;
  std::function<std::map<std::string, double>(model::CausalLM& model, std::int64_t step)> periodic;
  std::function<void(model::CausalLM& model)> at_end;
};

struct RunSummary {
  TrainResult result;
  std::filesystem::path model_dir, adapter_dir;
  std::map<std::string, double> final_eval;
};

RunSummary run(const RunConfig& config, const RunHooks& hooks = {});

}  // namespace lethe::run

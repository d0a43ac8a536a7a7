// Reading, creating and writing models in the Hugging Face folder layout.
//
//   model/
//     config.json               model_type and hyper-parameters (HF keys)
//     generation_config.json    optional: bos/eos/pad and generation defaults
//     model.safetensors         weights, or model.safetensors.index.json + shards
//     tokenizer files           carried along, never interpreted here
//
// Loading is strict (architecture.md §3): every parameter must be present with its exact shape, and
// every tensor in the checkpoint must be a parameter, a known alias or a declared ignorable
// buffer. Errors name the tensor and both shapes.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lethe/model/causal_lm.h"
#include "lethe/model/config.h"
#include "lethe/model/dtype.h"

namespace lethe::io {
class Checkpoint;
}

namespace lethe::model {

// Whether load_model refuses weights holding NaN or Inf (default: yes). The CLI's global
// --allow-nonfinite turns the check off for the whole process.
void set_allow_nonfinite(bool allow);
bool allow_nonfinite();

struct LoadOptions {
  // The dtype weights are held in, converted from the checkpoint's as they are read. float32,
  // float64, or half size: bfloat16 / float16, computed with in fp32 (model/blocks.h) and held
  // frozen (training keeps its trainable tensors in fp32, run/run.cpp).
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::kCPU;
  bool check_finite = !allow_nonfinite();  // one vectorised scan per tensor after loading
};

// The model_type values lethe can run.
std::vector<std::string> supported_model_types();

// One tensor of a checkpoint: its Hugging Face name and shape.
struct TensorKey {
  std::string name;
  std::vector<std::int64_t> shape;
  bool operator==(const TensorKey&) const = default;
};
// The tensors a checkpoint of `config` holds, from its family's table (in the family's order).
std::vector<TensorKey> checkpoint_keys(const ModelConfig& config);
// The family's default LoRA targets: a regex over module names (PEFT's defaults).
const std::string& default_lora_targets(const std::string& model_type);
// A tiny config.json (text) for `model_type`, for tests and examples of every family.
std::string tiny_config(const std::string& model_type);
// The MLP value vectors of block `layer`, (C, I) float32 on the model's device: column i is what
// the MLP adds to the residual stream per unit of its hidden activation i (mlp_act.L), the
// down-projection's column — for families that normalise the MLP's output before adding it
// (Gemma-2), times that norm's gain, its direction as added. From the family's table.
at::Tensor mlp_value_vectors(const CausalLM& model, std::int64_t layer);

// Parses config.json text. `source` names the file in errors.
ModelConfig parse_config(const std::string& json_text, const std::string& source);
// Throws unless `dir` is a folder with config.json that no interrupted write left behind
// (core/output.h temporaries); the error says which.
void check_model_folder(const std::filesystem::path& dir);
// Reads <dir>/config.json (and generation_config.json when present). `path` may also be the
// config.json file itself.
ModelConfig read_config(const std::filesystem::path& path);
// The config.json text for `config`: the source's keys, with every key lethe interprets
// rewritten from `config`. `dtype` sets torch_dtype.
std::string config_to_json(const ModelConfig& config, c10::ScalarType dtype = c10::kFloat);

// A freshly initialised model (CausalLM::init_weights(seed)).
std::shared_ptr<CausalLM> create_model(const ModelConfig& config, const LoadOptions& options = {},
                                       std::uint64_t seed = 0);
// config.json + safetensors weights from a model folder.
std::shared_ptr<CausalLM> load_model(const std::filesystem::path& dir,
                                     const LoadOptions& options = {});
// Strictly copies a checkpoint's tensors into `model`'s parameters.
void load_weights(CausalLM& model, const io::Checkpoint& checkpoint, const std::string& source);
// The same checks as load_weights (names, shapes, dtypes) without reading any weight data.
void verify_checkpoint(CausalLM& model, const io::Checkpoint& checkpoint,
                       const std::string& source);
// The model of `config` with uninitialised weights (to be loaded), in `dtype` on the CPU.
std::shared_ptr<CausalLM> build_model(const ModelConfig& config, c10::ScalarType dtype = c10::kFloat);
// An independent copy (same config and device; weights copied into `dtype`, by default the
// model's storage dtype), e.g. a frozen reference.
std::shared_ptr<CausalLM> clone_model(const CausalLM& model, std::optional<c10::ScalarType> dtype = {});
// A second model over the same parameter tensors (nothing copied) but none of the LoRA
// adapters attached to `model`'s layers, its gradients off: a LoRA run's frozen reference is
// its base this way. Valid while `model`'s parameters are not replaced (or modified in place).
std::shared_ptr<CausalLM> share_weights(const CausalLM& model);

// A llama2.c v0 checkpoint (io/llama2c.h) as a Llama model: RMS eps 1e-5, rope_theta 1e4,
// bos 1, eos 2 (llama2.c's conventions), max positions = its seq_len.
std::shared_ptr<CausalLM> load_llama2c(const std::filesystem::path& file,
                                       const LoadOptions& options = {});

struct SaveOptions {
  std::optional<c10::ScalarType> dtype;  // default: the model's parameter dtype
  bool replace = false;                  // replace an existing non-empty folder as a whole
};

// What write_model stores for a parameter: `t` itself, or a tensor of the same shape computed
// from it (a LoRA-merged weight, train/lora.h), one tensor at a time.
using TensorFilter = std::function<at::Tensor(const std::string& name, const at::Tensor& t)>;

// Writes config.json, generation_config.json and model.safetensors (tied weights once) into
// the existing folder `dir`, each file atomically, in the layout transformers writes (the keys
// its loader reads; no test here runs transformers itself).
void write_model(const CausalLM& model, const std::filesystem::path& dir,
                 std::optional<c10::ScalarType> dtype = {}, const TensorFilter& filter = {});

// The whole folder at once (core/output.h): write_model into a hidden sibling that is renamed
// onto `dir` when complete. An existing non-empty `dir` is an error unless options.replace.
// To add files (a tokenizer), stage the folder yourself: StagedFolder, write_model, commit.
void save_model(const CausalLM& model, const std::filesystem::path& dir,
                const SaveOptions& options = {});

}  // namespace lethe::model

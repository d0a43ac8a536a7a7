// The contract between the registry and an architecture family. Adding a family = one file that
// defines an ArchSpec + one line in registry.cpp + one golden case (docs/HOWTO-add-model.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "lethe/model/causal_lm.h"
#include "lethe/model/config.h"
#include "lethe/model/load.h"

namespace lethe::model {

// Everything a family decides, in one place: adding a family is one file defining this and one
// line in registry.cpp. Tests iterate the registry (supported_model_types) and use
// `tiny_config`, so a new family is tested without editing test lists.
struct ArchSpec {
  std::vector<std::string> model_types;  // HF model_type values this family serves
  // config.json (already known to have this model_type) -> ModelConfig. `where` names the file.
  ModelConfig (*parse)(const Json& config, const std::string& where);
  // Writes this family's HF keys for `config` into `out` (other keys are left alone).
  void (*write)(const ModelConfig& config, Json& out);
  std::shared_ptr<CausalLM> (*build)(const ModelConfig& config);
  // The checkpoint's tensor table for `config`: HF names and shapes, as llama.cpp's tensor-name
  // tables. A test holds it equal to named_parameters() of the built module for every type.
  std::vector<TensorKey> (*checkpoint_keys)(const ModelConfig& config);
  // PEFT's default LoRA targets for the family (a regex over module names, full match).
  std::string lora_targets;
  // The MLP value vectors of a block (load.h mlp_value_vectors); most families are one line of
  // down_projection_columns.
  at::Tensor (*mlp_value_vectors)(const CausalLM& model, std::int64_t layer);
  // A tiny random-model config.json for `model_type` (hidden 32, 2 layers, vocab 97) that
  // exercises what the type does differently (grouped KV heads, partial rotary, biases).
  std::string (*tiny_config)(const std::string& model_type);
};

// The one place that maps model_type to a family; errors list the supported types.
const ArchSpec& find_arch(const std::string& model_type, const std::string& where = "");

// Appends a linear layer's checkpoint keys to a family's key table: `name`.weight (out, in) and,
// with `bias`, `name`.bias (out).
inline void add_linear_keys(std::vector<TensorKey>& keys, const std::string& name, std::int64_t out, std::int64_t in,
                            bool bias) {
  keys.push_back({name + ".weight", {out, in}});
  if (bias) keys.push_back({name + ".bias", {out}});
}

// The keys of SelfAttention and GatedMlp (blocks.h) under `prefix` ("model.layers.N.").
void add_attention_keys(std::vector<TensorKey>& keys, const std::string& prefix, const ModelConfig& c,
                        const std::string& out_name = "o_proj");
void add_gated_mlp_keys(std::vector<TensorKey>& keys, const std::string& prefix, const ModelConfig& c);

// The columns (C, I) of block `layer`'s MLP output weight `name` ("{L}" stands for the layer),
// stored (C, I) as a Linear, or (I, C) as GPT-2's Conv1D (`in_out`); float32, detached.
at::Tensor down_projection_columns(const CausalLM& model, const std::string& name, std::int64_t layer,
                                   bool in_out = false);

// Helpers every family's parser shares.
// The sizes every decoder's config.json names: model_type, vocab_size, hidden_size,
// num_hidden_layers, num_attention_heads (checked positive), intermediate_size and
// num_key_value_heads (default: the heads).
ModelConfig parse_decoder_sizes(const Json& config, const std::string& where);
// hidden_size / num_attention_heads, which must divide it (families without a head_dim key).
std::int64_t derived_head_dim(const ModelConfig& c, const std::string& where);
Activation parse_activation(const std::string& name, const std::string& where);
// bos/eos/pad ids (eos may be an int or a list, as in Llama 3).
void parse_special_ids(const Json& config, ModelConfig& out, const std::string& where);
void write_special_ids(const ModelConfig& config, Json& out);
// rope_scaling of config.json (model/rope.h): null or absent is the default; an unknown type or
// a missing key is an error naming it. `rotary_dim` checks longrope's factor lists.
RopeScaling parse_rope_scaling(const Json& config, std::int64_t rotary_dim, const std::string& where);
Json rope_scaling_json(const RopeScaling& scaling);  // null for the default
// Rejects keys whose non-default value would change the computation in a way lethe does not
// implement, naming the key: `null_keys` must be absent or null, `false_keys` absent or false.
void reject_unsupported(const Json& config, const std::vector<const char*>& null_keys,
                        const std::vector<const char*>& false_keys, const std::string& where);

}  // namespace lethe::model

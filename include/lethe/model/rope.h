// Rotary position embeddings: the inverse frequencies and the cos/sin multiplier of a config's
// rope_scaling, exactly as transformers 4.43 computes them (modeling_rope_utils): default,
// linear, dynamic (NTK), yarn, longrope and llama3. Formulas and the one deliberate difference
// (dynamic is stateless): docs/runtime.md.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lethe/model/config.h"

namespace lethe::model {

struct RotaryTable {
  at::Tensor inv_freq;            // (rotary_dim / 2), fp32, on the CPU
  double attention_scaling = 1.0;  // cos and sin are multiplied by it (yarn, longrope)
};

// The table for sequences whose largest position is `seq_len - 1`. Only `dynamic` (it rescales
// the base past max_position_embeddings) and Phi-3's longrope (its factors switch at the
// pretrained context) depend on the length; the rest ignore it.
RotaryTable rotary_table(const ModelConfig& config, std::int64_t seq_len);
bool rotary_depends_on_length(const ModelConfig& config);

// The rope_scaling types lethe computes (docs/runtime.md); any other is refused by name.
const std::vector<std::string>& rope_scaling_types();
std::string rope_scaling_type_list();  // "default, linear, ..."

// The last position a model may be given: max_position_embeddings - 1, except with dynamic
// scaling, whose purpose is to run past it.
std::int64_t last_position(const ModelConfig& config);

}  // namespace lethe::model

// ModelConfig: the typed form of a Hugging Face config.json, for every supported family.
//
// Each architecture file parses its own config.json keys (HF names and HF defaults) into this
// one struct, and writes them back on save. Keys that decide tensor shapes are required: a
// config.json without them is an error naming the key. Keys that would change the computation
// in ways lethe does not implement (rope_scaling, cross-attention, ...) are rejected by name
// rather than ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lethe::model {

enum class Activation { kGeluTanh, kGeluErf, kQuickGelu, kSilu, kRelu };
enum class NormKind { kLayerNorm, kRmsNorm };
enum class PositionKind { kLearned, kRotary };

struct ModelConfig {
  std::string model_type;  // HF model_type: gpt2, llama, mistral, qwen2, gpt_neox

  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;  // == num_heads without grouped-query attention
  std::int64_t head_dim = 0;      // usually hidden_size / num_heads
  std::int64_t intermediate_size = 0;
  std::int64_t max_position_embeddings = 0;

  NormKind norm = NormKind::kRmsNorm;
  double norm_eps = 1e-5;
  Activation activation = Activation::kSilu;
  bool gated_mlp = true;  // down(act(gate(x)) * up(x)) instead of proj(act(fc(x)))

  PositionKind positions = PositionKind::kRotary;
  double rope_theta = 10000.0;
  std::int64_t rotary_dim = 0;  // leading dims of each head that rotate (partial rotary)

  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;
  bool parallel_residual = false;
  bool tie_word_embeddings = false;
  // Set when the family applies a sliding attention window; lethe refuses sequences longer
  // than the window instead of computing a different attention.
  std::optional<std::int64_t> sliding_window;

  std::optional<std::int64_t> bos_token_id;
  std::optional<std::int64_t> pad_token_id;
  std::vector<std::int64_t> eos_token_ids;

  // The config.json text this config was read from, if any: keys lethe does not interpret
  // (architectures, initializer_range, ...) are written back unchanged on save.
  std::string source_json;
  // generation_config.json of the source folder, if any (written back on save).
  std::string generation_config_json;
};

std::string activation_name(Activation a);

// Sanity checks every family shares (positive sizes, divisibility). Throws lethe::Error.
void validate(const ModelConfig& config, const std::string& source);

}  // namespace lethe::model

// ModelConfig: the typed form of a Hugging Face config.json, for every supported family.
//
// Each architecture file parses its own config.json keys (HF names and HF defaults) into this
// one struct, and writes them back on save. Keys that decide tensor shapes are required: a
// config.json without them is an error naming the key. Keys that would change the computation
// in ways lethe does not implement (cross-attention, an unknown rope_scaling type, ...) are
// rejected by name rather than ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lethe::model {

enum class Activation { kGeluTanh, kGeluErf, kQuickGelu, kSilu, kRelu };
enum class NormKind { kLayerNorm, kRmsNorm };
enum class PositionKind { kLearned, kRotary };

// config.json's rope_scaling: how rotary frequencies are remapped for contexts beyond the
// pretrained one, as transformers 4.43 computes them (model/rope.h; formulas in docs/runtime.md).
struct RopeScaling {
  std::string type = "default";  // default | linear | dynamic | yarn | longrope | llama3
  double factor = 1.0;
  // llama3: wavelengths above original / low_freq_factor are divided by factor, below
  // original / high_freq_factor kept, interpolated between.
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  std::int64_t original_max_position_embeddings = 0;  // llama3 (in rope_scaling); longrope (top level)
  std::optional<double> attention_factor;             // yarn, longrope: cos/sin multiplier
  std::optional<double> beta_fast, beta_slow;         // yarn (defaults 32 and 1)
  std::vector<double> short_factor, long_factor;      // longrope: one per rotary frequency
  // longrope as Phi-3's own rotary class applies it: the long factors for a forward whose
  // sequence passes the pretrained context, else the short ones (Llama's path chooses once).
  bool longrope_by_length = false;
};

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
  bool norm_offset = false;       // Gemma: RMSNorm scales by (1 + weight), all in fp32
  bool scale_embeddings = false;  // Gemma: embeddings × sqrt(hidden_size), rounded to the compute dtype
  Activation activation = Activation::kSilu;
  bool gated_mlp = true;  // down(act(gate(x)) * up(x)) instead of proj(act(fc(x)))

  PositionKind positions = PositionKind::kRotary;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  std::int64_t rotary_dim = 0;  // leading dims of each head that rotate (partial rotary)

  std::optional<double> clip_qkv;  // OLMo: q, k and v clamped to ±clip_qkv after projection
  // Gemma-2: attention scores scaled by query_pre_attn_scalar^-1/2 (instead of head_dim's) and
  // soft-capped, cap · tanh(s / cap), before the mask; the final logits soft-capped likewise.
  std::optional<double> query_pre_attn_scalar, attn_logit_softcap, final_logit_softcap;
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;
  bool parallel_residual = false;
  bool tie_word_embeddings = false;
  // Sliding-window attention (Mistral): each position attends to itself and the window - 1
  // positions before it (by index in the sequence, as HF's cache positions), in every layer.
  std::optional<std::int64_t> sliding_window;
  bool window_on_even_layers = false;  // Gemma-2: the window applies to layers 0, 2, 4, ... only
  // Qwen2 (use_sliding_window): the window applies to layers >= max_window_layers only.
  std::optional<std::int64_t> window_from_layer;
  // Sequences longer than this are refused: Phi-3's sliding_window acts only under
  // transformers 4.43's flash-attention (a window of w + 1 keys there, w in later versions'
  // masks), so lethe computes only where the window changes nothing.
  std::optional<std::int64_t> refuse_beyond;

  // Whether the sliding window (when set) applies to layer l.
  bool layer_windowed(std::int64_t l) const {
    if (window_on_even_layers) return l % 2 == 0;
    return !window_from_layer || l >= *window_from_layer;
  }

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

// Shared building blocks of every architecture (architecture.md §2 model/blocks).
//
// Modules name their parameters as Hugging Face does ("weight", "bias"), so an architecture
// that registers them under HF submodule names gets HF checkpoint keys from named_parameters().
//
// Shapes: B batch, T new tokens, S attended positions (cached + new), H query heads, KVH
// key/value heads, D head dim, C hidden, I MLP width.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <cstdint>
#include <optional>
#include <string>

#include "lethe/model/causal_lm.h"
#include "lethe/model/config.h"
#include "lethe/model/dtype.h"
#include "lethe/model/hooks.h"
#include "lethe/model/kv_cache.h"

namespace lethe::model {

// Everything a block needs besides its input, computed once per forward.
struct LayerContext {
  std::int64_t layer = 0;
  at::Tensor cos, sin;    // (B|1, 1, T, rotary_dim) rotary tables; undefined without rotary
  at::Tensor mask_bias;   // (B|1, 1, T, S) additive mask (0 or lowest); undefined: no mask
  double score_scale = 0;  // scores = q·k × score_scale (Gemma-2); 0: q·k / sqrt(head_dim)
  double softcap = 0;      // scores = softcap · tanh(scores / softcap) before the mask; 0: none
  KVCache* cache = nullptr;
  HookObserver* hooks = nullptr;
};

// Calls the observer, if any, at `site` of the context's layer.
inline void run_hook(const LayerContext& ctx, HookSite site, at::Tensor& x) {
  if (ctx.hooks != nullptr) ctx.hooks->on(HookPoint{site, ctx.layer}, x);
}

// The dtype the blocks' constructors create parameters in, in this thread: float32 unless a
// ParameterDtypeScope says otherwise. build_model sets it, so a model stored in bf16 is built in
// bf16 and never holds an fp32 copy of its weights.
c10::ScalarType parameter_dtype();
class ParameterDtypeScope {
 public:
  explicit ParameterDtypeScope(c10::ScalarType dtype);
  ~ParameterDtypeScope();
  ParameterDtypeScope(const ParameterDtypeScope&) = delete;
  ParameterDtypeScope& operator=(const ParameterDtypeScope&) = delete;

 private:
  c10::ScalarType previous_;
};
// An empty (uninitialised) or zero/one-filled parameter tensor in parameter_dtype().
at::Tensor new_parameter(at::IntArrayRef shape, double fill = 0.0, bool filled = false);

// y = x W^T + b (b may be undefined). A single row takes the matrix-vector path (addmv), ~3x
// faster than sgemm with M=1 on these CPUs (performance.md fact 5). A half-precision W (with x
// in fp32) is converted a block of rows at a time (model/blocks/half_weights.h); as a frozen
// weight it keeps no fp32 copy for the backward.
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// Fills `p` (any device/dtype) with N(0, std) drawn on the CPU from `gen`, so values depend
// on the seed only.
void fill_normal(at::Tensor& p, at::Generator& gen, double std);

// A low-rank adapter attached to a Linear or Conv1D (train/lora.cpp owns it): the layer adds
// scale · B A dropout(x). A (r, in), B (out, r).
struct LoraHook {
  at::Tensor a, b;
  double scale = 1.0;
  double dropout = 0.0;
  at::Generator* generator = nullptr;  // dropout masks, seeded by the adapter
  bool enabled = true;
  at::Tensor apply(const at::Tensor& x, bool training) const;
};

// y = x W^T + b with W (out, in) as nn.Linear stores it.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(std::int64_t in, std::int64_t out, bool bias);
  at::Tensor forward(const at::Tensor& x);
  void init(at::Generator& gen, double std);
  at::Tensor weight, bias;
  LoraHook* lora = nullptr;
};
TORCH_MODULE(Linear);

// GPT-2's Conv1D: y = x W + b with W stored (in, out).
class Conv1DImpl : public torch::nn::Module {
 public:
  Conv1DImpl(std::int64_t in, std::int64_t out);
  at::Tensor forward(const at::Tensor& x);
  void init(at::Generator& gen, double std);
  at::Tensor weight, bias;
  LoraHook* lora = nullptr;
};
TORCH_MODULE(Conv1D);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(std::int64_t count, std::int64_t dim);
  at::Tensor forward(const at::Tensor& ids);  // (B, T) -> (B, T, dim)
  void init(at::Generator& gen, double std);
  at::Tensor weight;
};
TORCH_MODULE(Embedding);

// x * rsqrt(mean(x^2) + eps) * weight, normalised in fp32 (as HF's LlamaRMSNorm). With
// `offset` (Gemma's): the product with (1 + weight) in fp32 too, and weights initialised to 0.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(std::int64_t dim, double eps, bool offset = false);
  at::Tensor forward(const at::Tensor& x);
  void init();
  at::Tensor weight;
  double eps;
  bool offset;
};
TORCH_MODULE(RMSNorm);

class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(std::int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x);
  void init();
  at::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm);

at::Tensor activate(const at::Tensor& x, Activation a);

// Self-attention with separate q, k, v and output projections (Llama's layout, shared by
// Mistral, Qwen2, Gemma, Gemma-2, OLMo and Phi): biases as the config says (qkv_bias, o_bias),
// q/k/v clamped to ±clip_qkv when set (OLMo), the output projection registered as `out_name`
// ("o_proj"; Phi's is "dense"). (B, T, C) -> (B, T, C).
class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(const ModelConfig& c, const std::string& out_name = "o_proj");
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  at::Tensor clip(const at::Tensor& x) const;
  std::int64_t h_, kvh_, d_, rot_;
  std::optional<double> clip_;
};
TORCH_MODULE(SelfAttention);

// down(act(gate(x)) * up(x)) (SwiGLU / GeGLU; biases when mlp_bias), the activation product
// observed at kMlpAct. (B, T, C) -> (B, T, C).
class GatedMlpImpl : public torch::nn::Module {
 public:
  explicit GatedMlpImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx);
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(GatedMlp);

// Scaled dot-product attention with rotary positions, KV cache, grouped-query heads and the
// context's mask. q (B, T, H, D), k and v (B, T, KVH, D) — strided views are fine. Query head
// j uses key/value head j / (H / KVH) (HF's repeat_interleave). Returns (B, T, H * D).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     std::int64_t rotary_dim, const LayerContext& ctx);

// Rotates the first `rotary_dim` dims of each head, pairing dim i with i + rotary_dim / 2
// (HF's rotate_half). x (B, H, T, D), cos/sin (B|1, 1, T, rotary_dim).
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                        std::int64_t rotary_dim);

}  // namespace lethe::model

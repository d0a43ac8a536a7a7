#include "lethe/model/blocks.h"

#include "model/blocks/attention_core.h"
#include "model/blocks/decode_kernels.h"
#include "model/blocks/half_weights.h"

#include <cmath>

#include "lethe/core/error.h"

namespace lethe::model {

// ---- parameter dtype -------------------------------------------------------------------------

namespace {
thread_local c10::ScalarType t_parameter_dtype = c10::kFloat;
}  // namespace

c10::ScalarType parameter_dtype() { return t_parameter_dtype; }
ParameterDtypeScope::ParameterDtypeScope(c10::ScalarType dtype) : previous_(t_parameter_dtype) {
  t_parameter_dtype = dtype;
}
ParameterDtypeScope::~ParameterDtypeScope() { t_parameter_dtype = previous_; }

at::Tensor new_parameter(at::IntArrayRef shape, double fill, bool filled) {
  const auto opts = at::TensorOptions().dtype(t_parameter_dtype);
  return filled ? at::full(shape, fill, opts) : at::empty(shape, opts);
}

// ---- Linear / Conv1D -------------------------------------------------------------------------

LinearImpl::LinearImpl(std::int64_t in, std::int64_t out, bool with_bias) {
  weight = register_parameter("weight", new_parameter({out, in}));
  if (with_bias) bias = register_parameter("bias", new_parameter({out}, 0.0, true));
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (half_weight_applies(x, w)) return half_weight_linear(x, w, b);
  if (small_linear_applies(x, w)) return small_linear(x, w, b);
  const std::int64_t in = w.size(1);
  if (x.numel() == in) {
    at::Tensor row = x.reshape({in});
    at::Tensor y = b.defined() ? at::addmv(b, w, row) : at::mv(w, row);
    auto shape = x.sizes().vec();
    shape.back() = w.size(0);
    return y.view(shape);
  }
  return at::linear(x, w, b);
}

void fill_normal(at::Tensor& p, at::Generator& gen, double std) {
  torch::NoGradGuard g;
  p.copy_(at::empty(p.sizes(), at::kFloat).normal_(0.0, std, gen));
}

at::Tensor LoraHook::apply(const at::Tensor& x, bool training) const {
  at::Tensor in = x;
  if (training && dropout > 0.0) {
    at::Tensor keep = at::empty(x.sizes(), x.options()).bernoulli_(1.0 - dropout,
                                                                   generator ? c10::optional<at::Generator>(*generator)
                                                                             : c10::nullopt);
    in = x * keep / (1.0 - dropout);
  }
  return linear(linear(in, a, at::Tensor()), b, at::Tensor()) * scale;
}

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  at::Tensor y = linear(x, weight, bias);
  if (lora != nullptr && lora->enabled) y = y + lora->apply(x, is_training());
  return y;
}

void LinearImpl::init(at::Generator& gen, double std) {
  fill_normal(weight, gen, std);
  torch::NoGradGuard g;
  if (bias.defined()) bias.zero_();
}

Conv1DImpl::Conv1DImpl(std::int64_t in, std::int64_t out) {
  weight = register_parameter("weight", new_parameter({in, out}));
  bias = register_parameter("bias", new_parameter({out}, 0.0, true));
}

at::Tensor Conv1DImpl::forward(const at::Tensor& x) {
  if (half_weight_applies(x, weight)) {
    at::Tensor y = half_weight_linear(x, weight.t(), bias);
    if (lora != nullptr && lora->enabled) y = y + lora->apply(x, is_training());
    return y;
  }
  const std::int64_t in = weight.size(0);
  const std::int64_t out = weight.size(1);
  auto shape = x.sizes().vec();
  shape.back() = out;
  at::Tensor y = x.numel() == in ? at::addmv(bias, weight.t(), x.reshape({in})).view(shape)
                                 : at::addmm(bias, x.reshape({-1, in}), weight).view(shape);
  if (lora != nullptr && lora->enabled) y = y + lora->apply(x, is_training());
  return y;
}

void Conv1DImpl::init(at::Generator& gen, double std) {
  fill_normal(weight, gen, std);
  torch::NoGradGuard g;
  bias.zero_();
}

// ---- Embedding / norms -----------------------------------------------------------------------

EmbeddingImpl::EmbeddingImpl(std::int64_t count, std::int64_t dim) {
  weight = register_parameter("weight", new_parameter({count, dim}));
}

at::Tensor EmbeddingImpl::forward(const at::Tensor& ids) {
  at::Tensor rows = at::embedding(weight, ids);
  return is_half(weight.scalar_type()) ? rows.to(c10::kFloat) : rows;
}

void EmbeddingImpl::init(at::Generator& gen, double std) { fill_normal(weight, gen, std); }

RMSNormImpl::RMSNormImpl(std::int64_t dim, double eps_, bool offset_) : eps(eps_), offset(offset_) {
  weight = register_parameter("weight", new_parameter({dim}, offset ? 0.0 : 1.0, true));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true);
  if (offset) return (xf * at::rsqrt(var + eps) * (1.0 + weight.to(at::kFloat))).to(x.scalar_type());
  at::Tensor normed = (xf * at::rsqrt(var + eps)).to(x.scalar_type());
  return weight.to(normed.scalar_type()) * normed;
}

void RMSNormImpl::init() {
  torch::NoGradGuard g;
  weight.fill_(offset ? 0.0 : 1.0);
}

LayerNormImpl::LayerNormImpl(std::int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", new_parameter({dim}, 1.0, true));
  bias = register_parameter("bias", new_parameter({dim}, 0.0, true));
}

at::Tensor LayerNormImpl::forward(const at::Tensor& x) {
  const auto t = x.scalar_type();
  return at::layer_norm(x, {weight.size(0)}, weight.to(t), bias.to(t), eps);
}

void LayerNormImpl::init() {
  torch::NoGradGuard g;
  weight.fill_(1.0);
  bias.zero_();
}

at::Tensor activate(const at::Tensor& x, Activation a) {
  switch (a) {
    case Activation::kGeluTanh: return at::gelu(x, "tanh");
    case Activation::kGeluErf: return at::gelu(x);
    case Activation::kQuickGelu: return x * at::sigmoid(1.702 * x);
    case Activation::kSilu: return at::silu(x);
    case Activation::kRelu: return at::relu(x);
  }
  fail("internal: unknown activation");
}

// ---- rotary positions and attention ----------------------------------------------------------

namespace {
at::Tensor rotate_half(const at::Tensor& x) {
  const std::int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}
}  // namespace

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                        std::int64_t rotary_dim) {
  const std::int64_t d = x.size(-1);
  if (rotary_dim == d) return x * cos + rotate_half(x) * sin;
  at::Tensor rot = x.narrow(-1, 0, rotary_dim);
  at::Tensor pass = x.narrow(-1, rotary_dim, d - rotary_dim);
  return at::cat({rot * cos + rotate_half(rot) * sin, pass}, -1);
}

SelfAttentionImpl::SelfAttentionImpl(const ModelConfig& c, const std::string& out_name)
    : h_(c.num_heads), kvh_(c.num_kv_heads), d_(c.head_dim), rot_(c.rotary_dim), clip_(c.clip_qkv) {
  q_proj = register_module("q_proj", Linear(c.hidden_size, h_ * d_, c.qkv_bias));
  k_proj = register_module("k_proj", Linear(c.hidden_size, kvh_ * d_, c.qkv_bias));
  v_proj = register_module("v_proj", Linear(c.hidden_size, kvh_ * d_, c.qkv_bias));
  out_proj = register_module(out_name, Linear(h_ * d_, c.hidden_size, c.o_bias));
}

at::Tensor SelfAttentionImpl::clip(const at::Tensor& x) const { return clip_ ? x.clamp(-*clip_, *clip_) : x; }

at::Tensor SelfAttentionImpl::forward(const at::Tensor& x, const LayerContext& ctx) {
  const std::int64_t b = x.size(0), t = x.size(1);
  at::Tensor q = clip(q_proj(x)).view({b, t, h_, d_});
  at::Tensor k = clip(k_proj(x)).view({b, t, kvh_, d_});
  at::Tensor v = clip(v_proj(x)).view({b, t, kvh_, d_});
  return out_proj(attention(q, k, v, rot_, ctx));
}

GatedMlpImpl::GatedMlpImpl(const ModelConfig& c) : act_(c.activation) {
  gate_proj = register_module("gate_proj", Linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
  up_proj = register_module("up_proj", Linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
  down_proj = register_module("down_proj", Linear(c.intermediate_size, c.hidden_size, c.mlp_bias));
}

at::Tensor GatedMlpImpl::forward(const at::Tensor& x, const LayerContext& ctx) {
  at::Tensor a = activate(gate_proj(x), act_) * up_proj(x);  // (B,T,I)
  run_hook(ctx, HookSite::kMlpAct, a);
  return down_proj(a);
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     std::int64_t rotary_dim, const LayerContext& ctx) {
  const std::int64_t b = q.size(0), t = q.size(1), h = q.size(2), d = q.size(3);
  const std::int64_t kvh = k.size(2);
  const std::int64_t rep = h / kvh;

  at::Tensor qh = q.transpose(1, 2);  // (B, H, T, D)
  at::Tensor kh = k.transpose(1, 2);  // (B, KVH, T, D)
  at::Tensor vh = v.transpose(1, 2);
  if (rotary_dim > 0) {
    qh = apply_rotary(qh, ctx.cos, ctx.sin, rotary_dim);
    kh = apply_rotary(kh, ctx.cos, ctx.sin, rotary_dim);
  }
  if (ctx.cache != nullptr) std::tie(kh, vh) = ctx.cache->append(ctx.layer, kh, vh);
  const std::int64_t s = kh.size(2);

  // Scores as HF computes them: the product, then divided by sqrt(head_dim) (Gemma-2: times its
  // scale), soft-capped (Gemma-2), then the mask. The order matters to the gradients' last bits
  // when sqrt(head_dim) is not a power of two. Decoding one position scales q instead: inference
  // only, within the logits tolerance.
  const ScoreScale scale = ctx.score_scale > 0 ? ScoreScale{ctx.score_scale, false}
                                               : ScoreScale{std::sqrt(static_cast<double>(d)), true};
  if (ctx.softcap == 0) {
    const at::Tensor qs = scale.divide ? qh * (1.0 / scale.value) : qh * scale.value;
    if (decode_attention_applies(qs, kh, ctx.mask_bias)) {
      return decode_attention(qs, kh, vh, ctx.mask_bias).view({b, 1, h * d});
    }
  }
  // Grouped heads without copying keys/values: the rep query heads that share a kv head are
  // stacked along the token axis, (B, KVH, rep * T, D) @ (B, KVH, D, S).
  at::Tensor qg = qh.reshape({b, kvh, rep * t, d});
  if (attention_core_applies(qg)) {
    at::Tensor out = attention_core(qg, kh, vh, ctx.mask_bias, rep, scale, ctx.softcap);  // (B, KVH, rep*T, D)
    return out.view({b, h, t, d}).transpose(1, 2).reshape({b, t, h * d});
  }
  at::Tensor scores = at::matmul(qg, kh.transpose(-1, -2)).view({b, h, t, s});  // (B,H,T,S)
  scores = scale.divide ? scores / scale.value : scores * scale.value;
  if (ctx.softcap > 0) scores = at::tanh(scores / ctx.softcap) * ctx.softcap;
  if (ctx.mask_bias.defined()) scores = scores + ctx.mask_bias;
  at::Tensor probs = scores.scalar_type() == at::kFloat
                         ? at::softmax(scores, -1)
                         : at::softmax(scores, -1, at::kFloat).to(scores.scalar_type());
  at::Tensor out = at::matmul(probs.view({b, kvh, rep * t, s}), vh);  // (B, KVH, rep*T, D)
  return out.view({b, h, t, d}).transpose(1, 2).reshape({b, t, h * d});
}

// ---- KV cache ----------------------------------------------------------------------------------

KVCache::KVCache(std::int64_t num_layers, std::int64_t capacity)
    : capacity_(capacity), keys_(num_layers), values_(num_layers) {
  LETHE_CHECK(num_layers > 0 && capacity > 0, "KVCache needs layers and capacity > 0");
}

std::pair<at::Tensor, at::Tensor> KVCache::append(std::int64_t layer, const at::Tensor& k,
                                                  const at::Tensor& v) {
  LETHE_CHECK(layer >= 0 && layer < static_cast<std::int64_t>(keys_.size()), "KVCache has ",
              keys_.size(), " layers, asked for layer ", layer);
  LETHE_CHECK(!at::GradMode::is_enabled() || !(k.requires_grad() || v.requires_grad()),
              "the KV cache is for inference: run under torch::NoGradGuard");
  const std::int64_t t = k.size(2);
  at::Tensor& kb = keys_[layer];
  at::Tensor& vb = values_[layer];
  if (!kb.defined() || length_ + t > kb.size(2)) {
    std::int64_t cap = std::max(capacity_, length_ + t);
    if (kb.defined()) cap = std::max(cap, 2 * kb.size(2));
    at::Tensor nk = at::empty({k.size(0), k.size(1), cap, k.size(3)}, k.options());
    at::Tensor nv = at::empty({v.size(0), v.size(1), cap, v.size(3)}, v.options());
    if (kb.defined() && length_ > 0) {
      nk.narrow(2, 0, length_).copy_(kb.narrow(2, 0, length_));
      nv.narrow(2, 0, length_).copy_(vb.narrow(2, 0, length_));
    }
    kb = nk;
    vb = nv;
    capacity_ = std::max(capacity_, cap);
  }
  LETHE_CHECK(kb.size(0) == k.size(0) && kb.size(1) == k.size(1) && kb.size(3) == k.size(3),
              "KVCache: layer ", layer, " holds keys of shape ", kb.sizes(),
              " but the new keys have shape ", k.sizes());
  kb.narrow(2, length_, t).copy_(k);
  vb.narrow(2, length_, t).copy_(v);
  return {kb.narrow(2, 0, length_ + t), vb.narrow(2, 0, length_ + t)};
}

void KVCache::advance(std::int64_t t) { length_ += t; }

void KVCache::truncate(std::int64_t length) {
  LETHE_CHECK(length >= 0 && length <= length_, "KVCache::truncate: ", length, " positions asked, ", length_, " cached");
  length_ = length;
}

}  // namespace lethe::model

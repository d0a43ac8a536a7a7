// The forward loop every family shares: input checks, positions, the attention mask, rotary
// tables, hook sites, hidden states, the KV cache and the LM head.
#include "lethe/model/causal_lm.h"

#include <unistd.h>

#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <functional>
#include <limits>

#include "lethe/core/error.h"
#include "lethe/model/blocks.h"
#include "lethe/model/rope.h"

namespace lethe::model {

namespace {

// One block under gradient checkpointing: forward without a graph, keeping only the input;
// backward runs the block again with grad on and back-propagates through that fresh graph
// (parameter gradients accumulate into .grad as they would have), returning the input's
// gradient. The block is deterministic, so the gradients are those of the plain forward.
struct BlockRecompute : torch::CustomClassHolder {
  std::function<at::Tensor(const at::Tensor&)> run;
};

struct CheckpointedBlock : public torch::autograd::Function<CheckpointedBlock> {
  static at::Tensor forward(torch::autograd::AutogradContext* actx, const at::Tensor& x,
                            const c10::intrusive_ptr<BlockRecompute>& r) {
    actx->save_for_backward({x});
    actx->saved_data["block"] = c10::IValue::make_capsule(r);
    return r->run(x);  // grad mode is off inside Function::forward
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* actx,
                                                 torch::autograd::variable_list grads) {
    auto r = c10::static_intrusive_pointer_cast<BlockRecompute>(actx->saved_data["block"].toCapsule());
    at::Tensor x = actx->get_saved_variables()[0].detach().requires_grad_(true);
    at::Tensor y;
    {
      torch::AutoGradMode grad(true);
      y = r->run(x);
    }
    torch::autograd::backward({y}, {grads[0]});
    return {x.grad(), at::Tensor()};
  }
};

at::Tensor checkpointed(const at::Tensor& x, std::function<at::Tensor(const at::Tensor&)> run) {
  auto r = c10::make_intrusive<BlockRecompute>();
  r->run = std::move(run);
  return CheckpointedBlock::apply(x, r);
}

}  // namespace

// ---- hook point names ------------------------------------------------------------------------

namespace {
struct SiteName {
  HookSite site;
  std::string_view name;
  bool per_layer;
};
constexpr SiteName kSites[] = {
    {HookSite::kEmbed, "embed", false},         {HookSite::kAttnOut, "attn_out", true},
    {HookSite::kMlpAct, "mlp_act", true},       {HookSite::kMlpOut, "mlp_out", true},
    {HookSite::kResidPost, "resid_post", true}, {HookSite::kFinalNorm, "final_norm", false},
};
}  // namespace

std::string HookPoint::name() const {
  for (const auto& s : kSites) {
    if (s.site == site) {
      return s.per_layer ? std::string(s.name) + "." + std::to_string(layer) : std::string(s.name);
    }
  }
  return "?";
}

std::optional<HookPoint> HookPoint::parse(std::string_view name) {
  for (const auto& s : kSites) {
    if (!s.per_layer) {
      if (name == s.name) return HookPoint{s.site, -1};
      continue;
    }
    if (name.size() > s.name.size() + 1 && name.substr(0, s.name.size()) == s.name &&
        name[s.name.size()] == '.') {
      std::string_view num = name.substr(s.name.size() + 1);
      std::int64_t layer = 0;
      for (char c : num) {
        if (c < '0' || c > '9' || layer > 1'000'000) return std::nullopt;
        layer = layer * 10 + (c - '0');
      }
      return HookPoint{s.site, layer};
    }
  }
  return std::nullopt;
}

// ---- config helpers --------------------------------------------------------------------------

std::string activation_name(Activation a) {
  switch (a) {
    case Activation::kGeluTanh: return "gelu_new";
    case Activation::kGeluErf: return "gelu";
    case Activation::kQuickGelu: return "quick_gelu";
    case Activation::kSilu: return "silu";
    case Activation::kRelu: return "relu";
  }
  return "?";
}

void validate(const ModelConfig& c, const std::string& src) {
  LETHE_CHECK(c.vocab_size > 0, src, ": vocab_size must be positive, got ", c.vocab_size);
  LETHE_CHECK(c.hidden_size > 0, src, ": hidden size must be positive, got ", c.hidden_size);
  LETHE_CHECK(c.num_layers > 0, src, ": number of layers must be positive, got ", c.num_layers);
  LETHE_CHECK(c.num_heads > 0, src, ": number of heads must be positive, got ", c.num_heads);
  LETHE_CHECK(c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads == 0, src,
              ": key/value heads (", c.num_kv_heads, ") must divide the heads (", c.num_heads,
              ")");
  LETHE_CHECK(c.head_dim > 0, src, ": head dim must be positive, got ", c.head_dim);
  LETHE_CHECK(c.intermediate_size > 0, src, ": intermediate size must be positive, got ",
              c.intermediate_size);
  LETHE_CHECK(c.norm_eps > 0, src, ": norm epsilon must be positive");
  if (c.positions == PositionKind::kRotary) {
    LETHE_CHECK(c.rotary_dim > 0 && c.rotary_dim <= c.head_dim && c.rotary_dim % 2 == 0, src,
                ": rotary dims (", c.rotary_dim, ") must be even and within the head dim (",
                c.head_dim, ")");
    LETHE_CHECK(c.rope_theta > 0, src, ": rope_theta must be positive");
  }
  LETHE_CHECK(c.max_position_embeddings > 0, src, ": max_position_embeddings must be positive, got ",
              c.max_position_embeddings);
  for (auto id : c.eos_token_ids)
    LETHE_CHECK(id >= 0 && id < c.vocab_size, src, ": eos_token_id ", id, " outside vocabulary");
  if (c.bos_token_id) {
    LETHE_CHECK(*c.bos_token_id >= 0 && *c.bos_token_id < c.vocab_size, src, ": bos_token_id ", *c.bos_token_id,
                " outside the vocabulary [0, ", c.vocab_size, ")");
  }
  // Sizes that cannot fit: say which key asks for them before libtorch fails to allocate.
  const double h = static_cast<double>(c.hidden_size);
  const double embed = static_cast<double>(c.vocab_size) * h * (c.tie_word_embeddings ? 1 : 2) +
                       (c.positions == PositionKind::kLearned ? static_cast<double>(c.max_position_embeddings) * h : 0);
  const double per_layer = 4 * h * h + 3 * h * static_cast<double>(c.intermediate_size);
  const double bytes = 4 * (embed + static_cast<double>(c.num_layers) * per_layer);
  const double memory = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  if (memory > 0 && bytes > memory) {
    const bool learned = c.positions == PositionKind::kLearned;
    const char* key = embed > static_cast<double>(c.num_layers) * per_layer
                          ? (learned ? "vocab_size / max_position_embeddings / hidden_size" : "vocab_size / hidden_size")
                                                                           : "num_hidden_layers / hidden_size / intermediate_size";
    fail(src, ": this config asks for about ", bytes / 1e9, " GB of float32 weights (", key, ": vocab ", c.vocab_size,
         ", hidden ", c.hidden_size, ", layers ", c.num_layers, ", intermediate ", c.intermediate_size,
         ") but the machine has ", memory / 1e9, " GB");
  }
}

// ---- CausalLM ----------------------------------------------------------------------------------

CausalLM::CausalLM(ModelConfig config) : config_(std::move(config)) {
  if (config_.positions == PositionKind::kRotary) {
    const RotaryTable t = rotary_table(config_, config_.max_position_embeddings);
    inv_freq_ = t.inv_freq;
    attention_scaling_ = t.attention_scaling;
  }
}

CausalLM::~CausalLM() = default;

namespace {
double lowest_of(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return std::numeric_limits<double>::lowest();
    case at::kHalf: return -65504.0;
    case at::kBFloat16: return -3.3895313892515355e38;
    default: return std::numeric_limits<float>::lowest();
  }
}
}  // namespace

ForwardOutput CausalLM::forward(const at::Tensor& input_ids, const ForwardOptions& o) {
  LETHE_CHECK(input_ids.dim() == 2 && input_ids.scalar_type() == at::kLong,
              "input_ids must be a (batch, tokens) int64 tensor, got ", input_ids.sizes(), " ",
              c10::toString(input_ids.scalar_type()));
  const std::int64_t b = input_ids.size(0), t = input_ids.size(1);
  LETHE_CHECK(b > 0 && t > 0, "input_ids is empty: ", input_ids.sizes());
  const at::Tensor w_embed = embedding_weight();
  const auto device = w_embed.device();
  const auto dtype = compute_dtype_for(w_embed.scalar_type());
  if (is_half(w_embed.scalar_type()) && at::GradMode::is_enabled()) {
    for (const auto& item : named_parameters()) {
      LETHE_CHECK(!item.value().requires_grad() || !is_half(item.value().scalar_type()), "parameter '", item.key(),
                  "' is held in ", c10::toString(item.value().scalar_type()),
                  " and requires grad: half-precision weights are for frozen parameters; trainable ones stay float32");
    }
  }
  at::Tensor ids = input_ids.to(device);
  {
    auto [mn, mx] = at::aminmax(ids);
    const std::int64_t lo = mn.item<std::int64_t>(), hi = mx.item<std::int64_t>();
    LETHE_CHECK(lo >= 0 && hi < config_.vocab_size, "token id ", lo < 0 ? lo : hi,
                " is outside the vocabulary [0, ", config_.vocab_size, ")");
  }
  const std::int64_t past = o.cache != nullptr ? o.cache->length() : 0;
  const std::int64_t s = past + t;
  if (config_.refuse_beyond) {
    LETHE_CHECK(s <= *config_.refuse_beyond, "sequence of ", s, " positions exceeds the sliding attention window (",
                *config_.refuse_beyond, "), which is refused for this family: transformers 4.43 applies Phi-3's "
                "window only under flash-attention, where it spans one key more than its later masks do (docs/formats.md)");
  }

  // Learned positions end at max_position_embeddings; rotary ones compute past it but were
  // never trained there, so both are held to it (docs/reliability.md). Implicit positions are
  // [past, s): checked by arithmetic, so decoding pays no reduction or sync per step.
  auto check_last = [&](std::int64_t first, std::int64_t last) {
    LETHE_CHECK(first >= 0 && last <= last_position(config_), "position ", last, " is beyond this model's ",
                config_.max_position_embeddings, " positions (max_position_embeddings); use shorter sequences");
  };
  at::Tensor positions;
  std::int64_t longest = s;  // the largest position + 1, for length-dependent rotary scaling
  if (o.position_ids.defined()) {
    LETHE_CHECK(o.position_ids.dim() == 2 && o.position_ids.size(0) == b &&
                    o.position_ids.size(1) == t,
                "position_ids must be (", b, ", ", t, "), got ", o.position_ids.sizes());
    positions = o.position_ids.to(device, at::kLong);
    auto [mn, mx] = at::aminmax(positions);
    longest = mx.item<std::int64_t>() + 1;
    check_last(mn.item<std::int64_t>(), longest - 1);
  } else {
    check_last(past, s - 1);
    positions = at::arange(past, s, at::TensorOptions().dtype(at::kLong).device(device))
                    .unsqueeze(0);  // (1, T)
  }

  LayerContext ctx;
  ctx.cache = o.cache;
  ctx.hooks = o.hooks;

  // Attention mask: causal within the new tokens, all cached positions visible, padding hidden.
  at::Tensor allowed;  // bool, broadcastable to (B, 1, T, S)
  if (o.attention_mask.defined()) {
    LETHE_CHECK(o.attention_mask.dim() == 2 && o.attention_mask.size(0) == b &&
                    o.attention_mask.size(1) == s,
                "attention_mask must be (batch, cached + new tokens) = (", b, ", ", s,
                "), got ", o.attention_mask.sizes());
    at::Tensor keep = o.attention_mask.to(device).ne(0);
    if (!keep.all().item<bool>()) allowed = keep.view({b, 1, 1, s});
  }
  // Causal within the new tokens; with a sliding window, query i also no longer sees keys at
  // i - window and before (indices in the sequence, padding included, as HF's cache positions) —
  // in decoding too, so the cache may hold more than the window.
  // Gemma-2 windows only the even layers and Qwen2 those from max_window_layers on, so a model
  // may need both masks.
  const bool windowed = config_.sliding_window && s > *config_.sliding_window;
  bool need_full = !windowed;
  for (std::int64_t l = 0; l < config_.num_layers && !need_full; ++l) need_full = !config_.layer_windowed(l);
  at::Tensor causal, in_window;
  if (t > 1 || windowed) {
    auto lopts = at::TensorOptions().dtype(at::kLong).device(device);
    const at::Tensor key = at::arange(s, lopts).unsqueeze(0), query = at::arange(past, s, lopts).unsqueeze(1);
    if (t > 1 && need_full) causal = key.le(query).view({1, 1, t, s});
    if (windowed) in_window = key.le(query).logical_and(key.gt(query - *config_.sliding_window)).view({1, 1, t, s});
  }
  auto bias_of = [&](const at::Tensor& structure) {
    const at::Tensor a = !allowed.defined() ? structure : (structure.defined() ? allowed.logical_and(structure) : allowed);
    if (!a.defined()) return at::Tensor();
    return at::zeros(a.sizes(), at::TensorOptions().dtype(dtype).device(device))
        .masked_fill_(a.logical_not(), lowest_of(dtype));
  };
  const at::Tensor full_bias = need_full ? bias_of(causal) : at::Tensor();
  const at::Tensor window_bias = windowed ? bias_of(in_window) : full_bias;
  ctx.mask_bias = full_bias;
  if (config_.query_pre_attn_scalar) ctx.score_scale = 1.0 / std::sqrt(*config_.query_pre_attn_scalar);
  ctx.softcap = config_.attn_logit_softcap.value_or(0.0);

  if (config_.positions == PositionKind::kRotary) {
    at::Tensor inv = rotary_depends_on_length(config_) ? rotary_table(config_, longest).inv_freq : inv_freq_;
    inv = inv.to(device);
    at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv;  // (B|1, T, rot/2)
    at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);        // (B|1, 1, T, rot)
    at::Tensor cos = emb.cos(), sin = emb.sin();
    if (attention_scaling_ != 1.0) {  // yarn, longrope: in fp32, before the cast, as HF
      cos = cos * attention_scaling_;
      sin = sin * attention_scaling_;
    }
    ctx.cos = cos.to(dtype);
    ctx.sin = sin.to(dtype);
  }

  ForwardOutput out;
  at::Tensor x = embed(ids, positions);
  if (o.hooks != nullptr) o.hooks->on(HookPoint{HookSite::kEmbed, -1}, x);
  if (o.output_hidden_states) out.hidden_states.push_back(x);
  const bool checkpoint = checkpoint_blocks_ && at::GradMode::is_enabled();
  LETHE_CHECK(!checkpoint || (o.hooks == nullptr && o.cache == nullptr),
              "gradient checkpointing recomputes blocks in backward, which hook observers (RMU's activations) and a KV "
              "cache cannot follow: turn train.gradient_checkpointing off for this run");
  // A block's output needs a grad path for its own (LoRA) parameters to receive gradients
  // under checkpointing: with frozen embeddings the first input has none, so it gets one (as
  // HF's enable_input_require_grads does for PEFT).
  if (checkpoint && !x.requires_grad()) x = x.detach().requires_grad_(true);
  for (std::int64_t l = 0; l < config_.num_layers; ++l) {
    ctx.layer = l;
    ctx.mask_bias = config_.layer_windowed(l) ? window_bias : full_bias;
    if (checkpoint) {
      x = checkpointed(x, [this, l, ctx](const at::Tensor& in) { return block(l, in, ctx); });
    } else {
      x = block(l, x, ctx);
    }
    if (o.hooks != nullptr) o.hooks->on(HookPoint{HookSite::kResidPost, l}, x);
    if (o.output_hidden_states && l + 1 < config_.num_layers) out.hidden_states.push_back(x);
  }
  if (o.cache != nullptr) o.cache->advance(t);
  x = final_norm(x);
  if (o.hooks != nullptr) o.hooks->on(HookPoint{HookSite::kFinalNorm, -1}, x);
  if (o.output_hidden_states) out.hidden_states.push_back(x);
  out.last_hidden = x;

  switch (o.logits) {
    case LogitsMode::kAll: out.logits = head(x); break;
    case LogitsMode::kLast: out.logits = head(x.narrow(1, t - 1, 1)); break;
    case LogitsMode::kNone: break;
  }
  return out;
}

c10::ScalarType CausalLM::storage_dtype() const { return embedding_weight().scalar_type(); }
c10::ScalarType CausalLM::compute_dtype() const { return compute_dtype_for(storage_dtype()); }

at::Tensor CausalLM::head_weight() const {
  at::Tensor w = untied_head_weight();
  return w.defined() ? w : embedding_weight();
}

at::Tensor CausalLM::head(const at::Tensor& hidden) const {
  at::Tensor logits = linear(hidden, head_weight(), head_bias());
  if (config_.final_logit_softcap) {
    const double cap = *config_.final_logit_softcap;
    logits = at::tanh(logits / cap) * cap;
  }
  return logits;
}

at::Tensor CausalLM::unembed(const at::Tensor& residual) { return head(final_norm(residual.to(compute_dtype()))); }

void CausalLM::finish_logits_(at::Tensor& logits) const {
  if (config_.final_logit_softcap) {
    const double cap = *config_.final_logit_softcap;
    logits.div_(cap).tanh_().mul_(cap);
  }
}

std::int64_t CausalLM::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

void CausalLM::init_weights(std::uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  for (const auto& m : modules(/*include_self=*/false)) {
    if (auto* l = dynamic_cast<LinearImpl*>(m.get())) {
      l->init(gen, 0.02);
    } else if (auto* c = dynamic_cast<Conv1DImpl*>(m.get())) {
      c->init(gen, 0.02);
    } else if (auto* e = dynamic_cast<EmbeddingImpl*>(m.get())) {
      e->init(gen, 0.02);
    } else if (auto* r = dynamic_cast<RMSNormImpl*>(m.get())) {
      r->init();
    } else if (auto* n = dynamic_cast<LayerNormImpl*>(m.get())) {
      n->init();
    }
  }
}

std::string CausalLM::canonical_name(const std::string& checkpoint_name) const {
  return checkpoint_name;
}

bool CausalLM::is_ignorable(const std::string&) const { return false; }

}  // namespace lethe::model

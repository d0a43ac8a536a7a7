// GPT-2 (HF GPT2LMHeadModel).
//
// Legend: B batch, T tokens, C n_embd, H n_head, D = C / H, I n_inner (4C when null), V vocab,
// P n_positions.
//
// Checkpoint keys (also accepted without the "transformer." prefix, as GPT2Model saves them)
//   transformer.wte.weight                  (V, C)
//   transformer.wpe.weight                  (P, C)
//   transformer.h.N.ln_1.{weight,bias}      (C)
//   transformer.h.N.attn.c_attn.weight      (C, 3C)  Conv1D: stored (in, out); q | k | v columns
//   transformer.h.N.attn.c_attn.bias        (3C)
//   transformer.h.N.attn.c_proj.{weight,bias} (C, C), (C)
//   transformer.h.N.ln_2.{weight,bias}      (C)
//   transformer.h.N.mlp.c_fc.{weight,bias}  (C, I), (I)
//   transformer.h.N.mlp.c_proj.{weight,bias} (I, C), (C)
//   transformer.ln_f.{weight,bias}          (C)
//   lm_head.weight                          tied to wte (not stored)
// Ignored buffers: h.N.attn.bias, h.N.attn.masked_bias (causal-mask constants).
#include "lethe/core/error.h"
#include "model/arch/arch.h"
#include "lethe/model/blocks.h"

namespace lethe::model {
namespace {

class Gpt2AttentionImpl : public torch::nn::Module {
 public:
  explicit Gpt2AttentionImpl(const ModelConfig& c) : c_(c.hidden_size), h_(c.num_heads), d_(c.head_dim) {
    c_attn = register_module("c_attn", Conv1D(c_, 3 * c_));
    c_proj = register_module("c_proj", Conv1D(c_, c_));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    const std::int64_t b = x.size(0), t = x.size(1);
    at::Tensor qkv = c_attn(x);  // (B, T, 3C)
    at::Tensor q = qkv.narrow(-1, 0, c_).view({b, t, h_, d_});
    at::Tensor k = qkv.narrow(-1, c_, c_).view({b, t, h_, d_});
    at::Tensor v = qkv.narrow(-1, 2 * c_, c_).view({b, t, h_, d_});
    return c_proj(attention(q, k, v, /*rotary_dim=*/0, ctx));
  }
  Conv1D c_attn{nullptr}, c_proj{nullptr};

 private:
  std::int64_t c_, h_, d_;
};
TORCH_MODULE(Gpt2Attention);

class Gpt2MlpImpl : public torch::nn::Module {
 public:
  explicit Gpt2MlpImpl(const ModelConfig& c) : act_(c.activation) {
    c_fc = register_module("c_fc", Conv1D(c.hidden_size, c.intermediate_size));
    c_proj = register_module("c_proj", Conv1D(c.intermediate_size, c.hidden_size));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    at::Tensor a = activate(c_fc(x), act_);  // (B, T, I)
    run_hook(ctx, HookSite::kMlpAct, a);
    return c_proj(a);
  }
  Conv1D c_fc{nullptr}, c_proj{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(Gpt2Mlp);

class Gpt2BlockImpl : public torch::nn::Module {
 public:
  explicit Gpt2BlockImpl(const ModelConfig& c) {
    ln_1 = register_module("ln_1", LayerNorm(c.hidden_size, c.norm_eps));
    attn = register_module("attn", Gpt2Attention(c));
    ln_2 = register_module("ln_2", LayerNorm(c.hidden_size, c.norm_eps));
    mlp = register_module("mlp", Gpt2Mlp(c));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    at::Tensor a = attn->forward(ln_1(x), ctx);
    run_hook(ctx, HookSite::kAttnOut, a);
    at::Tensor h = a + x;
    at::Tensor m = mlp->forward(ln_2(h), ctx);
    run_hook(ctx, HookSite::kMlpOut, m);
    return h + m;
  }
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  Gpt2Attention attn{nullptr};
  Gpt2Mlp mlp{nullptr};
};
TORCH_MODULE(Gpt2Block);

class Gpt2ModelImpl : public torch::nn::Module {
 public:
  explicit Gpt2ModelImpl(const ModelConfig& c) {
    wte = register_module("wte", Embedding(c.vocab_size, c.hidden_size));
    wpe = register_module("wpe", Embedding(c.max_position_embeddings, c.hidden_size));
    h = register_module("h", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < c.num_layers; ++i) {
      Gpt2Block block(c);
      h->push_back(block);
      blocks.push_back(block.get());
    }
    ln_f = register_module("ln_f", LayerNorm(c.hidden_size, c.norm_eps));
  }
  Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList h{nullptr};
  LayerNorm ln_f{nullptr};
  std::vector<Gpt2BlockImpl*> blocks;
};
TORCH_MODULE(Gpt2Model);

constexpr std::string_view kPrefix = "transformer.";

class Gpt2LMHeadModel : public CausalLM {
 public:
  explicit Gpt2LMHeadModel(const ModelConfig& c) : CausalLM(c) {
    transformer = register_module("transformer", Gpt2Model(c));
    if (!c.tie_word_embeddings) {
      lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, false));
    }
  }
  std::string canonical_name(const std::string& name) const override {
    if (name.starts_with(kPrefix) || name == "lm_head.weight") return name;
    return std::string(kPrefix) + name;
  }
  bool is_ignorable(const std::string& name) const override {
    return name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") ||
           (config_.tie_word_embeddings && name == "lm_head.weight");
  }

 protected:
  at::Tensor embed(const at::Tensor& ids, const at::Tensor& positions) override {
    return transformer->wte(ids) + transformer->wpe(positions);
  }
  at::Tensor block(std::int64_t l, const at::Tensor& x, const LayerContext& ctx) override {
    return transformer->blocks[l]->forward(x, ctx);
  }
  at::Tensor final_norm(const at::Tensor& x) override { return transformer->ln_f(x); }
  at::Tensor embedding_weight() const override { return transformer->wte->weight; }
  at::Tensor untied_head_weight() const override {
    return lm_head ? lm_head->weight : at::Tensor();
  }

 private:
  Gpt2Model transformer{nullptr};
  Linear lm_head{nullptr};
};

ModelConfig parse(const Json& j, const std::string& where) {
  ModelConfig c;
  c.model_type = "gpt2";
  c.vocab_size = json_required<std::int64_t>(j, "vocab_size", where);
  c.hidden_size = json_required<std::int64_t>(j, "n_embd", where);
  c.num_layers = json_required<std::int64_t>(j, "n_layer", where);
  c.num_heads = json_required<std::int64_t>(j, "n_head", where);
  LETHE_CHECK(c.num_heads > 0 && c.hidden_size % c.num_heads == 0, where, ": n_head (",
              c.num_heads, ") must divide n_embd (", c.hidden_size, ")");
  c.num_kv_heads = c.num_heads;
  c.head_dim = c.hidden_size / c.num_heads;
  c.intermediate_size = json_optional<std::int64_t>(j, "n_inner", 4 * c.hidden_size, where);
  c.max_position_embeddings = json_optional<std::int64_t>(j, "n_positions", 1024, where);
  c.norm = NormKind::kLayerNorm;
  c.norm_eps = json_optional<double>(j, "layer_norm_epsilon", 1e-5, where);
  c.activation =
      parse_activation(json_optional<std::string>(j, "activation_function", "gelu_new", where), where);
  c.gated_mlp = false;
  c.positions = PositionKind::kLearned;
  c.rotary_dim = 0;
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  c.tie_word_embeddings = json_optional<bool>(j, "tie_word_embeddings", true, where);
  LETHE_CHECK(json_optional<bool>(j, "scale_attn_weights", true, where), where,
              ": scale_attn_weights = false is not supported");
  reject_unsupported(j, {}, {"scale_attn_by_inverse_layer_idx", "add_cross_attention"}, where);
  parse_special_ids(j, c, where);
  return c;
}

void write(const ModelConfig& c, Json& j) {
  j["architectures"] = {"GPT2LMHeadModel"};
  j["vocab_size"] = c.vocab_size;
  j["n_embd"] = c.hidden_size;
  j["n_layer"] = c.num_layers;
  j["n_head"] = c.num_heads;
  j["n_inner"] = c.intermediate_size;
  j["n_positions"] = c.max_position_embeddings;
  j["layer_norm_epsilon"] = c.norm_eps;
  j["activation_function"] = activation_name(c.activation);
  j["tie_word_embeddings"] = c.tie_word_embeddings;
}

std::shared_ptr<CausalLM> build(const ModelConfig& c) {
  LETHE_CHECK(c.positions == PositionKind::kLearned && c.norm == NormKind::kLayerNorm &&
                  !c.gated_mlp && c.num_kv_heads == c.num_heads &&
                  c.head_dim * c.num_heads == c.hidden_size,
              "gpt2: config must use learned positions, LayerNorm, a plain MLP and full heads");
  return std::make_shared<Gpt2LMHeadModel>(c);
}

// The table in the header comment, as data (C = n_embd, I = inner, P = n_positions).
std::vector<TensorKey> key_table(const ModelConfig& c) {
  const std::int64_t v = c.vocab_size, h = c.hidden_size, i = c.intermediate_size;
  std::vector<TensorKey> k = {{"transformer.wte.weight", {v, h}}, {"transformer.wpe.weight", {c.max_position_embeddings, h}}};
  for (std::int64_t n = 0; n < c.num_layers; ++n) {
    const std::string p = "transformer.h." + std::to_string(n) + ".";
    k.insert(k.end(), {{p + "ln_1.weight", {h}}, {p + "ln_1.bias", {h}},
                       {p + "attn.c_attn.weight", {h, 3 * h}}, {p + "attn.c_attn.bias", {3 * h}},
                       {p + "attn.c_proj.weight", {h, h}}, {p + "attn.c_proj.bias", {h}},
                       {p + "ln_2.weight", {h}}, {p + "ln_2.bias", {h}},
                       {p + "mlp.c_fc.weight", {h, i}}, {p + "mlp.c_fc.bias", {i}},
                       {p + "mlp.c_proj.weight", {i, h}}, {p + "mlp.c_proj.bias", {h}}});
  }
  k.insert(k.end(), {{"transformer.ln_f.weight", {h}}, {"transformer.ln_f.bias", {h}}});
  if (!c.tie_word_embeddings) k.push_back({"lm_head.weight", {v, h}});
  return k;
}

std::string tiny(const std::string&) {
  return R"({"model_type":"gpt2","n_embd":32,"n_layer":2,"n_head":4,"n_positions":256,"vocab_size":97,)"
         R"("eos_token_id":2,"pad_token_id":0})";
}

at::Tensor value_vectors(const CausalLM& m, std::int64_t layer) {
  return down_projection_columns(m, "transformer.h.{L}.mlp.c_proj.weight", layer, /*in_out=*/true);
}

}  // namespace

const ArchSpec& gpt2_arch() {
  static const ArchSpec spec{.model_types = {"gpt2"},
                             .parse = &parse,
                             .write = &write,
                             .build = &build,
                             .checkpoint_keys = &key_table,
                             .lora_targets = R"(.*\.(c_attn|c_proj|c_fc))",
                             .mlp_value_vectors = &value_vectors,
                             .tiny_config = &tiny};
  return spec;
}

}  // namespace lethe::model

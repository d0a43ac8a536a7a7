// Gemma-2 (HF Gemma2ForCausalLM, transformers 4.43): Gemma's embeddings, (1 + w) RMSNorms and
// tanh-GELU MLP, with sandwich norms (before and after attention and the MLP), scores scaled by
// query_pre_attn_scalar^-1/2 and soft-capped (cap · tanh(s / cap), before the mask), final logits
// soft-capped, and the sliding window on layers 0, 2, 4, ... only.
//
// Legend: C hidden_size, H heads, KVH key/value heads, D head_dim, I intermediate_size, V vocab.
//
// Checkpoint keys                                    shape
//   model.embed_tokens.weight                        (V, C)
//   model.layers.N.input_layernorm.weight            (C)
//   model.layers.N.self_attn.{q,k,v,o}_proj.weight   (H*D, C) (KVH*D, C) (KVH*D, C) (C, H*D)
//   model.layers.N.post_attention_layernorm.weight   (C)
//   model.layers.N.pre_feedforward_layernorm.weight  (C)
//   model.layers.N.mlp.{gate,up}_proj.weight         (I, C)
//   model.layers.N.mlp.down_proj.weight              (C, I)
//   model.layers.N.post_feedforward_layernorm.weight (C)
//   model.norm.weight                                (C)
//   lm_head.weight                                   (V, C)   absent when tie_word_embeddings
// Hook sites: attn_out and mlp_out see each sublayer's output after its post-norm (what the
// residual stream receives).
#include <cmath>

#include "lethe/core/error.h"
#include "lethe/model/blocks.h"
#include "model/arch/arch.h"

namespace lethe::model {
namespace {

class Gemma2LayerImpl : public torch::nn::Module {
 public:
  explicit Gemma2LayerImpl(const ModelConfig& c) {
    auto norm = [&](const char* name) { return register_module(name, RMSNorm(c.hidden_size, c.norm_eps, true)); };
    input_layernorm = norm("input_layernorm");
    self_attn = register_module("self_attn", SelfAttention(c));
    post_attention_layernorm = norm("post_attention_layernorm");
    pre_feedforward_layernorm = norm("pre_feedforward_layernorm");
    mlp = register_module("mlp", GatedMlp(c));
    post_feedforward_layernorm = norm("post_feedforward_layernorm");
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    at::Tensor a = post_attention_layernorm(self_attn->forward(input_layernorm(x), ctx));
    run_hook(ctx, HookSite::kAttnOut, a);
    at::Tensor h = x + a;
    at::Tensor m = post_feedforward_layernorm(mlp->forward(pre_feedforward_layernorm(h), ctx));
    run_hook(ctx, HookSite::kMlpOut, m);
    return h + m;
  }
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  RMSNorm pre_feedforward_layernorm{nullptr}, post_feedforward_layernorm{nullptr};
  SelfAttention self_attn{nullptr};
  GatedMlp mlp{nullptr};
};
TORCH_MODULE(Gemma2Layer);

class Gemma2ModelImpl : public torch::nn::Module {
 public:
  explicit Gemma2ModelImpl(const ModelConfig& c) {
    embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < c.num_layers; ++i) {
      Gemma2Layer layer(c);
      layers->push_back(layer);
      blocks.push_back(layer.get());
    }
    norm = register_module("norm", RMSNorm(c.hidden_size, c.norm_eps, true));
  }
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  std::vector<Gemma2LayerImpl*> blocks;
};
TORCH_MODULE(Gemma2Model);

class Gemma2ForCausalLM : public CausalLM {
 public:
  explicit Gemma2ForCausalLM(const ModelConfig& c) : CausalLM(c) {
    model = register_module("model", Gemma2Model(c));
    if (!c.tie_word_embeddings) lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, false));
  }
  bool is_ignorable(const std::string& name) const override {
    return name.ends_with(".self_attn.rotary_emb.inv_freq") ||
           (config_.tie_word_embeddings && name == "lm_head.weight");
  }

 protected:
  at::Tensor embed(const at::Tensor& ids, const at::Tensor&) override {
    at::Tensor x = model->embed_tokens(ids);
    const double root = std::sqrt(static_cast<double>(config_.hidden_size));
    return x * at::scalar_tensor(root, x.options().dtype(x.scalar_type()));  // rounded first, as HF
  }
  at::Tensor block(std::int64_t l, const at::Tensor& x, const LayerContext& ctx) override {
    return model->blocks[l]->forward(x, ctx);
  }
  at::Tensor final_norm(const at::Tensor& x) override { return model->norm(x); }
  at::Tensor embedding_weight() const override { return model->embed_tokens->weight; }
  at::Tensor untied_head_weight() const override { return lm_head ? lm_head->weight : at::Tensor(); }

 private:
  Gemma2Model model{nullptr};
  Linear lm_head{nullptr};
};

std::optional<double> cap(const Json& j, const char* key, double fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  if (j[key].is_null()) return std::nullopt;
  const double v = json_required<double>(j, key, where);
  LETHE_CHECK(v > 0 && v <= 3.4e38, where, ": ", key, " must be positive and finite in fp32, or null, got ", v);
  return v;
}

ModelConfig parse(const Json& j, const std::string& where) {
  ModelConfig c = parse_decoder_sizes(j, where);
  c.head_dim = json_optional<std::int64_t>(j, "head_dim", 256, where);
  c.max_position_embeddings = json_optional<std::int64_t>(j, "max_position_embeddings", 8192, where);
  c.norm = NormKind::kRmsNorm;
  c.norm_eps = json_optional<double>(j, "rms_norm_eps", 1e-6, where);
  c.norm_offset = true;
  c.scale_embeddings = true;
  c.activation =
      parse_activation(json_optional<std::string>(j, "hidden_activation", "gelu_pytorch_tanh", where), where);
  c.gated_mlp = true;
  c.positions = PositionKind::kRotary;
  c.rope_theta = json_optional<double>(j, "rope_theta", 10000.0, where);
  c.rotary_dim = c.head_dim;
  c.qkv_bias = c.o_bias = json_optional<bool>(j, "attention_bias", false, where);
  c.attn_logit_softcap = cap(j, "attn_logit_softcapping", 50.0, where);
  c.final_logit_softcap = cap(j, "final_logit_softcapping", 30.0, where);
  c.query_pre_attn_scalar = json_optional<double>(j, "query_pre_attn_scalar", 224.0, where);
  LETHE_CHECK(*c.query_pre_attn_scalar > 0 && *c.query_pre_attn_scalar <= 3.4e38, where,
              ": query_pre_attn_scalar must be positive and finite in fp32");
  const std::int64_t w = json_optional<std::int64_t>(j, "sliding_window", 4096, where);
  LETHE_CHECK(w > 0, where, ": sliding_window must be positive, got ", w);
  c.sliding_window = w;
  c.window_on_even_layers = true;
  c.tie_word_embeddings = json_optional<bool>(j, "tie_word_embeddings", true, where);
  reject_unsupported(j, {"rope_scaling"}, {}, where);
  parse_special_ids(j, c, where);
  return c;
}

void write(const ModelConfig& c, Json& j) {
  j["architectures"] = {"Gemma2ForCausalLM"};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.norm_eps;
  j["hidden_activation"] = c.activation == Activation::kGeluTanh ? "gelu_pytorch_tanh" : activation_name(c.activation);
  j["rope_theta"] = c.rope_theta;
  j["attention_bias"] = c.qkv_bias;
  j["attn_logit_softcapping"] = c.attn_logit_softcap ? Json(*c.attn_logit_softcap) : Json(nullptr);
  j["final_logit_softcapping"] = c.final_logit_softcap ? Json(*c.final_logit_softcap) : Json(nullptr);
  j["query_pre_attn_scalar"] = *c.query_pre_attn_scalar;
  j["sliding_window"] = *c.sliding_window;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
}

std::shared_ptr<CausalLM> build(const ModelConfig& c) {
  LETHE_CHECK(c.positions == PositionKind::kRotary && c.gated_mlp && c.query_pre_attn_scalar && c.sliding_window,
              "gemma2: config must use rotary positions, a gated MLP, query_pre_attn_scalar and a sliding window");
  return std::make_shared<Gemma2ForCausalLM>(c);
}

// The table in the header comment, as data.
std::vector<TensorKey> key_table(const ModelConfig& c) {
  const std::int64_t v = c.vocab_size, h = c.hidden_size;
  std::vector<TensorKey> k = {{"model.embed_tokens.weight", {v, h}}};
  for (std::int64_t n = 0; n < c.num_layers; ++n) {
    const std::string p = "model.layers." + std::to_string(n) + ".";
    k.push_back({p + "input_layernorm.weight", {h}});
    add_attention_keys(k, p, c);
    k.push_back({p + "post_attention_layernorm.weight", {h}});
    k.push_back({p + "pre_feedforward_layernorm.weight", {h}});
    add_gated_mlp_keys(k, p, c);
    k.push_back({p + "post_feedforward_layernorm.weight", {h}});
  }
  k.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) k.push_back({"lm_head.weight", {v, h}});
  return k;
}

// Caps small enough to bind on random weights, a window shorter than the tests' sequences on
// the even layer, head_dim other than hidden / heads.
std::string tiny(const std::string&) {
  return R"({"model_type":"gemma2","hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,)"
         R"("num_key_value_heads":2,"head_dim":16,"intermediate_size":40,"vocab_size":97,)"
         R"("attn_logit_softcapping":0.5,"final_logit_softcapping":2.0,"query_pre_attn_scalar":16,)"
         R"("sliding_window":5,"eos_token_id":2,"pad_token_id":0})";
}

// The MLP's output goes through post_feedforward_layernorm before the residual add: a column's
// direction as added is (1 + gain) ⊙ column (the norm's 1/rms is one scale for the whole output).
at::Tensor value_vectors(const CausalLM& m, std::int64_t layer) {
  const std::string gain = "model.layers." + std::to_string(layer) + ".post_feedforward_layernorm.weight";
  const auto params = m.named_parameters();  // by value: `g` must not outlive it
  const at::Tensor* g = params.find(gain);
  LETHE_CHECK(g != nullptr, "mlp_value_vectors: the model has no parameter ", gain);
  return down_projection_columns(m, "model.layers.{L}.mlp.down_proj.weight", layer) *
         (1.0 + g->detach().to(at::kFloat)).unsqueeze(1);
}

}  // namespace

const ArchSpec& gemma2_arch() {
  static const ArchSpec spec{.model_types = {"gemma2"},
                             .parse = &parse,
                             .write = &write,
                             .build = &build,
                             .checkpoint_keys = &key_table,
                             .lora_targets = R"(.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj))",
                             .mlp_value_vectors = &value_vectors,
                             .tiny_config = &tiny};
  return spec;
}

}  // namespace lethe::model

// OLMo (HF OlmoForCausalLM, transformers 4.43): Llama's layout with non-parametric LayerNorms
// (no weight, no bias, eps 1e-5, computed in fp32) and q/k/v clamped to ±clip_qkv.
//
// Legend: C hidden_size, H heads, KVH key/value heads, D head_dim, I intermediate_size, V vocab.
//
// Checkpoint keys                                   shape
//   model.embed_tokens.weight                       (V, C)
//   model.layers.N.self_attn.q_proj.weight / bias   (H*D, C) / (H*D)    bias: attention_bias
//   model.layers.N.self_attn.k_proj.weight / bias   (KVH*D, C)
//   model.layers.N.self_attn.v_proj.weight / bias   (KVH*D, C)
//   model.layers.N.self_attn.o_proj.weight / bias   (C, H*D)
//   model.layers.N.mlp.{gate,up}_proj.weight        (I, C)
//   model.layers.N.mlp.down_proj.weight             (C, I)
//   lm_head.weight                                  (V, C)   absent when tie_word_embeddings
// The norms hold no tensors. Rotary as Llama's (rotate_half over the whole head).
#include "lethe/core/error.h"
#include "lethe/model/blocks.h"
#include "model/arch/arch.h"

namespace lethe::model {
namespace {

// OlmoLayerNorm: F.layer_norm(x.float(), (C,), None, None, eps=1e-5).to(x.dtype).
at::Tensor olmo_norm(const at::Tensor& x) {
  return at::layer_norm(x.to(at::kFloat), {x.size(-1)}, {}, {}, 1e-5).to(x.scalar_type());
}

class OlmoLayerImpl : public torch::nn::Module {
 public:
  explicit OlmoLayerImpl(const ModelConfig& c) {
    self_attn = register_module("self_attn", SelfAttention(c));
    mlp = register_module("mlp", GatedMlp(c));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    at::Tensor a = self_attn->forward(olmo_norm(x), ctx);
    run_hook(ctx, HookSite::kAttnOut, a);
    at::Tensor h = x + a;
    at::Tensor m = mlp->forward(olmo_norm(h), ctx);
    run_hook(ctx, HookSite::kMlpOut, m);
    return h + m;
  }
  SelfAttention self_attn{nullptr};
  GatedMlp mlp{nullptr};
};
TORCH_MODULE(OlmoLayer);

class OlmoModelImpl : public torch::nn::Module {
 public:
  explicit OlmoModelImpl(const ModelConfig& c) {
    embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < c.num_layers; ++i) {
      OlmoLayer layer(c);
      layers->push_back(layer);
      blocks.push_back(layer.get());
    }
  }
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  std::vector<OlmoLayerImpl*> blocks;
};
TORCH_MODULE(OlmoModel);

class OlmoForCausalLM : public CausalLM {
 public:
  explicit OlmoForCausalLM(const ModelConfig& c) : CausalLM(c) {
    model = register_module("model", OlmoModel(c));
    if (!c.tie_word_embeddings) lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, false));
  }
  bool is_ignorable(const std::string& name) const override {
    return name.ends_with(".self_attn.rotary_emb.inv_freq") ||
           (config_.tie_word_embeddings && name == "lm_head.weight");
  }

 protected:
  at::Tensor embed(const at::Tensor& ids, const at::Tensor&) override { return model->embed_tokens(ids); }
  at::Tensor block(std::int64_t l, const at::Tensor& x, const LayerContext& ctx) override {
    return model->blocks[l]->forward(x, ctx);
  }
  at::Tensor final_norm(const at::Tensor& x) override { return olmo_norm(x); }
  at::Tensor embedding_weight() const override { return model->embed_tokens->weight; }
  at::Tensor untied_head_weight() const override { return lm_head ? lm_head->weight : at::Tensor(); }

 private:
  OlmoModel model{nullptr};
  Linear lm_head{nullptr};
};

ModelConfig parse(const Json& j, const std::string& where) {
  ModelConfig c = parse_decoder_sizes(j, where);
  c.head_dim = derived_head_dim(c, where);
  c.max_position_embeddings = json_optional<std::int64_t>(j, "max_position_embeddings", 2048, where);
  c.norm = NormKind::kLayerNorm;
  c.norm_eps = 1e-5;  // OlmoLayerNorm's, not configurable
  c.activation = parse_activation(json_optional<std::string>(j, "hidden_act", "silu", where), where);
  c.gated_mlp = true;
  c.positions = PositionKind::kRotary;
  c.rope_theta = json_optional<double>(j, "rope_theta", 10000.0, where);
  c.rotary_dim = c.head_dim;
  c.qkv_bias = c.o_bias = json_optional<bool>(j, "attention_bias", false, where);
  if (j.contains("clip_qkv") && !j["clip_qkv"].is_null()) {
    c.clip_qkv = json_required<double>(j, "clip_qkv", where);
    LETHE_CHECK(*c.clip_qkv > 0 && *c.clip_qkv <= 3.4e38, where, ": clip_qkv must be positive and finite in fp32, got ",
                *c.clip_qkv);
  }
  c.tie_word_embeddings = json_optional<bool>(j, "tie_word_embeddings", false, where);
  // OLMo's 4.43 rotary classes scale differently from modeling_rope_utils: refused by name.
  reject_unsupported(j, {"rope_scaling"}, {}, where);
  parse_special_ids(j, c, where);
  return c;
}

void write(const ModelConfig& c, Json& j) {
  j["architectures"] = {"OlmoForCausalLM"};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["hidden_act"] = activation_name(c.activation);
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;
  j["attention_bias"] = c.qkv_bias;
  j["clip_qkv"] = c.clip_qkv ? Json(*c.clip_qkv) : Json(nullptr);
  j["tie_word_embeddings"] = c.tie_word_embeddings;
}

std::shared_ptr<CausalLM> build(const ModelConfig& c) {
  LETHE_CHECK(c.positions == PositionKind::kRotary && c.gated_mlp, "olmo: config must use rotary positions and a gated MLP");
  return std::make_shared<OlmoForCausalLM>(c);
}

// The table in the header comment, as data.
std::vector<TensorKey> key_table(const ModelConfig& c) {
  const std::int64_t v = c.vocab_size, h = c.hidden_size;
  std::vector<TensorKey> k = {{"model.embed_tokens.weight", {v, h}}};
  for (std::int64_t n = 0; n < c.num_layers; ++n) {
    const std::string p = "model.layers." + std::to_string(n) + ".";
    add_attention_keys(k, p, c);
    add_gated_mlp_keys(k, p, c);
  }
  if (!c.tie_word_embeddings) k.push_back({"lm_head.weight", {v, h}});
  return k;
}

// Grouped KV heads and a clip small enough to bind on random weights.
std::string tiny(const std::string&) {
  return R"({"model_type":"olmo","hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,)"
         R"("num_key_value_heads":2,"intermediate_size":40,"vocab_size":97,"clip_qkv":0.05,)"
         R"("eos_token_id":2,"pad_token_id":0})";
}

at::Tensor value_vectors(const CausalLM& m, std::int64_t layer) {
  return down_projection_columns(m, "model.layers.{L}.mlp.down_proj.weight", layer);
}

}  // namespace

const ArchSpec& olmo_arch() {
  static const ArchSpec spec{.model_types = {"olmo"},
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

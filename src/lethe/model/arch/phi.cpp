// Phi (HF PhiForCausalLM, transformers 4.43: phi-1, phi-1.5, phi-2). One LayerNorm per block
// feeds attention and the MLP in parallel; partial rotary (partial_rotary_factor of each head);
// biases everywhere, the LM head's included; fc1/fc2 with gelu_new.
//
// Legend: C hidden_size, H heads, KVH key/value heads, D head_dim, I intermediate_size, V vocab.
//
// Checkpoint keys                                   shape
//   model.embed_tokens.weight                       (V, C)
//   model.layers.N.input_layernorm.{weight,bias}    (C)
//   model.layers.N.self_attn.q_proj.{weight,bias}   (H*D, C) / (H*D)
//   model.layers.N.self_attn.k_proj.{weight,bias}   (KVH*D, C)
//   model.layers.N.self_attn.v_proj.{weight,bias}   (KVH*D, C)
//   model.layers.N.self_attn.dense.{weight,bias}    (C, H*D)
//   model.layers.N.mlp.fc1.{weight,bias}            (I, C)
//   model.layers.N.mlp.fc2.{weight,bias}            (C, I)
//   model.final_layernorm.{weight,bias}             (C)
//   lm_head.weight                                  (V, C)   absent when tie_word_embeddings
//   lm_head.bias                                    (V)
// Block: x + (attention(ln(x)) + mlp(ln(x))), summed in HF's order (attention + mlp + residual).
#include "lethe/core/error.h"
#include "lethe/model/blocks.h"
#include "model/arch/arch.h"

namespace lethe::model {
namespace {

class PhiMlpImpl : public torch::nn::Module {
 public:
  explicit PhiMlpImpl(const ModelConfig& c) : act_(c.activation) {
    fc1 = register_module("fc1", Linear(c.hidden_size, c.intermediate_size, true));
    fc2 = register_module("fc2", Linear(c.intermediate_size, c.hidden_size, true));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    at::Tensor a = activate(fc1(x), act_);  // (B,T,I)
    run_hook(ctx, HookSite::kMlpAct, a);
    return fc2(a);
  }
  Linear fc1{nullptr}, fc2{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(PhiMlp);

class PhiLayerImpl : public torch::nn::Module {
 public:
  explicit PhiLayerImpl(const ModelConfig& c) {
    input_layernorm = register_module("input_layernorm", LayerNorm(c.hidden_size, c.norm_eps));
    self_attn = register_module("self_attn", SelfAttention(c, "dense"));
    mlp = register_module("mlp", PhiMlp(c));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    const at::Tensor n = input_layernorm(x);
    at::Tensor a = self_attn->forward(n, ctx);
    run_hook(ctx, HookSite::kAttnOut, a);
    at::Tensor m = mlp->forward(n, ctx);
    run_hook(ctx, HookSite::kMlpOut, m);
    return a + m + x;
  }
  LayerNorm input_layernorm{nullptr};
  SelfAttention self_attn{nullptr};
  PhiMlp mlp{nullptr};
};
TORCH_MODULE(PhiLayer);

class PhiModelImpl : public torch::nn::Module {
 public:
  explicit PhiModelImpl(const ModelConfig& c) {
    embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < c.num_layers; ++i) {
      PhiLayer layer(c);
      layers->push_back(layer);
      blocks.push_back(layer.get());
    }
    final_layernorm = register_module("final_layernorm", LayerNorm(c.hidden_size, c.norm_eps));
  }
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  LayerNorm final_layernorm{nullptr};
  std::vector<PhiLayerImpl*> blocks;
};
TORCH_MODULE(PhiModel);

// A tied head still has its own bias: lm_head holds only that.
class HeadBiasImpl : public torch::nn::Module {
 public:
  explicit HeadBiasImpl(std::int64_t vocab) { bias = register_parameter("bias", new_parameter({vocab}, 0.0, true)); }
  at::Tensor bias;
};
TORCH_MODULE(HeadBias);

class PhiForCausalLM : public CausalLM {
 public:
  explicit PhiForCausalLM(const ModelConfig& c) : CausalLM(c) {
    model = register_module("model", PhiModel(c));
    if (c.tie_word_embeddings) {
      tied_bias = register_module("lm_head", HeadBias(c.vocab_size));
    } else {
      lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, true));
    }
  }
  bool is_ignorable(const std::string& name) const override {
    return name.ends_with(".self_attn.rotary_emb.inv_freq") ||
           (config_.tie_word_embeddings && name == "lm_head.weight");
  }
  at::Tensor head_bias() const override { return lm_head ? lm_head->bias : tied_bias->bias; }

 protected:
  at::Tensor embed(const at::Tensor& ids, const at::Tensor&) override { return model->embed_tokens(ids); }
  at::Tensor block(std::int64_t l, const at::Tensor& x, const LayerContext& ctx) override {
    return model->blocks[l]->forward(x, ctx);
  }
  at::Tensor final_norm(const at::Tensor& x) override { return model->final_layernorm(x); }
  at::Tensor embedding_weight() const override { return model->embed_tokens->weight; }
  at::Tensor untied_head_weight() const override { return lm_head ? lm_head->weight : at::Tensor(); }

 private:
  PhiModel model{nullptr};
  Linear lm_head{nullptr};
  HeadBias tied_bias{nullptr};
};

ModelConfig parse(const Json& j, const std::string& where) {
  ModelConfig c = parse_decoder_sizes(j, where);
  c.head_dim = derived_head_dim(c, where);
  c.max_position_embeddings = json_optional<std::int64_t>(j, "max_position_embeddings", 2048, where);
  c.norm = NormKind::kLayerNorm;
  c.norm_eps = json_optional<double>(j, "layer_norm_eps", 1e-5, where);
  c.activation = parse_activation(json_optional<std::string>(j, "hidden_act", "gelu_new", where), where);
  c.gated_mlp = false;
  c.positions = PositionKind::kRotary;
  c.rope_theta = json_optional<double>(j, "rope_theta", 10000.0, where);
  const double partial = json_optional<double>(j, "partial_rotary_factor", 0.5, where);
  LETHE_CHECK(partial > 0 && partial <= 1, where, ": partial_rotary_factor must be in (0, 1], got ", partial);
  c.rotary_dim = static_cast<std::int64_t>(partial * static_cast<double>(c.head_dim));  // int() as HF
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  c.parallel_residual = true;
  c.tie_word_embeddings = json_optional<bool>(j, "tie_word_embeddings", false, where);
  // Phi's 4.43 rotary classes scale differently from modeling_rope_utils: refused by name, as
  // are the optional q/k LayerNorms.
  reject_unsupported(j, {"rope_scaling"}, {"qk_layernorm"}, where);
  parse_special_ids(j, c, where);
  return c;
}

void write(const ModelConfig& c, Json& j) {
  j["architectures"] = {"PhiForCausalLM"};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["layer_norm_eps"] = c.norm_eps;
  j["hidden_act"] = activation_name(c.activation);
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;
  j["partial_rotary_factor"] = static_cast<double>(c.rotary_dim) / static_cast<double>(c.head_dim);
  j["qk_layernorm"] = false;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
}

std::shared_ptr<CausalLM> build(const ModelConfig& c) {
  LETHE_CHECK(c.positions == PositionKind::kRotary && c.norm == NormKind::kLayerNorm && !c.gated_mlp,
              "phi: config must use rotary positions, LayerNorm and an ungated MLP");
  return std::make_shared<PhiForCausalLM>(c);
}

// The table in the header comment, as data.
std::vector<TensorKey> key_table(const ModelConfig& c) {
  const std::int64_t v = c.vocab_size, h = c.hidden_size, i = c.intermediate_size;
  std::vector<TensorKey> k = {{"model.embed_tokens.weight", {v, h}}};
  for (std::int64_t n = 0; n < c.num_layers; ++n) {
    const std::string p = "model.layers." + std::to_string(n) + ".";
    k.push_back({p + "input_layernorm.weight", {h}});
    k.push_back({p + "input_layernorm.bias", {h}});
    add_attention_keys(k, p, c, "dense");
    add_linear_keys(k, p + "mlp.fc1", i, h, true);
    add_linear_keys(k, p + "mlp.fc2", h, i, true);
  }
  k.push_back({"model.final_layernorm.weight", {h}});
  k.push_back({"model.final_layernorm.bias", {h}});
  if (!c.tie_word_embeddings) k.push_back({"lm_head.weight", {v, h}});
  k.push_back({"lm_head.bias", {v}});
  return k;
}

// Partial rotary (a quarter of each head) and grouped KV heads.
std::string tiny(const std::string&) {
  return R"({"model_type":"phi","hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,)"
         R"("num_key_value_heads":2,"intermediate_size":40,"vocab_size":97,"partial_rotary_factor":0.25,)"
         R"("eos_token_id":2,"pad_token_id":0})";
}

at::Tensor value_vectors(const CausalLM& m, std::int64_t layer) {
  return down_projection_columns(m, "model.layers.{L}.mlp.fc2.weight", layer);
}

}  // namespace

const ArchSpec& phi_arch() {
  static const ArchSpec spec{.model_types = {"phi"},
                             .parse = &parse,
                             .write = &write,
                             .build = &build,
                             .checkpoint_keys = &key_table,
                             .lora_targets = R"(.*\.(q_proj|k_proj|v_proj|dense|fc1|fc2))",
                             .mlp_value_vectors = &value_vectors,
                             .tiny_config = &tiny};
  return spec;
}

}  // namespace lethe::model

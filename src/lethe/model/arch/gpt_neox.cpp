// GPT-NeoX / Pythia (HF GPTNeoXForCausalLM).
//
// Legend: B batch, T tokens, C hidden_size, H heads, D = C / H, I intermediate_size, V vocab,
// R = int(D * rotary_pct) rotary dims per head.
//
// Checkpoint keys                                          shape
//   gpt_neox.embed_in.weight                               (V, C)
//   gpt_neox.layers.N.input_layernorm.{weight,bias}        (C)
//   gpt_neox.layers.N.post_attention_layernorm.{weight,bias} (C)
//   gpt_neox.layers.N.attention.query_key_value.weight     (3C, C)  nn.Linear; output viewed as
//   gpt_neox.layers.N.attention.query_key_value.bias       (3C)     (B,T,H,3D) = [q_h|k_h|v_h]
//   gpt_neox.layers.N.attention.dense.{weight,bias}        (C, C), (C)
//   gpt_neox.layers.N.mlp.dense_h_to_4h.{weight,bias}      (I, C), (I)
//   gpt_neox.layers.N.mlp.dense_4h_to_h.{weight,bias}      (C, I), (C)
//   gpt_neox.final_layer_norm.{weight,bias}                (C)
//   embed_out.weight                                       (V, C)  untied
// Ignored buffers: attention.bias, attention.masked_bias, attention.rotary_emb.inv_freq.
// Residual: parallel x + attn(ln1(x)) + mlp(ln2(x)), or sequential.
#include "lethe/core/error.h"
#include "model/arch/arch.h"
#include "lethe/model/blocks.h"

namespace lethe::model {
namespace {

class NeoxAttentionImpl : public torch::nn::Module {
 public:
  explicit NeoxAttentionImpl(const ModelConfig& c)
      : h_(c.num_heads), d_(c.head_dim), rot_(c.rotary_dim) {
    query_key_value = register_module("query_key_value",
                                      Linear(c.hidden_size, 3 * c.hidden_size, c.qkv_bias));
    dense = register_module("dense", Linear(c.hidden_size, c.hidden_size, c.o_bias));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    const std::int64_t b = x.size(0), t = x.size(1);
    at::Tensor qkv = query_key_value(x).view({b, t, h_, 3 * d_});
    at::Tensor q = qkv.narrow(-1, 0, d_);
    at::Tensor k = qkv.narrow(-1, d_, d_);
    at::Tensor v = qkv.narrow(-1, 2 * d_, d_);
    return dense(attention(q, k, v, rot_, ctx));
  }
  Linear query_key_value{nullptr}, dense{nullptr};

 private:
  std::int64_t h_, d_, rot_;
};
TORCH_MODULE(NeoxAttention);

class NeoxMlpImpl : public torch::nn::Module {
 public:
  explicit NeoxMlpImpl(const ModelConfig& c) : act_(c.activation) {
    dense_h_to_4h = register_module(
        "dense_h_to_4h", Linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
    dense_4h_to_h = register_module(
        "dense_4h_to_h", Linear(c.intermediate_size, c.hidden_size, c.mlp_bias));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    at::Tensor a = activate(dense_h_to_4h(x), act_);  // (B, T, I)
    run_hook(ctx, HookSite::kMlpAct, a);
    return dense_4h_to_h(a);
  }
  Linear dense_h_to_4h{nullptr}, dense_4h_to_h{nullptr};

 private:
  Activation act_;
};
TORCH_MODULE(NeoxMlp);

class NeoxLayerImpl : public torch::nn::Module {
 public:
  explicit NeoxLayerImpl(const ModelConfig& c) : parallel_(c.parallel_residual) {
    input_layernorm = register_module("input_layernorm", LayerNorm(c.hidden_size, c.norm_eps));
    post_attention_layernorm =
        register_module("post_attention_layernorm", LayerNorm(c.hidden_size, c.norm_eps));
    attention = register_module("attention", NeoxAttention(c));
    mlp = register_module("mlp", NeoxMlp(c));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    at::Tensor a = attention->forward(input_layernorm(x), ctx);
    run_hook(ctx, HookSite::kAttnOut, a);
    if (parallel_) {
      at::Tensor m = mlp->forward(post_attention_layernorm(x), ctx);
      run_hook(ctx, HookSite::kMlpOut, m);
      return m + a + x;  // HF's order of additions
    }
    at::Tensor h = a + x;
    at::Tensor m = mlp->forward(post_attention_layernorm(h), ctx);
    run_hook(ctx, HookSite::kMlpOut, m);
    return m + h;
  }
  LayerNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  NeoxAttention attention{nullptr};
  NeoxMlp mlp{nullptr};

 private:
  bool parallel_;
};
TORCH_MODULE(NeoxLayer);

class NeoxModelImpl : public torch::nn::Module {
 public:
  explicit NeoxModelImpl(const ModelConfig& c) {
    embed_in = register_module("embed_in", Embedding(c.vocab_size, c.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < c.num_layers; ++i) {
      NeoxLayer layer(c);
      layers->push_back(layer);
      blocks.push_back(layer.get());
    }
    final_layer_norm = register_module("final_layer_norm", LayerNorm(c.hidden_size, c.norm_eps));
  }
  Embedding embed_in{nullptr};
  torch::nn::ModuleList layers{nullptr};
  LayerNorm final_layer_norm{nullptr};
  std::vector<NeoxLayerImpl*> blocks;
};
TORCH_MODULE(NeoxModel);

class GptNeoxForCausalLM : public CausalLM {
 public:
  explicit GptNeoxForCausalLM(const ModelConfig& c) : CausalLM(c) {
    gpt_neox = register_module("gpt_neox", NeoxModel(c));
    if (!c.tie_word_embeddings) {
      embed_out = register_module("embed_out", Linear(c.hidden_size, c.vocab_size, false));
    }
  }
  bool is_ignorable(const std::string& name) const override {
    return name.ends_with(".attention.bias") || name.ends_with(".attention.masked_bias") ||
           name.ends_with(".attention.rotary_emb.inv_freq") ||
           (config_.tie_word_embeddings && name == "embed_out.weight");
  }

 protected:
  at::Tensor embed(const at::Tensor& ids, const at::Tensor&) override {
    return gpt_neox->embed_in(ids);
  }
  at::Tensor block(std::int64_t l, const at::Tensor& x, const LayerContext& ctx) override {
    return gpt_neox->blocks[l]->forward(x, ctx);
  }
  at::Tensor final_norm(const at::Tensor& x) override { return gpt_neox->final_layer_norm(x); }
  at::Tensor embedding_weight() const override { return gpt_neox->embed_in->weight; }
  at::Tensor untied_head_weight() const override {
    return embed_out ? embed_out->weight : at::Tensor();
  }

 private:
  NeoxModel gpt_neox{nullptr};
  Linear embed_out{nullptr};
};

ModelConfig parse(const Json& j, const std::string& where) {
  ModelConfig c;
  c.model_type = "gpt_neox";
  c.vocab_size = json_required<std::int64_t>(j, "vocab_size", where);
  c.hidden_size = json_required<std::int64_t>(j, "hidden_size", where);
  c.num_layers = json_required<std::int64_t>(j, "num_hidden_layers", where);
  c.num_heads = json_required<std::int64_t>(j, "num_attention_heads", where);
  c.intermediate_size = json_required<std::int64_t>(j, "intermediate_size", where);
  LETHE_CHECK(c.num_heads > 0 && c.hidden_size % c.num_heads == 0, where,
              ": num_attention_heads (", c.num_heads, ") must divide hidden_size (",
              c.hidden_size, ")");
  c.num_kv_heads = c.num_heads;
  c.head_dim = c.hidden_size / c.num_heads;
  c.max_position_embeddings = json_optional<std::int64_t>(j, "max_position_embeddings", 2048, where);
  c.norm = NormKind::kLayerNorm;
  c.norm_eps = json_optional<double>(j, "layer_norm_eps", 1e-5, where);
  c.activation = parse_activation(json_optional<std::string>(j, "hidden_act", "gelu", where), where);
  c.gated_mlp = false;
  c.positions = PositionKind::kRotary;
  const double pct = json_optional<double>(j, "rotary_pct", 0.25, where);
  LETHE_CHECK(pct > 0 && pct <= 1, where, ": rotary_pct must be in (0, 1], got ", pct);
  c.rotary_dim = static_cast<std::int64_t>(static_cast<double>(c.head_dim) * pct);
  c.rope_theta = json_optional<double>(
      j, "rotary_emb_base", json_optional<double>(j, "rope_theta", 10000.0, where), where);
  c.qkv_bias = c.o_bias = json_optional<bool>(j, "attention_bias", true, where);
  c.mlp_bias = true;
  c.parallel_residual = json_optional<bool>(j, "use_parallel_residual", true, where);
  c.tie_word_embeddings = json_optional<bool>(j, "tie_word_embeddings", false, where);
  reject_unsupported(j, {"rope_scaling"}, {}, where);
  parse_special_ids(j, c, where);
  return c;
}

void write(const ModelConfig& c, Json& j) {
  j["architectures"] = {"GPTNeoXForCausalLM"};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["layer_norm_eps"] = c.norm_eps;
  j["hidden_act"] = activation_name(c.activation);
  // HF computes int(head_dim * rotary_pct): keep the source's value when it gives the same
  // rotary dims, else write one that truncates to exactly rotary_dim.
  auto rot_of = [&](double pct) {
    return static_cast<std::int64_t>(static_cast<double>(c.head_dim) * pct);
  };
  if (!j.contains("rotary_pct") || !j["rotary_pct"].is_number() ||
      rot_of(j["rotary_pct"].get<double>()) != c.rotary_dim) {
    double pct = static_cast<double>(c.rotary_dim) / static_cast<double>(c.head_dim);
    if (rot_of(pct) != c.rotary_dim) pct = (static_cast<double>(c.rotary_dim) + 0.5) / c.head_dim;
    j["rotary_pct"] = pct;
  }
  j["rotary_emb_base"] = c.rope_theta;
  j["attention_bias"] = c.qkv_bias;
  j["use_parallel_residual"] = c.parallel_residual;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["rope_scaling"] = nullptr;
}

std::shared_ptr<CausalLM> build(const ModelConfig& c) {
  LETHE_CHECK(c.positions == PositionKind::kRotary && c.norm == NormKind::kLayerNorm &&
                  !c.gated_mlp && c.num_kv_heads == c.num_heads && c.mlp_bias &&
                  c.qkv_bias == c.o_bias,
              "gpt_neox: config must use rotary positions, LayerNorm, a plain MLP with biases "
              "and full heads");
  return std::make_shared<GptNeoxForCausalLM>(c);
}

// The table in the header comment, as data.
std::vector<TensorKey> key_table(const ModelConfig& c) {
  const std::int64_t v = c.vocab_size, h = c.hidden_size, i = c.intermediate_size;
  std::vector<TensorKey> k = {{"gpt_neox.embed_in.weight", {v, h}}};
  for (std::int64_t n = 0; n < c.num_layers; ++n) {
    const std::string p = "gpt_neox.layers." + std::to_string(n) + ".";
    k.insert(k.end(), {{p + "input_layernorm.weight", {h}}, {p + "input_layernorm.bias", {h}},
                       {p + "post_attention_layernorm.weight", {h}}, {p + "post_attention_layernorm.bias", {h}}});
    add_linear_keys(k, p + "attention.query_key_value", 3 * h, h, c.qkv_bias);
    add_linear_keys(k, p + "attention.dense", h, h, c.o_bias);
    add_linear_keys(k, p + "mlp.dense_h_to_4h", i, h, c.mlp_bias);
    add_linear_keys(k, p + "mlp.dense_4h_to_h", h, i, c.mlp_bias);
  }
  k.insert(k.end(), {{"gpt_neox.final_layer_norm.weight", {h}}, {"gpt_neox.final_layer_norm.bias", {h}}});
  if (!c.tie_word_embeddings) k.push_back({"embed_out.weight", {v, h}});
  return k;
}

std::string tiny(const std::string&) {
  return R"({"model_type":"gpt_neox","hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,)"
         R"("intermediate_size":48,"rotary_pct":0.5,"vocab_size":97,"eos_token_id":2,"pad_token_id":0})";
}

at::Tensor value_vectors(const CausalLM& m, std::int64_t layer) {
  return down_projection_columns(m, "gpt_neox.layers.{L}.mlp.dense_4h_to_h.weight", layer);
}

}  // namespace

const ArchSpec& gpt_neox_arch() {
  static const ArchSpec spec{.model_types = {"gpt_neox"},
                             .parse = &parse,
                             .write = &write,
                             .build = &build,
                             .checkpoint_keys = &key_table,
                             .lora_targets = R"(.*\.(query_key_value|dense|dense_h_to_4h|dense_4h_to_h))",
                             .mlp_value_vectors = &value_vectors,
                             .tiny_config = &tiny};
  return spec;
}

}  // namespace lethe::model

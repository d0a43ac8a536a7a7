// Phi-3 (HF Phi3ForCausalLM, transformers 4.43: Phi-3 / Phi-3.5 mini): Llama's layout with q, k
// and v fused into qkv_proj and gate and up into gate_up_proj (each split in that order), and
// Phi-3's longrope: the short or long factors chosen per forward by the sequence length.
//
// Legend: C hidden_size, H heads, KVH key/value heads, D head_dim, I intermediate_size, V vocab.
//
// Checkpoint keys                                   shape
//   model.embed_tokens.weight                       (V, C)
//   model.layers.N.input_layernorm.weight           (C)
//   model.layers.N.self_attn.qkv_proj.weight        (H*D + 2*KVH*D, C)   rows: q, k, v
//   model.layers.N.self_attn.o_proj.weight          (C, H*D)
//   model.layers.N.post_attention_layernorm.weight  (C)
//   model.layers.N.mlp.gate_up_proj.weight          (2*I, C)             rows: gate, up
//   model.layers.N.mlp.down_proj.weight             (C, I)
//   model.norm.weight                               (C)
//   lm_head.weight                                  (V, C)   absent when tie_word_embeddings
#include "lethe/core/error.h"
#include "lethe/model/blocks.h"
#include "model/arch/arch.h"

namespace lethe::model {
namespace {

class Phi3AttentionImpl : public torch::nn::Module {
 public:
  explicit Phi3AttentionImpl(const ModelConfig& c)
      : h_(c.num_heads), kvh_(c.num_kv_heads), d_(c.head_dim), rot_(c.rotary_dim) {
    qkv_proj = register_module("qkv_proj", Linear(c.hidden_size, (h_ + 2 * kvh_) * d_, false));
    o_proj = register_module("o_proj", Linear(h_ * d_, c.hidden_size, false));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {  // (B,T,C) -> (B,T,C)
    const std::int64_t b = x.size(0), t = x.size(1);
    const at::Tensor qkv = qkv_proj(x);  // (B, T, (H + 2 KVH) D)
    at::Tensor q = qkv.narrow(-1, 0, h_ * d_).view({b, t, h_, d_});
    at::Tensor k = qkv.narrow(-1, h_ * d_, kvh_ * d_).view({b, t, kvh_, d_});
    at::Tensor v = qkv.narrow(-1, (h_ + kvh_) * d_, kvh_ * d_).view({b, t, kvh_, d_});
    return o_proj(attention(q, k, v, rot_, ctx));
  }
  Linear qkv_proj{nullptr}, o_proj{nullptr};

 private:
  std::int64_t h_, kvh_, d_, rot_;
};
TORCH_MODULE(Phi3Attention);

class Phi3MlpImpl : public torch::nn::Module {
 public:
  explicit Phi3MlpImpl(const ModelConfig& c) : act_(c.activation), i_(c.intermediate_size) {
    gate_up_proj = register_module("gate_up_proj", Linear(c.hidden_size, 2 * i_, false));
    down_proj = register_module("down_proj", Linear(i_, c.hidden_size, false));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    const at::Tensor gu = gate_up_proj(x);  // (B, T, 2I): gate, then up
    at::Tensor a = gu.narrow(-1, i_, i_) * activate(gu.narrow(-1, 0, i_), act_);  // up * act(gate), as HF
    run_hook(ctx, HookSite::kMlpAct, a);
    return down_proj(a);
  }
  Linear gate_up_proj{nullptr}, down_proj{nullptr};

 private:
  Activation act_;
  std::int64_t i_;
};
TORCH_MODULE(Phi3Mlp);

class Phi3LayerImpl : public torch::nn::Module {
 public:
  explicit Phi3LayerImpl(const ModelConfig& c) {
    self_attn = register_module("self_attn", Phi3Attention(c));
    mlp = register_module("mlp", Phi3Mlp(c));
    input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.norm_eps));
    post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.norm_eps));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    at::Tensor a = self_attn->forward(input_layernorm(x), ctx);
    run_hook(ctx, HookSite::kAttnOut, a);
    at::Tensor h = x + a;
    at::Tensor m = mlp->forward(post_attention_layernorm(h), ctx);
    run_hook(ctx, HookSite::kMlpOut, m);
    return h + m;
  }
  Phi3Attention self_attn{nullptr};
  Phi3Mlp mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(Phi3Layer);

class Phi3ModelImpl : public torch::nn::Module {
 public:
  explicit Phi3ModelImpl(const ModelConfig& c) {
    embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < c.num_layers; ++i) {
      Phi3Layer layer(c);
      layers->push_back(layer);
      blocks.push_back(layer.get());
    }
    norm = register_module("norm", RMSNorm(c.hidden_size, c.norm_eps));
  }
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  std::vector<Phi3LayerImpl*> blocks;
};
TORCH_MODULE(Phi3Model);

class Phi3ForCausalLM : public CausalLM {
 public:
  explicit Phi3ForCausalLM(const ModelConfig& c) : CausalLM(c) {
    model = register_module("model", Phi3Model(c));
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
  at::Tensor final_norm(const at::Tensor& x) override { return model->norm(x); }
  at::Tensor embedding_weight() const override { return model->embed_tokens->weight; }
  at::Tensor untied_head_weight() const override { return lm_head ? lm_head->weight : at::Tensor(); }

 private:
  Phi3Model model{nullptr};
  Linear lm_head{nullptr};
};

ModelConfig parse(const Json& j, const std::string& where) {
  ModelConfig c = parse_decoder_sizes(j, where);
  c.head_dim = derived_head_dim(c, where);
  c.max_position_embeddings = json_optional<std::int64_t>(j, "max_position_embeddings", 4096, where);
  c.norm = NormKind::kRmsNorm;
  c.norm_eps = json_optional<double>(j, "rms_norm_eps", 1e-5, where);
  c.activation = parse_activation(json_optional<std::string>(j, "hidden_act", "silu", where), where);
  c.gated_mlp = true;
  c.positions = PositionKind::kRotary;
  c.rope_theta = json_optional<double>(j, "rope_theta", 10000.0, where);
  c.rotary_dim = c.head_dim;
  c.tie_word_embeddings = json_optional<bool>(j, "tie_word_embeddings", false, where);
  // Phi-3 knows only longrope (the pretrained context is the top-level
  // original_max_position_embeddings, 4096 by default), chosen per forward by length.
  const Json& rs = j.contains("rope_scaling") ? j["rope_scaling"] : Json();
  if (!rs.is_null()) {
    LETHE_CHECK(rs.is_object() && rs.value("type", rs.value("rope_type", "")) == "longrope", where,
                ": phi3 supports rope_scaling of type longrope only, got ", rs.dump());
    Json with_context = j;
    with_context["original_max_position_embeddings"] =
        json_optional<std::int64_t>(j, "original_max_position_embeddings", 4096, where);
    c.rope_scaling = parse_rope_scaling(with_context, c.rotary_dim, where);
    c.rope_scaling.longrope_by_length = true;
  }
  // Phi-3's eager attention in 4.43 has no sliding window (only its flash path does): lethe
  // computes only where the window would change nothing.
  if (j.contains("sliding_window") && !j["sliding_window"].is_null()) {
    c.refuse_beyond = json_required<std::int64_t>(j, "sliding_window", where);
  }
  parse_special_ids(j, c, where);
  return c;
}

void write(const ModelConfig& c, Json& j) {
  j["architectures"] = {"Phi3ForCausalLM"};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.norm_eps;
  j["hidden_act"] = activation_name(c.activation);
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type == "longrope") {
    j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", c.rope_scaling.short_factor},
                         {"long_factor", c.rope_scaling.long_factor}};
    j["original_max_position_embeddings"] = c.rope_scaling.original_max_position_embeddings;
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["sliding_window"] = c.refuse_beyond ? Json(*c.refuse_beyond) : Json(nullptr);
  j["tie_word_embeddings"] = c.tie_word_embeddings;
}

std::shared_ptr<CausalLM> build(const ModelConfig& c) {
  LETHE_CHECK(c.positions == PositionKind::kRotary && c.norm == NormKind::kRmsNorm && c.gated_mlp,
              "phi3: config must use rotary positions, RMSNorm and a gated MLP");
  return std::make_shared<Phi3ForCausalLM>(c);
}

// The table in the header comment, as data.
std::vector<TensorKey> key_table(const ModelConfig& c) {
  const std::int64_t v = c.vocab_size, h = c.hidden_size, i = c.intermediate_size;
  const std::int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  std::vector<TensorKey> k = {{"model.embed_tokens.weight", {v, h}}};
  for (std::int64_t n = 0; n < c.num_layers; ++n) {
    const std::string p = "model.layers." + std::to_string(n) + ".";
    k.push_back({p + "input_layernorm.weight", {h}});
    add_linear_keys(k, p + "self_attn.qkv_proj", q + 2 * kv, h, false);
    add_linear_keys(k, p + "self_attn.o_proj", h, q, false);
    k.push_back({p + "post_attention_layernorm.weight", {h}});
    add_linear_keys(k, p + "mlp.gate_up_proj", 2 * i, h, false);
    add_linear_keys(k, p + "mlp.down_proj", h, i, false);
  }
  k.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) k.push_back({"lm_head.weight", {v, h}});
  return k;
}

// Grouped KV heads in the fused projection, and longrope with a pretrained context of half the
// positions (the attention factor applies; the tests' sequences stay on the short factors, where
// cached decoding equals recomputation — past the switch it does not, in HF either).
std::string tiny(const std::string&) {
  return R"({"model_type":"phi3","hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,)"
         R"("num_key_value_heads":2,"intermediate_size":40,"vocab_size":97,"max_position_embeddings":512,)"
         R"("original_max_position_embeddings":256,"rope_scaling":{"type":"longrope",)"
         R"("short_factor":[1.0,1.25,1.5,1.75],"long_factor":[2.0,3.0,4.0,5.0]},)"
         R"("eos_token_id":2,"pad_token_id":0})";
}

at::Tensor value_vectors(const CausalLM& m, std::int64_t layer) {
  return down_projection_columns(m, "model.layers.{L}.mlp.down_proj.weight", layer);
}

}  // namespace

const ArchSpec& phi3_arch() {
  static const ArchSpec spec{.model_types = {"phi3"},
                             .parse = &parse,
                             .write = &write,
                             .build = &build,
                             .checkpoint_keys = &key_table,
                             .lora_targets = R"(.*\.(qkv_proj|o_proj|gate_up_proj|down_proj))",
                             .mlp_value_vectors = &value_vectors,
                             .tiny_config = &tiny};
  return spec;
}

}  // namespace lethe::model

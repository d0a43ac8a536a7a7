// Llama family: llama, mistral, qwen2, gemma (HF LlamaForCausalLM / MistralForCausalLM /
// Qwen2ForCausalLM / GemmaForCausalLM). Gemma: embeddings × sqrt(C), RMSNorm × (1 + w) in fp32,
// a tanh-GELU gated MLP (hidden_activation), head_dim given explicitly, tied by default.
//
// Legend: B batch, T tokens, C hidden_size, H heads, KVH key/value heads, D head_dim,
// I intermediate_size, V vocab.
//
// Checkpoint keys                                   shape
//   model.embed_tokens.weight                       (V, C)
//   model.layers.N.input_layernorm.weight           (C)
//   model.layers.N.self_attn.q_proj.weight / bias   (H*D, C) / (H*D)    bias: qwen2, attention_bias
//   model.layers.N.self_attn.k_proj.weight / bias   (KVH*D, C)
//   model.layers.N.self_attn.v_proj.weight / bias   (KVH*D, C)
//   model.layers.N.self_attn.o_proj.weight / bias   (C, H*D)            bias: attention_bias
//   model.layers.N.post_attention_layernorm.weight  (C)
//   model.layers.N.mlp.{gate,up}_proj.weight        (I, C)
//   model.layers.N.mlp.down_proj.weight             (C, I)
//   model.norm.weight                               (C)
//   lm_head.weight                                  (V, C)   absent when tie_word_embeddings
// HF stores q/k rows permuted for rotate_half RoPE (pairs i, i + D/2); RMSNorm in fp32.
#include <cmath>

#include "lethe/core/error.h"
#include "model/arch/arch.h"
#include "lethe/model/blocks.h"

namespace lethe::model {
namespace {

class LlamaLayerImpl : public torch::nn::Module {
 public:
  explicit LlamaLayerImpl(const ModelConfig& c) {
    self_attn = register_module("self_attn", SelfAttention(c));
    mlp = register_module("mlp", GatedMlp(c));
    input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.norm_eps, c.norm_offset));
    post_attention_layernorm =
        register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.norm_eps, c.norm_offset));
  }
  at::Tensor forward(const at::Tensor& x, const LayerContext& ctx) {
    at::Tensor a = self_attn->forward(input_layernorm(x), ctx);
    run_hook(ctx, HookSite::kAttnOut, a);
    at::Tensor h = x + a;
    at::Tensor m = mlp->forward(post_attention_layernorm(h), ctx);
    run_hook(ctx, HookSite::kMlpOut, m);
    return h + m;
  }
  SelfAttention self_attn{nullptr};
  GatedMlp mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaLayer);

class LlamaModelImpl : public torch::nn::Module {
 public:
  explicit LlamaModelImpl(const ModelConfig& c) {
    embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size, c.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < c.num_layers; ++i) {
      LlamaLayer layer(c);
      layers->push_back(layer);
      blocks.push_back(layer.get());
    }
    norm = register_module("norm", RMSNorm(c.hidden_size, c.norm_eps, c.norm_offset));
  }
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  std::vector<LlamaLayerImpl*> blocks;
};
TORCH_MODULE(LlamaModel);

class LlamaForCausalLM : public CausalLM {
 public:
  explicit LlamaForCausalLM(const ModelConfig& c) : CausalLM(c) {
    model = register_module("model", LlamaModel(c));
    if (!c.tie_word_embeddings) {
      lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, false));
    }
  }
  bool is_ignorable(const std::string& name) const override {
    return name.ends_with(".self_attn.rotary_emb.inv_freq") ||
           (config_.tie_word_embeddings && name == "lm_head.weight");
  }

 protected:
  at::Tensor embed(const at::Tensor& ids, const at::Tensor&) override {
    at::Tensor x = model->embed_tokens(ids);
    if (!config_.scale_embeddings) return x;
    // Gemma: the normaliser is a tensor of the hidden states' dtype, so it is rounded first.
    const double root = std::sqrt(static_cast<double>(config_.hidden_size));
    return x * at::scalar_tensor(root, x.options().dtype(x.scalar_type()));
  }
  at::Tensor block(std::int64_t l, const at::Tensor& x, const LayerContext& ctx) override {
    return model->blocks[l]->forward(x, ctx);
  }
  at::Tensor final_norm(const at::Tensor& x) override { return model->norm(x); }
  at::Tensor embedding_weight() const override { return model->embed_tokens->weight; }
  at::Tensor untied_head_weight() const override {
    return lm_head ? lm_head->weight : at::Tensor();
  }

 private:
  LlamaModel model{nullptr};
  Linear lm_head{nullptr};
};

ModelConfig parse(const Json& j, const std::string& where) {
  ModelConfig c = parse_decoder_sizes(j, where);
  const bool qwen2 = c.model_type == "qwen2";
  const bool mistral = c.model_type == "mistral";
  const bool gemma = c.model_type == "gemma";
  if (!gemma && (!j.contains("head_dim") || j["head_dim"].is_null())) {
    LETHE_CHECK(c.hidden_size % c.num_heads == 0, where, ": num_attention_heads (", c.num_heads,
                ") does not divide hidden_size (", c.hidden_size, ") and no head_dim is given");
  }
  // GemmaConfig's head_dim defaults to 256, not hidden / heads.
  c.head_dim = json_optional<std::int64_t>(j, "head_dim", gemma ? 256 : c.hidden_size / c.num_heads, where);
  c.max_position_embeddings = json_optional<std::int64_t>(
      j, "max_position_embeddings", qwen2 ? 32768 : (mistral ? 131072 : (gemma ? 8192 : 2048)), where);
  c.norm = NormKind::kRmsNorm;
  c.norm_eps = json_optional<double>(j, "rms_norm_eps", 1e-6, where);
  if (gemma) {
    // GemmaMLP reads hidden_activation (tanh GELU when null) and ignores hidden_act.
    c.activation = parse_activation(json_optional<std::string>(j, "hidden_activation", "gelu_pytorch_tanh", where), where);
    c.norm_offset = true;
    c.scale_embeddings = true;
  } else {
    c.activation = parse_activation(json_optional<std::string>(j, "hidden_act", "silu", where), where);
  }
  c.gated_mlp = true;
  c.positions = PositionKind::kRotary;
  c.rope_theta = json_optional<double>(j, "rope_theta", 10000.0, where);
  c.rotary_dim = c.head_dim;
  if (qwen2) {
    c.qkv_bias = true;
    c.o_bias = false;
    c.mlp_bias = false;
    // Windows on layers >= max_window_layers, with Mistral's mask (a key within window - 1
    // positions before the query), as transformers' masks apply Qwen2's from 4.48 on.
    if (json_optional<bool>(j, "use_sliding_window", false, where)) {
      const auto w = json_required<std::int64_t>(j, "sliding_window", where);
      LETHE_CHECK(w > 0, where, ": sliding_window must be positive, got ", w);
      c.sliding_window = w;
      c.window_from_layer = json_optional<std::int64_t>(j, "max_window_layers", 28, where);
      LETHE_CHECK(*c.window_from_layer >= 0, where, ": max_window_layers must be >= 0, got ", *c.window_from_layer);
    }
  } else {
    c.qkv_bias = c.o_bias = json_optional<bool>(j, "attention_bias", false, where);
    c.mlp_bias = json_optional<bool>(j, "mlp_bias", false, where);
    if (mistral) {
      auto w = json_optional<std::int64_t>(j, "sliding_window", 0, where);
      if (w > 0) c.sliding_window = w;
    }
  }
  c.tie_word_embeddings = json_optional<bool>(j, "tie_word_embeddings", gemma, where);
  // transformers 4.43 applies rope_scaling to Llama only (Qwen2's and Mistral's rotary classes
  // ignore it there), so it is read for llama and refused for the others rather than ignored.
  if (c.model_type == "llama") {
    c.rope_scaling = parse_rope_scaling(j, c.rotary_dim, where);
  } else {
    reject_unsupported(j, {"rope_scaling"}, {}, where);
  }
  parse_special_ids(j, c, where);
  return c;
}

void write(const ModelConfig& c, Json& j) {
  const bool qwen2 = c.model_type == "qwen2";
  const bool mistral = c.model_type == "mistral";
  const bool gemma = c.model_type == "gemma";
  j["architectures"] = {qwen2     ? "Qwen2ForCausalLM"
                        : mistral ? "MistralForCausalLM"
                        : gemma   ? "GemmaForCausalLM"
                                  : "LlamaForCausalLM"};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  if (gemma || c.head_dim != c.hidden_size / c.num_heads) j["head_dim"] = c.head_dim;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.norm_eps;
  if (gemma) {
    j["hidden_activation"] = c.activation == Activation::kGeluTanh ? "gelu_pytorch_tanh" : activation_name(c.activation);
  } else {
    j["hidden_act"] = activation_name(c.activation);
  }
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = rope_scaling_json(c.rope_scaling);
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (qwen2) {
    j["use_sliding_window"] = c.sliding_window.has_value();
    if (c.sliding_window) {
      j["sliding_window"] = *c.sliding_window;
      j["max_window_layers"] = c.window_from_layer.value_or(0);
    }
  } else {
    j["attention_bias"] = c.qkv_bias;
    if (c.mlp_bias) j["mlp_bias"] = true;
    if (mistral) j["sliding_window"] = c.sliding_window ? Json(*c.sliding_window) : Json(nullptr);
  }
}

std::shared_ptr<CausalLM> build(const ModelConfig& c) {
  LETHE_CHECK(c.positions == PositionKind::kRotary && c.norm == NormKind::kRmsNorm && c.gated_mlp,
              "llama family: config must use rotary positions, RMSNorm and a gated MLP");
  LETHE_CHECK(!c.qkv_bias || c.model_type != "llama" || c.o_bias == c.qkv_bias,
              "llama: attention_bias applies to q, k, v and o together");
  return std::make_shared<LlamaForCausalLM>(c);
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
    add_gated_mlp_keys(k, p, c);
  }
  k.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) k.push_back({"lm_head.weight", {v, h}});
  return k;
}

// Grouped KV heads (4 query heads over 2 key/value heads) for every type of the family; llama
// with Llama-3.1's rope_scaling, mistral with a window shorter than the tests' sequences, gemma
// with a head_dim other than hidden / heads.
std::string tiny(const std::string& model_type) {
  std::string extra;
  if (model_type == "llama") {
    extra = R"(,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,)"
            R"("original_max_position_embeddings":16})";
  } else if (model_type == "mistral") {
    extra = R"(,"sliding_window":5)";
  } else if (model_type == "gemma") {
    extra = R"(,"head_dim":16,"hidden_activation":"gelu_pytorch_tanh")";
  }
  return R"({"model_type":")" + model_type +
         R"(","hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,)"
         R"("intermediate_size":40,"vocab_size":97,"eos_token_id":2,"pad_token_id":0)" + extra + "}";
}

at::Tensor value_vectors(const CausalLM& m, std::int64_t layer) {
  return down_projection_columns(m, "model.layers.{L}.mlp.down_proj.weight", layer);
}

}  // namespace

const ArchSpec& llama_arch() {
  static const ArchSpec spec{.model_types = {"llama", "mistral", "qwen2", "gemma"},
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

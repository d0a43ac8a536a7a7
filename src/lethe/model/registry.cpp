// model_type -> architecture family: the single registry of model families.
#include "lethe/core/error.h"
#include "lethe/model/load.h"
#include "model/arch/arch.h"

// One line per family: X(name) is `const ArchSpec& name_arch()`, defined in arch/name.cpp.
#define LETHE_ARCHS(X) \
  X(gpt2)              \
  X(llama)             \
  X(gpt_neox)          \
  X(olmo)              \
  X(phi)               \
  X(phi3)              \
  X(gemma2)

namespace lethe::model {

#define LETHE_DECLARE_ARCH(name) const ArchSpec& name##_arch();
LETHE_ARCHS(LETHE_DECLARE_ARCH)
#undef LETHE_DECLARE_ARCH

namespace {
const std::vector<const ArchSpec*>& all_archs() {
#define LETHE_LIST_ARCH(name) &name##_arch(),
  static const std::vector<const ArchSpec*> archs = {LETHE_ARCHS(LETHE_LIST_ARCH)};
#undef LETHE_LIST_ARCH
  return archs;
}
}  // namespace

const ArchSpec& find_arch(const std::string& model_type, const std::string& where) {
  std::string known;
  for (const ArchSpec* a : all_archs()) {
    for (const auto& t : a->model_types) {
      if (t == model_type) return *a;
      known += (known.empty() ? "" : ", ") + t;
    }
  }
  fail(where, where.empty() ? "" : ": ", "unsupported model_type '", model_type,
       "' (supported: ", known, ")");
}

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const ArchSpec* a : all_archs())
    for (const auto& t : a->model_types) out.push_back(t);
  return out;
}

std::vector<TensorKey> checkpoint_keys(const ModelConfig& config) {
  return find_arch(config.model_type).checkpoint_keys(config);
}

const std::string& default_lora_targets(const std::string& model_type) {
  return find_arch(model_type).lora_targets;
}

std::string tiny_config(const std::string& model_type) { return find_arch(model_type).tiny_config(model_type); }

at::Tensor mlp_value_vectors(const CausalLM& model, std::int64_t layer) {
  const ModelConfig& c = model.config();
  LETHE_CHECK(layer >= 0 && layer < c.num_layers, "mlp_value_vectors: layer ", layer, " of a model with ",
              c.num_layers, " layers");
  return find_arch(c.model_type).mlp_value_vectors(model, layer);
}

at::Tensor down_projection_columns(const CausalLM& model, const std::string& name, std::int64_t layer, bool in_out) {
  std::string key = name;
  const auto at = key.find("{L}");
  LETHE_CHECK(at != std::string::npos, "down_projection_columns: '", name, "' has no {L}");
  key.replace(at, 3, std::to_string(layer));
  // named_parameters() returns its dictionary by value: keep it alive while `w` points into it.
  const auto params = model.named_parameters();
  const at::Tensor* w = params.find(key);
  LETHE_CHECK(w != nullptr, "mlp_value_vectors: the model has no parameter ", key);
  const at::Tensor cols = in_out ? w->detach().t() : w->detach();
  LETHE_CHECK(cols.dim() == 2 && cols.size(0) == model.config().hidden_size, "mlp_value_vectors: ", key, " is ",
              w->sizes(), ", not (", model.config().hidden_size, ", I)");
  return cols.to(at::kFloat);
}

Activation parse_activation(const std::string& name, const std::string& where) {
  if (name == "gelu") return Activation::kGeluErf;
  if (name == "gelu_new" || name == "gelu_fast" || name == "gelu_pytorch_tanh")
    return Activation::kGeluTanh;
  if (name == "quick_gelu") return Activation::kQuickGelu;
  if (name == "silu" || name == "swish") return Activation::kSilu;
  if (name == "relu") return Activation::kRelu;
  fail(where, ": unsupported activation '", name,
       "' (supported: gelu, gelu_new, gelu_fast, gelu_pytorch_tanh, quick_gelu, silu, relu)");
}

void parse_special_ids(const Json& j, ModelConfig& c, const std::string& where) {
  auto id = [&](const char* key) -> std::optional<std::int64_t> {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return std::nullopt;
    return json_required<std::int64_t>(j, key, where);  // integer, and within int64
  };
  c.bos_token_id = id("bos_token_id");
  c.pad_token_id = id("pad_token_id");
  c.eos_token_ids.clear();
  auto it = j.find("eos_token_id");
  if (it != j.end() && !it->is_null()) {
    if (it->is_array()) {
      for (const auto& e : *it) {
        LETHE_CHECK(e.is_number_integer() && (!e.is_number_unsigned() || e.get<std::uint64_t>() <= (1ull << 62)),
                    where, ": eos_token_id entries must be token ids, got ", e.dump());
        c.eos_token_ids.push_back(e.get<std::int64_t>());
      }
    } else {
      c.eos_token_ids.push_back(*id("eos_token_id"));
    }
  }
}

ModelConfig parse_decoder_sizes(const Json& j, const std::string& where) {
  ModelConfig c;
  c.model_type = json_required<std::string>(j, "model_type", where);
  c.vocab_size = json_required<std::int64_t>(j, "vocab_size", where);
  c.hidden_size = json_required<std::int64_t>(j, "hidden_size", where);
  c.num_layers = json_required<std::int64_t>(j, "num_hidden_layers", where);
  c.num_heads = json_required<std::int64_t>(j, "num_attention_heads", where);
  c.intermediate_size = json_required<std::int64_t>(j, "intermediate_size", where);
  c.num_kv_heads = json_optional<std::int64_t>(j, "num_key_value_heads", c.num_heads, where);
  LETHE_CHECK(c.num_heads > 0, where, ": num_attention_heads must be positive");
  return c;
}

std::int64_t derived_head_dim(const ModelConfig& c, const std::string& where) {
  LETHE_CHECK(c.hidden_size % c.num_heads == 0, where, ": num_attention_heads (", c.num_heads, ") must divide hidden_size (",
              c.hidden_size, ")");
  return c.hidden_size / c.num_heads;
}

void add_attention_keys(std::vector<TensorKey>& k, const std::string& p, const ModelConfig& c, const std::string& out_name) {
  const std::int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  add_linear_keys(k, p + "self_attn.q_proj", q, h, c.qkv_bias);
  add_linear_keys(k, p + "self_attn.k_proj", kv, h, c.qkv_bias);
  add_linear_keys(k, p + "self_attn.v_proj", kv, h, c.qkv_bias);
  add_linear_keys(k, p + "self_attn." + out_name, h, q, c.o_bias);
}

void add_gated_mlp_keys(std::vector<TensorKey>& k, const std::string& p, const ModelConfig& c) {
  const std::int64_t h = c.hidden_size, i = c.intermediate_size;
  add_linear_keys(k, p + "mlp.gate_proj", i, h, c.mlp_bias);
  add_linear_keys(k, p + "mlp.up_proj", i, h, c.mlp_bias);
  add_linear_keys(k, p + "mlp.down_proj", h, i, c.mlp_bias);
}

void write_special_ids(const ModelConfig& c, Json& out) {
  out["bos_token_id"] = c.bos_token_id ? Json(*c.bos_token_id) : Json(nullptr);
  out["pad_token_id"] = c.pad_token_id ? Json(*c.pad_token_id) : Json(nullptr);
  if (c.eos_token_ids.empty()) {
    out["eos_token_id"] = nullptr;
  } else if (c.eos_token_ids.size() == 1) {
    out["eos_token_id"] = c.eos_token_ids[0];
  } else {
    out["eos_token_id"] = c.eos_token_ids;
  }
}

void reject_unsupported(const Json& j, const std::vector<const char*>& null_keys,
                        const std::vector<const char*>& false_keys, const std::string& where) {
  for (const char* k : null_keys) {
    auto it = j.find(k);
    LETHE_CHECK(it == j.end() || it->is_null(), where, ": '", k, "' = ", it->dump(),
                " is not supported by lethe (only null); refusing to compute a different model");
  }
  for (const char* k : false_keys) {
    auto it = j.find(k);
    LETHE_CHECK(it == j.end() || it->is_null() || (it->is_boolean() && !it->get<bool>()), where,
                ": '", k, "' = ", it->dump(),
                " is not supported by lethe; refusing to compute a different model");
  }
}

}  // namespace lethe::model

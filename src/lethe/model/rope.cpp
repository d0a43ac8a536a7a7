// rope_scaling: parsed from config.json, written back, and turned into rotary frequencies the way
// transformers 4.43 computes them (modeling_rope_utils.py). Every tensor step keeps HF's dtype
// (fp32) and operation order, including Python's `scalar / tensor`, which torch evaluates as
// `tensor.reciprocal() * scalar` (not a division): the goldens compare to ~1e-6.
#include "lethe/model/rope.h"

#include <cmath>
#include <limits>

#include "lethe/core/error.h"
#include "model/arch/arch.h"

namespace lethe::model {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Python's `scalar / tensor` in torch.
at::Tensor rdiv(double scalar, const at::Tensor& t) { return t.reciprocal() * scalar; }

// base^(-arange(0, dim, 2) / dim) in fp32: `1.0 / (base ** (arange(0, dim, 2).float() / dim))`
// (a reciprocal times 1 is the division itself). `base` is a number or, for dynamic NTK, a
// 0-dim fp32 tensor.
template <typename Base>
at::Tensor default_inv_freq(const Base& base, std::int64_t dim) {
  const at::Tensor exponent = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / dim;
  return 1.0 / at::pow(base, exponent);
}

// Dynamic NTK: the base grows with the sequence once it passes max_position_embeddings. HF
// passes seq_len as a tensor there, so the new base is computed in fp32.
RotaryTable dynamic_table(const ModelConfig& c, std::int64_t seq_len) {
  const RopeScaling& r = c.rope_scaling;
  const std::int64_t dim = c.rotary_dim, max_pos = c.max_position_embeddings;
  if (seq_len <= max_pos) return {default_inv_freq(at::Scalar(c.rope_theta), dim), 1.0};
  const at::Tensor len = at::scalar_tensor(seq_len, at::kLong);
  const at::Tensor grown = len.mul(r.factor).div(max_pos).sub(r.factor - 1).pow(static_cast<double>(dim) / (dim - 2));
  return {default_inv_freq(grown.mul(c.rope_theta), dim), 1.0};
}

RotaryTable yarn_table(const ModelConfig& c) {
  const RopeScaling& r = c.rope_scaling;
  const std::int64_t dim = c.rotary_dim;
  const double base = c.rope_theta, factor = r.factor, max_pos = static_cast<double>(c.max_position_embeddings);
  RotaryTable t;
  t.attention_scaling = r.attention_factor ? *r.attention_factor : 0.1 * std::log(factor) + 1.0;
  // `rope_scaling.get("beta_fast") or 32`: a 0 means the default, as in HF.
  const double beta_fast = r.beta_fast && *r.beta_fast != 0 ? *r.beta_fast : 32;
  const double beta_slow = r.beta_slow && *r.beta_slow != 0 ? *r.beta_slow : 1;
  auto correction_dim = [&](double rotations) {
    return (static_cast<double>(dim) * std::log(max_pos / (rotations * 2 * kPi))) / (2 * std::log(base));
  };
  const double low = std::max(std::floor(correction_dim(beta_fast)), 0.0);
  double high = std::min(std::ceil(correction_dim(beta_slow)), static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // HF's guard against a zero-width ramp
  const at::Tensor pos_freqs = at::pow(at::Scalar(base), at::arange(0, dim, 2, at::kLong).to(at::kFloat) / dim);
  const at::Tensor extrapolation = rdiv(1.0, pos_freqs);
  const at::Tensor interpolation = rdiv(1.0, pos_freqs * factor);
  const at::Tensor ramp = ((at::arange(dim / 2, at::kFloat) - low) / (high - low)).clamp(0, 1);
  const at::Tensor keep = 1 - ramp;  // share of the extrapolated (unscaled) frequency
  t.inv_freq = interpolation * (1 - keep) + extrapolation * keep;
  return t;
}

// longrope: the factors are chosen by whether the configured context exceeds the pretrained
// one (the Llama path), or, for Phi-3, whether this sequence does.
RotaryTable longrope_table(const ModelConfig& c, std::int64_t seq_len) {
  const RopeScaling& r = c.rope_scaling;
  const std::int64_t dim = c.rotary_dim;
  double max_pos = static_cast<double>(c.max_position_embeddings), expanded = 0, factor = r.factor;
  if (r.original_max_position_embeddings > 0) {
    max_pos = static_cast<double>(r.original_max_position_embeddings);
    expanded = static_cast<double>(c.max_position_embeddings);
    factor = expanded / max_pos;
  } else {
    expanded = max_pos * factor;
  }
  RotaryTable t;
  t.attention_scaling = r.attention_factor ? *r.attention_factor
                        : factor <= 1.0    ? 1.0
                                           : std::sqrt(1 + std::log(factor) / std::log(max_pos));
  const bool long_context =
      r.longrope_by_length ? static_cast<double>(seq_len) > max_pos : expanded > max_pos;
  const auto& f = long_context ? r.long_factor : r.short_factor;
  const at::Tensor ext = at::tensor(std::vector<float>(f.begin(), f.end()), at::kFloat);
  const at::Tensor shape = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / dim;
  t.inv_freq = rdiv(1.0, ext * at::pow(at::Scalar(c.rope_theta), shape));
  return t;
}

RotaryTable llama3_table(const ModelConfig& c) {
  const RopeScaling& r = c.rope_scaling;
  const at::Tensor inv = default_inv_freq(at::Scalar(c.rope_theta), c.rotary_dim);
  const double old_len = static_cast<double>(r.original_max_position_embeddings);
  const double low_wavelen = old_len / r.low_freq_factor, high_wavelen = old_len / r.high_freq_factor;
  const at::Tensor wavelen = rdiv(2 * kPi, inv);
  // Long wavelengths divided by factor, short ones kept, a smooth blend between.
  const at::Tensor scaled = at::where(wavelen > low_wavelen, inv / r.factor, inv);
  const at::Tensor smooth = (rdiv(old_len, wavelen) - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
  const at::Tensor blended = (1 - smooth) * scaled / r.factor + smooth * scaled;
  const at::Tensor medium = (wavelen < high_wavelen).logical_not().logical_and((wavelen > low_wavelen).logical_not());
  return {at::where(medium, blended, scaled), 1.0};
}

double number(const Json& rs, const char* key, const std::string& where) {
  const Json& v = rs.at(key);
  LETHE_CHECK(v.is_number(), where, ": rope_scaling.", key, " must be a number, got ", v.dump());
  return v.get<double>();
}

std::vector<double> factors(const Json& rs, const char* key, std::int64_t n, const std::string& where) {
  const Json& v = rs.at(key);
  LETHE_CHECK(v.is_array() && static_cast<std::int64_t>(v.size()) == n &&
                  std::all_of(v.begin(), v.end(), [](const Json& x) { return x.is_number(); }),
              where, ": rope_scaling.", key, " must be a list of ", n, " numbers (one per rotary frequency)");
  return v.get<std::vector<double>>();
}

}  // namespace

bool rotary_depends_on_length(const ModelConfig& c) {
  return c.rope_scaling.type == "dynamic" || (c.rope_scaling.type == "longrope" && c.rope_scaling.longrope_by_length);
}

std::int64_t last_position(const ModelConfig& c) {
  if (c.positions == PositionKind::kRotary && c.rope_scaling.type == "dynamic") {
    return std::numeric_limits<std::int64_t>::max();
  }
  return c.max_position_embeddings - 1;
}

RotaryTable rotary_table(const ModelConfig& c, std::int64_t seq_len) {
  const std::string& type = c.rope_scaling.type;
  if (type == "default") return {default_inv_freq(at::Scalar(c.rope_theta), c.rotary_dim), 1.0};
  if (type == "linear") return {default_inv_freq(at::Scalar(c.rope_theta), c.rotary_dim) / c.rope_scaling.factor, 1.0};
  if (type == "dynamic") return dynamic_table(c, seq_len);
  if (type == "yarn") return yarn_table(c);
  if (type == "longrope") return longrope_table(c, seq_len);
  if (type == "llama3") return llama3_table(c);
  fail("rope_scaling type '", type, "' is not supported");
}

const std::vector<std::string>& rope_scaling_types() {
  static const std::vector<std::string> types = {"default", "linear", "dynamic", "yarn", "longrope", "llama3"};
  return types;
}

std::string rope_scaling_type_list() {
  std::string out;
  for (const auto& t : rope_scaling_types()) out += (out.empty() ? "" : ", ") + t;
  return out;
}

RopeScaling parse_rope_scaling(const Json& j, std::int64_t rotary_dim, const std::string& where) {
  RopeScaling r;
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return r;
  const Json& rs = j["rope_scaling"];
  LETHE_CHECK(rs.is_object(), where, ": rope_scaling must be an object or null, got ", rs.dump());
  // "type" is the key's older name, as HF still accepts.
  const char* type_key = rs.contains("rope_type") ? "rope_type" : "type";
  LETHE_CHECK(rs.contains(type_key) && rs[type_key].is_string(), where,
              ": rope_scaling needs a rope_type (", rope_scaling_type_list(), ")");
  r.type = rs[type_key].get<std::string>();
  auto need = [&](std::initializer_list<const char*> keys) {
    for (const char* k : keys) {
      LETHE_CHECK(rs.contains(k) && !rs[k].is_null(), where, ": rope_scaling of type ", r.type, " needs '", k, "'");
    }
  };
  auto optional = [&](const char* k) -> std::optional<double> {
    if (!rs.contains(k) || rs[k].is_null()) return std::nullopt;
    return number(rs, k, where);
  };
  if (r.type == "default") return r;
  if (r.type == "linear" || r.type == "dynamic") {
    need({"factor"});
    r.factor = number(rs, "factor", where);
  } else if (r.type == "yarn") {
    need({"factor"});
    r.factor = number(rs, "factor", where);
    r.attention_factor = optional("attention_factor");
    r.beta_fast = optional("beta_fast");
    r.beta_slow = optional("beta_slow");
  } else if (r.type == "llama3") {
    need({"factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor"});
    r.factor = number(rs, "factor", where);
    r.low_freq_factor = number(rs, "low_freq_factor", where);
    r.high_freq_factor = number(rs, "high_freq_factor", where);
    r.original_max_position_embeddings = json_required<std::int64_t>(rs, "original_max_position_embeddings", where);
    LETHE_CHECK(r.high_freq_factor > r.low_freq_factor && r.low_freq_factor > 0, where,
                ": rope_scaling needs 0 < low_freq_factor < high_freq_factor, got ", r.low_freq_factor, " and ",
                r.high_freq_factor);
    LETHE_CHECK(r.original_max_position_embeddings > 0, where,
                ": rope_scaling.original_max_position_embeddings must be positive");
  } else if (r.type == "longrope") {
    need({"short_factor", "long_factor"});
    r.short_factor = factors(rs, "short_factor", rotary_dim / 2, where);
    r.long_factor = factors(rs, "long_factor", rotary_dim / 2, where);
    r.attention_factor = optional("attention_factor");
    // The pretrained context: the config's top-level key (Phi-3's), else factor.
    r.original_max_position_embeddings = json_optional<std::int64_t>(j, "original_max_position_embeddings", 0, where);
    if (r.original_max_position_embeddings == 0) {
      need({"factor"});
      r.factor = number(rs, "factor", where);
    }
  } else {
    fail(where, ": rope_scaling type '", r.type, "' is not supported (supported: ", rope_scaling_type_list(), ")");
  }
  LETHE_CHECK(r.factor > 0, where, ": rope_scaling.factor must be positive, got ", r.factor);
  return r;
}

Json rope_scaling_json(const RopeScaling& r) {
  if (r.type == "default") return nullptr;
  Json j = {{"rope_type", r.type}};
  if (r.type == "longrope") {
    j["short_factor"] = r.short_factor;
    j["long_factor"] = r.long_factor;
    if (r.original_max_position_embeddings == 0) j["factor"] = r.factor;
  } else {
    j["factor"] = r.factor;
  }
  if (r.type == "llama3") {
    j["low_freq_factor"] = r.low_freq_factor;
    j["high_freq_factor"] = r.high_freq_factor;
    j["original_max_position_embeddings"] = r.original_max_position_embeddings;
  }
  if (r.attention_factor) j["attention_factor"] = *r.attention_factor;
  if (r.beta_fast) j["beta_fast"] = *r.beta_fast;
  if (r.beta_slow) j["beta_slow"] = *r.beta_slow;
  return j;
}

}  // namespace lethe::model

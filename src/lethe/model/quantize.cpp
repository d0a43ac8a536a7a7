// Round-to-nearest weight quantization (include/lethe/model/quantize.h).
#include "lethe/model/quantize.h"

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>
#include <regex>

#include "lethe/core/error.h"
#include "lethe/model/blocks.h"
#include "lethe/model/causal_lm.h"

namespace lethe::model {
namespace {

void check_spec(const QuantSpec& s) {
  LETHE_CHECK(s.bits >= 2 && s.bits <= 8, "quantize: bits must be 2..8, got ", s.bits);
  LETHE_CHECK(s.group >= 0, "quantize: group must be 0 (per channel) or positive, got ", s.group);
}

// Rounds half away from zero, exactly (C's round(), ggml's roundf): y − trunc(y) is exact in
// fp32 for the |y| ≤ 255 seen here, so ties are found without the y + 0.5 rounding trap.
at::Tensor round_half_away(const at::Tensor& y) {
  const at::Tensor t = y.trunc();
  return at::where((y - t).abs() == 0.5, t + y.sign(), y.round());
}

struct Groups {
  at::Tensor codes, scales, minima;  // (rows, n·g), (rows, n), (rows, n)
};

// x (rows, n·g) as n groups of g per row.
Groups quantize_groups(const at::Tensor& x, std::int64_t g, const QuantSpec& spec) {
  const std::int64_t rows = x.size(0);
  const at::Tensor v = x.reshape({rows, -1, g});
  Groups out;
  at::Tensor s, q;
  if (spec.symmetric) {
    const double qmax = std::ldexp(1.0, spec.bits - 1) - 1;
    s = v.abs().amax(-1, /*keepdim=*/true).div_(qmax);
    q = round_half_away(v / at::where(s > 0, s, at::ones_like(s))).clamp_(-qmax, qmax);
    out.codes = q.to(at::kChar);
  } else {
    const double levels = std::ldexp(1.0, spec.bits) - 1;
    const at::Tensor mn = v.amin(-1, /*keepdim=*/true);
    s = (v.amax(-1, /*keepdim=*/true) - mn).div_(levels);
    q = round_half_away((v - mn) / at::where(s > 0, s, at::ones_like(s))).clamp_(0, levels);
    out.codes = q.to(at::kByte);
    out.minima = mn.squeeze(-1);
  }
  out.codes = out.codes.reshape({rows, -1});
  out.scales = s.squeeze(-1);
  return out;
}

std::int64_t group_of(const QuantSpec& spec, std::int64_t cols) {
  return spec.group == 0 ? cols : std::min(spec.group, cols);
}

}  // namespace

std::string QuantSpec::name() const {
  std::string n = "int" + std::to_string(bits);
  if (group > 0) n += "-g" + std::to_string(group);
  if (!symmetric) n += "-asym";
  return n;
}

QuantSpec parse_quant_spec(const std::string& text) {
  static const std::regex form(R"(int([0-9]+)(?:-g([0-9]+))?(?:-(sym|asym))?)");
  std::smatch m;
  LETHE_CHECK(std::regex_match(text, m, form),
              "quantize: '", text, "' is not a quantization; expected int<bits>[-g<group>][-sym|-asym], "
              "e.g. int8, int4-g128, int4-g32-asym");
  QuantSpec s;
  s.bits = std::stoi(m[1].str());
  s.group = m[2].matched ? std::stoll(m[2].str()) : 0;
  s.symmetric = !(m[3].matched && m[3].str() == "asym");
  LETHE_CHECK(s.bits >= 2 && s.bits <= 8, "quantize: '", text, "': bits must be 2..8");
  LETHE_CHECK(!m[2].matched || s.group > 0, "quantize: '", text, "': a group has at least one element");
  return s;
}

QuantizedTensor quantize_rows(const at::Tensor& w, const QuantSpec& spec) {
  check_spec(spec);
  LETHE_CHECK(w.dim() == 2 && w.is_floating_point(), "quantize: a 2-D floating weight is needed, got ",
              w.sizes(), " ", w.scalar_type());
  torch::NoGradGuard ng;
  const at::Tensor x = w.detach().to(at::kFloat).contiguous();
  const std::int64_t rows = x.size(0), cols = x.size(1), g = group_of(spec, cols);
  const std::int64_t full = cols - cols % g;
  std::vector<Groups> parts;
  if (full > 0) parts.push_back(quantize_groups(x.narrow(1, 0, full), g, spec));
  if (full < cols) parts.push_back(quantize_groups(x.narrow(1, full, cols - full), cols - full, spec));
  QuantizedTensor q;
  q.spec = spec;
  q.shape = {rows, cols};
  auto cat = [&](at::Tensor Groups::*field) {
    std::vector<at::Tensor> v;
    for (const auto& p : parts) v.push_back(p.*field);
    return at::cat(v, 1);
  };
  q.codes = cat(&Groups::codes);
  q.scales = cat(&Groups::scales);
  if (!spec.symmetric) q.minima = cat(&Groups::minima);
  return q;
}

at::Tensor dequantize(const QuantizedTensor& q) {
  const std::int64_t cols = q.shape.at(1), g = group_of(q.spec, cols);
  auto per_element = [&](const at::Tensor& t) { return t.repeat_interleave(g, 1).narrow(1, 0, cols); };
  at::Tensor x = q.codes.to(at::kFloat).mul_(per_element(q.scales));
  if (!q.spec.symmetric) x.add_(per_element(q.minima));
  return x;
}

at::Tensor fake_quantize(const at::Tensor& w, const QuantSpec& spec) {
  return dequantize(quantize_rows(w, spec)).to(w.scalar_type());
}

QuantizeSummary quantize_linears(CausalLM& model, const QuantSpec& spec) {
  check_spec(spec);
  torch::NoGradGuard ng;
  const at::Tensor head = model.head_weight();
  QuantizeSummary s;
  double err2 = 0, norm2 = 0;
  auto apply = [&](at::Tensor& w, bool transposed) {
    const at::Tensor before = w.detach().to(at::kFloat);
    const at::Tensor rows = transposed ? before.t() : before;
    at::Tensor after = dequantize(quantize_rows(rows, spec));
    if (transposed) after = after.t();
    const at::Tensor diff = after - before;
    s.max_abs_error = std::max(s.max_abs_error, diff.abs().max().item<double>());
    err2 += diff.square().sum().item<double>();
    norm2 += before.square().sum().item<double>();
    w.detach().copy_(after);
    ++s.tensors;
    s.parameters += w.numel();
  };
  for (const auto& m : model.modules(/*include_self=*/false)) {
    if (auto* l = dynamic_cast<LinearImpl*>(m.get())) {
      if (!l->weight.is_same(head)) apply(l->weight, false);
    } else if (auto* c = dynamic_cast<Conv1DImpl*>(m.get())) {
      apply(c->weight, true);
    }
  }
  LETHE_CHECK(s.tensors > 0, "quantize: the model has no linear weights outside its head");
  s.relative_rms_error = norm2 > 0 ? std::sqrt(err2 / norm2) : 0.0;
  return s;
}

}  // namespace lethe::model

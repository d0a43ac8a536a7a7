#include "model/blocks/half_weights.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "lethe/core/error.h"
#include "lethe/model/blocks.h"
#include "model/blocks/decode_kernels.h"

namespace lethe::model {
namespace {

at::Tensor to_compute(const at::Tensor& w, c10::ScalarType ct) {
  return ct == at::kFloat ? widen_to_float(w) : w.to(ct);
}

std::int64_t rows_per_block(const at::Tensor& w) {
  return std::max<std::int64_t>(1, kHalfBlockBytes / (w.size(1) * static_cast<std::int64_t>(sizeof(float))));
}

// y (M, N) = x (M, K) W^T + b, W (N, K) half. Each block of W's rows is converted, multiplied
// into its columns of y (sgemm writes them in place through y's row stride) and dropped.
at::Tensor forward_2d(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const auto ct = x.scalar_type();
  const std::int64_t n = w.size(0), step = rows_per_block(w);
  const at::Tensor bias = b.defined() ? b.to(ct) : b;
  at::Tensor y = at::empty({x.size(0), n}, x.options());
  for (std::int64_t o0 = 0; o0 < n; o0 += step) {
    const std::int64_t nb = std::min(step, n - o0);
    const at::Tensor wb = to_compute(w.narrow(0, o0, nb), ct);  // (nb, K)
    at::Tensor yb = y.narrow(1, o0, nb);
    if (bias.defined()) {
      at::addmm_out(yb, bias.narrow(0, o0, nb), x, wb.t());
    } else {
      at::mm_out(yb, x, wb.t());
    }
  }
  return y;
}

at::Tensor forward_nd(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (small_linear_applies(x, w)) return small_linear(x, w, b);
  const std::int64_t k = w.size(1);
  auto shape = x.sizes().vec();
  shape.back() = w.size(0);
  return forward_2d(x.reshape({-1, k}), w, b).view(shape);
}

// dx (M, K) = dy (M, N) W (N, K), block by block of W's rows.
at::Tensor input_grad(const at::Tensor& dy, const at::Tensor& w) {
  const std::int64_t n = w.size(0), k = w.size(1), step = rows_per_block(w);
  const at::Tensor g = dy.reshape({-1, n});
  at::Tensor dx = at::zeros({g.size(0), k}, g.options());
  for (std::int64_t o0 = 0; o0 < n; o0 += step) {
    const std::int64_t nb = std::min(step, n - o0);
    dx.addmm_(g.narrow(1, o0, nb), to_compute(w.narrow(0, o0, nb), g.scalar_type()));
  }
  return dx;
}

// The frozen half weight in a graph: saves W itself (half size), not an fp32 copy.
struct HalfLinear : public torch::autograd::Function<HalfLinear> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            const c10::optional<at::Tensor>& b) {
    ctx->saved_data["w"] = w;
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    return forward_nd(x, w, b.value_or(at::Tensor()));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor w = ctx->saved_data["w"].toTensor();
    const auto sizes = ctx->saved_data["x_sizes"].toIntVector();
    return {input_grad(grads[0], w).view(sizes), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool half_weight_applies(const at::Tensor& x, const at::Tensor& w) {
  return is_half(w.scalar_type()) && !is_half(x.scalar_type());
}

at::Tensor half_weight_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  LETHE_CHECK(!(w.requires_grad() || (b.defined() && b.requires_grad())) || !at::GradMode::is_enabled(),
              "a ", c10::toString(w.scalar_type()), " weight of shape ", w.sizes(),
              " requires grad: half-precision weights are for frozen parameters; trainable ones stay float32");
  if (at::GradMode::is_enabled() && x.requires_grad()) {
    return HalfLinear::apply(x, w, b.defined() ? c10::optional<at::Tensor>(b) : c10::nullopt);
  }
  return forward_nd(x, w, b);
}

}  // namespace lethe::model

// Weights stored in half precision (bf16, f16) and computed with in fp32 (docs/formats.md,
// "Half-size weights").
//
// libtorch 1.13's CPU bf16 matmul is a scalar fallback (~1 GFLOP/s here, performance.md), so a
// half weight is never multiplied as such: a block of its rows at a time is converted to fp32
// and handed to sgemm, and the few rows of decoding go through small_linear's bf16/f16 variant,
// which converts in registers. The fp32 copy of a weight is therefore never whole (at most
// kHalfBlockBytes at a time), and a model stored in bf16 computes exactly what the fp32 model
// whose weights are those bf16 values computes.
//
// In training, a half weight is frozen: the backward gives the input's gradient (converting W
// again, block by block) and keeps only the half weight, not an fp32 copy, for it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lethe::model {

// fp32 bytes of a weight converted at once.
inline constexpr std::int64_t kHalfBlockBytes = 16 << 20;

// True when `w` is stored in half precision and `x` is not: the conversion path.
bool half_weight_applies(const at::Tensor& x, const at::Tensor& w);
// y = x W^T + b for W (N, K) in bf16/f16 (any strides), b (N) in any dtype or undefined, x (..., K)
// fp32/fp64 -> (..., N) in x's dtype. Refuses a W that requires grad.
at::Tensor half_weight_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

}  // namespace lethe::model

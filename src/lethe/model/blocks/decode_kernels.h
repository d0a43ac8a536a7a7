// CPU kernels for decoding: the shapes generation produces (a few rows per step) are the ones
// BLAS handles worst (performance.md fact 5).
//
// small_linear: y = x W^T + b for up to 16 rows of x. OpenBLAS runs those through sgemm at a
//   fraction of memory bandwidth (M=8 against a 32000x768 matrix takes 4x one matrix-vector
//   product). Here each block of weight rows comes from memory once and is dotted with every row
//   of x while it sits in L1, so decoding B rows costs about the memory traffic of one.
// decode_attention: attention of one new position over the KV cache. Through bmm it is one
//   tiny sgemm per (batch, head) — 192 calls per layer at batch 8 — each costing more in setup
//   than in arithmetic; here it is one pass over the cache per (batch, head).
//
// Both need fp32 CPU activations and AVX2+FMA+F16C (checked at run time); small_linear also
// reads bf16 and f16 weights (widened in registers); callers fall back to ATen.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lethe::model {

inline constexpr std::int64_t kSmallMatmulMaxRows = 16;

// True when small_linear() can run: fp32 x, fp32/bf16/f16 weights on the CPU, AVX2+FMA+F16C,
// at most kSmallMatmulMaxRows rows, contiguous weights, and no gradient required.
bool small_linear_applies(const at::Tensor& x, const at::Tensor& w);
// x (..., K), w (N, K) row-major, b (N) or undefined -> (..., N).
at::Tensor small_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// float(half) for a bf16/f16 CPU tensor, exactly as .to(kFloat) (both conversions are exact),
// vectorised and threaded: ATen 1.13's conversion moves 4.5 GB/s here, a third of memory
// bandwidth, and a half-precision weight is converted at every use (half_weights.h).
at::Tensor widen_to_float(const at::Tensor& half);

// True when decode_attention() can run for these operands (one query position).
bool decode_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& mask);
// q (B, H, 1, D) already scaled; k, v (B, KVH, S, D) with unit stride in D (cache views are
// fine); mask_bias (B|1, 1, 1, S) additive or undefined. Query head h uses kv head h / (H/KVH).
// Returns (B, H, 1, D).
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& mask_bias);

}  // namespace lethe::model

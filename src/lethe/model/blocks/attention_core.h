// softmax(cap(scale(Q K^T)) + bias) V for grouped heads, with the (batch · kv-head) products
// run in parallel and an explicit backward.
//
// ATen's CPU bmm multiplies the B·H small matrices one after another, each through a
// multi-threaded sgemm whose set-up dominates at these sizes (256 x 64 x 256: ~47 GFLOP/s, a
// third of what the same threads reach on one big product). Here each thread takes whole
// (batch, kv-head) slices and runs single-threaded products on them; forward and backward both
// (the backward is the textbook one: dP = dO V^T, dS = P ⊙ (dP - rowsum(dP ⊙ P)), back through
// the cap and the scale, dQ = dS K, dK = dS^T Q, dV = P^T dO). Used for fp32/fp64 CPU tensors; elsewhere ATen runs.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace lethe::model {

bool attention_core_applies(const at::Tensor& q);

// How raw scores q·k are scaled: divided by `value` (HF's `/ math.sqrt(head_dim)`) or
// multiplied by it (Gemma-2's `* scaling`).
struct ScoreScale {
  double value = 1;
  bool divide = false;
};

// q (B, KVH, R·T, D) — the R query heads sharing a kv head stacked along the token axis; k, v
// (B, KVH, S, D); bias (B|1, 1, T, S) additive or undefined; softcap > 0 caps the scaled scores
// to softcap · tanh(s / softcap) before the bias (Gemma-2). Returns (B, KVH, R·T, D).
at::Tensor attention_core(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const at::Tensor& bias, std::int64_t rep, ScoreScale scale, double softcap = 0);

}  // namespace lethe::model

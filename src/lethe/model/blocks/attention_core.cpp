#include "model/blocks/attention_core.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

namespace lethe::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// out[i] = op(a[i]) @ op(b[i]) for every leading index i of 3-D tensors, in parallel over i.
// Operands are detached: OpenMP workers do not inherit the caller's autograd state, and the
// gradients here are computed by hand anyway.
at::Tensor batched_mm(const at::Tensor& a, const at::Tensor& b, bool ta, bool tb) {
  at::Tensor A = a.detach().contiguous(), B = b.detach().contiguous();
  const std::int64_t n = A.size(0);
  const std::int64_t rows = ta ? A.size(2) : A.size(1);
  const std::int64_t cols = tb ? B.size(1) : B.size(2);
  at::Tensor out = at::empty({n, rows, cols}, A.options());
  at::parallel_for(0, n, 1, [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) {
      at::Tensor ai = ta ? A[i].t() : A[i];
      at::Tensor bi = tb ? B[i].t() : B[i];
      at::Tensor oi = out[i];
      at::mm_out(oi, ai, bi);
    }
  });
  return out;
}

struct AttentionCore : public torch::autograd::Function<AttentionCore> {
  // q (N, R·T, D), k, v (N, S, D) with N = B·KVH; bias (B|1, 1, T, S) or undefined.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& bias, std::int64_t b, std::int64_t rep, double scale, bool divide,
                            double softcap) {
    at::AutoDispatchBelowADInplaceOrView guard;
    const std::int64_t n = q.size(0), rt = q.size(1), s = k.size(1);
    at::Tensor scores = batched_mm(q, k, false, true);  // (N, R·T, S)
    if (divide) {
      scores.div_(scale);
    } else if (scale != 1) {
      scores.mul_(scale);
    }
    at::Tensor capped;  // tanh(s / cap), kept for the backward
    if (softcap > 0) {
      capped = at::tanh(scores / softcap);
      scores = capped * softcap;
    }
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["softcap"] = softcap;
    ctx->saved_data["divide"] = divide;
    if (bias.numel() > 0) {
      const std::int64_t t = rt / rep;
      scores.view({b, n / b, rep, t, s}).add_(bias.view({bias.size(0), 1, 1, t, s}));
    }
    at::Tensor probs = at::softmax(scores, -1);
    at::Tensor out = batched_mm(probs, v, false, false);  // (N, R·T, D)
    ctx->save_for_backward({q, k, v, probs, capped});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &p = saved[3], &capped = saved[4];
    const double scale = ctx->saved_data["scale"].toDouble();
    const bool divide = ctx->saved_data["divide"].toBool();
    at::Tensor d_out = grads[0].contiguous();
    at::Tensor d_p = batched_mm(d_out, v, false, true);                 // (N, R·T, S)
    at::Tensor d_v = batched_mm(p, d_out, true, false);                 // (N, S, D)
    at::Tensor d_s = p * (d_p - (d_p * p).sum(-1, /*keepdim=*/true));   // softmax backward
    if (capped.defined()) {  // through cap · tanh(s / cap), in autograd's order: × cap, tanh', ÷ cap
      const double cap = ctx->saved_data["softcap"].toDouble();
      d_s = ((d_s * cap) * (1 - capped * capped)) / cap;
    }
    if (divide) {
      d_s = d_s / scale;                                                // through the scaling
    } else if (scale != 1) {
      d_s = d_s * scale;
    }
    at::Tensor d_q = batched_mm(d_s, k, false, false);                  // (N, R·T, D)
    at::Tensor d_k = batched_mm(d_s, q, true, false);                   // (N, S, D)
    return {d_q, d_k, d_v, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool attention_core_applies(const at::Tensor& q) {
  return q.device().is_cpu() && (q.scalar_type() == at::kFloat || q.scalar_type() == at::kDouble);
}

at::Tensor attention_core(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                          std::int64_t rep, ScoreScale scale, double softcap) {
  const std::int64_t b = q.size(0), kvh = q.size(1);
  at::Tensor q3 = q.reshape({b * kvh, q.size(2), q.size(3)});
  at::Tensor k3 = k.reshape({b * kvh, k.size(2), k.size(3)});
  at::Tensor v3 = v.reshape({b * kvh, v.size(2), v.size(3)});
  // autograd::Function cannot take an undefined tensor: no mask is an empty one.
  const at::Tensor mask = bias.defined() ? bias : at::empty({0}, q.options());
  at::Tensor out = AttentionCore::apply(q3, k3, v3, mask, b, rep, scale.value, scale.divide, softcap);
  return out.view({b, kvh, q.size(2), q.size(3)});
}

}  // namespace lethe::model

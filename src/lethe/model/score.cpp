#include "lethe/model/score.h"

#include <algorithm>
#include <numeric>

#include "lethe/core/error.h"
#include "lethe/model/blocks.h"
#include "model/blocks/decode_kernels.h"

#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

namespace lethe::model {
namespace {
// Rows of logits the scorer computes at once: 32 MiB of fp32 logits, but at least kMinChunkRows
// rows — each chunk's sgemm packs the whole head again (and a half-precision head is converted
// again, model/blocks.h), which at Llama-3's vocabulary and 65 rows a chunk cost a third of the
// scoring time. The label path's chunks (below) are the 32 MiB ones.
constexpr std::int64_t kChunkBytes = 32 << 20;
constexpr std::int64_t kMinChunkRows = 512;
}  // namespace

at::Tensor positions_from_mask(const at::Tensor& mask) {
  at::Tensor m = mask.to(at::kLong);
  return (m.cumsum(-1) - 1).masked_fill_(m.eq(0), 1);
}

TokenLogprobs score_tokens(CausalLM& model, const at::Tensor& input_ids,
                           const at::Tensor& attention_mask, const at::Tensor& labels,
                           HookObserver* hooks, ScoreExtras extras) {
  torch::NoGradGuard no_grad;
  LETHE_CHECK(input_ids.dim() == 2 && input_ids.size(1) >= 2,
              "score_tokens needs (batch, tokens >= 2) ids, got ", input_ids.sizes());
  const std::int64_t b = input_ids.size(0), t = input_ids.size(1);
  const auto device = model.head_weight().device();
  at::Tensor ids = input_ids.to(device);

  ForwardOptions fo;
  fo.logits = LogitsMode::kNone;
  fo.hooks = hooks;
  at::Tensor real;  // (B, T) bool
  if (attention_mask.defined()) {
    LETHE_CHECK(attention_mask.sizes() == input_ids.sizes(), "attention_mask ",
                attention_mask.sizes(), " must match input_ids ", input_ids.sizes());
    fo.attention_mask = attention_mask.to(device);
    fo.position_ids = positions_from_mask(fo.attention_mask);
    real = fo.attention_mask.ne(0);
  }
  at::Tensor targets = labels.defined() ? labels.to(device, at::kLong) : ids;
  LETHE_CHECK(targets.sizes() == input_ids.sizes(), "labels ", targets.sizes(),
              " must match input_ids ", input_ids.sizes());
  targets = targets.narrow(1, 1, t - 1);  // (B, T-1)
  at::Tensor keep = targets.ne(kIgnoreIndex);
  if (real.defined()) {
    keep = keep.logical_and(real.narrow(1, 1, t - 1)).logical_and(real.narrow(1, 0, t - 1));
  }

  ForwardOutput out = model.forward(ids, fo);
  at::Tensor w = model.head_weight();  // (V, C)
  const std::int64_t v = w.size(0), c = w.size(1);
  at::Tensor h = out.last_hidden.narrow(1, 0, t - 1).reshape({-1, c});  // (B*(T-1), C)
  at::Tensor tgt = targets.masked_fill(keep.logical_not(), 0).reshape({-1, 1});
  const std::int64_t rows = h.size(0);
  const bool half_head = is_half(w.scalar_type());
  const std::int64_t by_bytes = kChunkBytes / (v * static_cast<std::int64_t>(sizeof(float)));
  const std::int64_t chunk = std::clamp<std::int64_t>(std::max(by_bytes, kMinChunkRows), 1, rows);

  at::Tensor lp = at::empty({rows}, h.options());
  at::Tensor mu, sd, hit;
  if (extras.distribution) {
    mu = at::empty({rows}, h.options());
    sd = at::empty({rows}, h.options());
  }
  if (extras.argmax) hit = at::empty({rows}, h.options().dtype(at::kBool));
  const at::Tensor buf = half_head ? at::Tensor() : at::empty({chunk, v}, h.options());  // reused by every chunk
  at::Tensor wt = w.t();
  const at::Tensor bias = model.head_bias();
  for (std::int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const std::int64_t n = std::min(chunk, rows - r0);
    at::Tensor logits;
    if (half_head) {
      logits = linear(h.narrow(0, r0, n), w, bias);  // (n, V), converting the head block by block
    } else {
      logits = buf.narrow(0, 0, n);
      if (bias.defined()) {
        at::addmm_out(logits, bias, h.narrow(0, r0, n), wt);  // (n, V), as the head's linear
      } else {
        at::mm_out(logits, h.narrow(0, r0, n), wt);  // (n, V)
      }
    }
    model.finish_logits_(logits);
    at::Tensor lse = at::logsumexp(logits, {1});
    at::Tensor y = tgt.narrow(0, r0, n);
    lp.narrow(0, r0, n).copy_(logits.gather(1, y).squeeze(1) - lse);
    if (extras.argmax) hit.narrow(0, r0, n).copy_(logits.argmax(1).eq(y.squeeze(1)));
    if (extras.distribution) {
      // In place: logits become log p, then E[log p] and E[(log p)^2] under p.
      at::Tensor logp = logits.sub_(lse.unsqueeze(1));
      at::Tensor p = logp.exp();
      at::Tensor m1 = (p * logp).sum(1);
      at::Tensor m2 = (p * logp * logp).sum(1);
      mu.narrow(0, r0, n).copy_(m1);
      sd.narrow(0, r0, n).copy_((m2 - m1 * m1).clamp_min(0).sqrt());
    }
  }
  TokenLogprobs res;
  const at::Tensor drop = keep.logical_not();
  res.logprobs = lp.view({b, t - 1}).to(at::kFloat).masked_fill_(drop, 0.0);
  res.mask = keep;
  if (extras.distribution) {
    res.mean_logprob = mu.view({b, t - 1}).to(at::kFloat).masked_fill_(drop, 0.0);
    res.std_logprob = sd.view({b, t - 1}).to(at::kFloat).masked_fill_(drop, 0.0);
  }
  if (extras.argmax) res.argmax_hit = hit.view({b, t - 1}).logical_and(keep);
  return res;
}

std::vector<std::vector<float>> score_sequences(CausalLM& model,
                                                const std::vector<std::vector<std::int64_t>>& seqs,
                                                std::int64_t batch_size) {
  LETHE_CHECK(batch_size > 0, "batch_size must be positive");
  std::vector<std::vector<float>> out(seqs.size());
  std::vector<std::size_t> order(seqs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return seqs[a].size() > seqs[b].size(); });
  for (std::size_t i0 = 0; i0 < order.size(); i0 += batch_size) {
    const std::size_t n = std::min<std::size_t>(batch_size, order.size() - i0);
    const std::int64_t t = static_cast<std::int64_t>(seqs[order[i0]].size());
    if (t < 2) break;  // sorted: every remaining sequence is too short to score
    at::Tensor ids = at::zeros({static_cast<std::int64_t>(n), t}, at::kLong);
    at::Tensor mask = at::zeros({static_cast<std::int64_t>(n), t}, at::kLong);
    for (std::size_t r = 0; r < n; ++r) {
      const auto& s = seqs[order[i0 + r]];
      std::copy(s.begin(), s.end(), ids.data_ptr<std::int64_t>() + r * t);
      std::fill_n(mask.data_ptr<std::int64_t>() + r * t, s.size(), 1);
    }
    TokenLogprobs lp = score_tokens(model, ids, mask);
    at::Tensor cpu = lp.logprobs.cpu().contiguous();
    for (std::size_t r = 0; r < n; ++r) {
      const auto len = static_cast<std::int64_t>(seqs[order[i0 + r]].size());
      const float* row = cpu.data_ptr<float>() + r * (t - 1);
      out[order[i0 + r]].assign(row, row + std::max<std::int64_t>(len - 1, 0));
    }
  }
  return out;
}

ShiftedLabels shift_labels(const at::Tensor& logits, const at::Tensor& labels) {
  LETHE_CHECK(logits.dim() == 3 && labels.dim() == 2 && logits.size(0) == labels.size(0) &&
                  logits.size(1) == labels.size(1),
              "loss: logits (B,T,V) ", logits.sizes(), " do not match labels (B,T) ", labels.sizes());
  const std::int64_t t = logits.size(1);
  ShiftedLabels s;
  s.logits = logits.narrow(1, 0, t - 1);
  if (s.logits.scalar_type() != at::kDouble) s.logits = s.logits.to(at::kFloat);
  const at::Tensor y = labels.narrow(1, 1, t - 1).to(logits.device(), at::kLong);
  s.mask = y.ne(kIgnoreIndex);
  s.targets = y.masked_fill(s.mask.logical_not(), 0);
  return s;
}

at::Tensor label_logprobs(const ShiftedLabels& s) {
  return at::log_softmax(s.logits, -1).gather(-1, s.targets.unsqueeze(-1)).squeeze(-1);
}

TokenLogprobs token_logprobs(const at::Tensor& logits, const at::Tensor& labels) {
  const ShiftedLabels s = shift_labels(logits, labels);
  return {label_logprobs(s).masked_fill(s.mask.logical_not(), 0.0), s.mask};
}

at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels) {
  const ShiftedLabels s = shift_labels(logits, labels);
  return mean_nll(label_logprobs(s), s.mask);
}

at::Tensor mean_nll(const at::Tensor& lp, const at::Tensor& mask) {
  const at::Tensor n = mask.sum();
  LETHE_CHECK(n.item<std::int64_t>() > 0, "loss: the batch has no label tokens");
  return (-lp).masked_select(mask).sum() / n;
}

namespace {

// The end of the chunk that starts at r0 of n positions: 32 MiB of fp32 logits but at least
// 256 rows (every chunk packs the whole head for sgemm, in the forward and twice in the
// backward: 65-row chunks at Llama-3's vocabulary made an NPO step 27 % slower), and never a
// last chunk of kSmallMatmulMaxRows rows or fewer (merged into this one), so every chunk's head
// takes the kernel the whole batch's would (blocks/decode_kernels.h).
std::int64_t chunk_end(std::int64_t r0, std::int64_t n, std::int64_t vocab) {
  const std::int64_t step = std::max<std::int64_t>(256, kChunkBytes / (vocab * static_cast<std::int64_t>(sizeof(float))));
  const std::int64_t end = std::min(n, r0 + step);
  return n - end <= kSmallMatmulMaxRows ? n : end;
}

// The dtype log-probs are taken in: fp32, fp64 for fp64 models.
c10::ScalarType lp_dtype(const at::Tensor& logits) {
  return logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// One chunk of the plain path: head, fp32, log-softmax, gathered. h (n, C), targets (n, 1).
at::Tensor chunk_logprobs(const CausalLM& model, const at::Tensor& h, const at::Tensor& targets) {
  const at::Tensor logits = model.head(h);
  return at::log_softmax(logits.to(lp_dtype(logits)), -1).gather(-1, targets).squeeze(-1);
}

struct HeadOf : torch::CustomClassHolder {
  const CausalLM* model = nullptr;
};

struct ChunkedLabelLogprobs : public torch::autograd::Function<ChunkedLabelLogprobs> {
  // h (N, C) hidden states of the scored positions, targets (N, 1) -> (N) log-probs.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& h, const at::Tensor& targets,
                            const c10::intrusive_ptr<HeadOf>& head) {
    ctx->save_for_backward({h, targets});
    ctx->saved_data["head"] = c10::IValue::make_capsule(head);
    const std::int64_t n = h.size(0), v = head->model->config().vocab_size;
    at::Tensor lp = at::empty({n}, h.options().dtype(h.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
    for (std::int64_t r0 = 0, r1 = 0; r0 < n; r0 = r1) {
      r1 = chunk_end(r0, n, v);
      const std::int64_t k = r1 - r0;
      lp.narrow(0, r0, k).copy_(chunk_logprobs(*head->model, h.narrow(0, r0, k), targets.narrow(0, r0, k)));
    }
    return lp;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto head = c10::static_intrusive_pointer_cast<HeadOf>(ctx->saved_data["head"].toCapsule());
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& h = saved[0];
    const at::Tensor& targets = saved[1];
    const std::int64_t n = h.size(0), v = head->model->config().vocab_size;
    at::Tensor dh = at::empty_like(h);
    for (std::int64_t r0 = 0, r1 = 0; r0 < n; r0 = r1) {
      r1 = chunk_end(r0, n, v);
      const std::int64_t k = r1 - r0;
      at::Tensor hc = h.narrow(0, r0, k).detach().requires_grad_(true);
      at::Tensor logits;
      {
        torch::AutoGradMode on(true);
        logits = head->model->head(hc);
      }
      // d lp / d logits = g · (onehot(target) − softmax), formed in the log-softmax's own
      // buffer: two (k, V) tensors alive instead of autograd's four (logits, the saved
      // log-softmax, the scattered gradient, the log-softmax's gradient) — 262 MB less at
      // Llama-3's vocabulary and 256 rows.
      const at::Tensor g = grads[0].narrow(0, r0, k).unsqueeze(1);
      at::Tensor d = at::log_softmax(logits.detach().to(lp_dtype(logits)), -1);
      d.exp_().mul_(g.neg()).scatter_add_(1, targets.narrow(0, r0, k), g);
      torch::autograd::backward({logits}, {d.to(logits.scalar_type())});
      dh.narrow(0, r0, k).copy_(hc.grad());
    }
    return {dh, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool chunked_label_logprobs_applies(const CausalLM& model, std::int64_t batch, std::int64_t tokens) {
  const at::Tensor b = model.head_bias();
  const bool frozen = !model.head_weight().requires_grad() && !(b.defined() && b.requires_grad());
  return frozen && batch * (tokens - 1) > kSmallMatmulMaxRows;
}

LabelLogprobs chunked_label_logprobs(const CausalLM& model, const at::Tensor& hidden, const at::Tensor& labels) {
  LETHE_CHECK(hidden.dim() == 3 && labels.dim() == 2 && hidden.size(0) == labels.size(0) &&
                  hidden.size(1) == labels.size(1),
              "loss: hidden states (B,T,C) ", hidden.sizes(), " do not match labels (B,T) ", labels.sizes());
  LETHE_CHECK(chunked_label_logprobs_applies(model, hidden.size(0), hidden.size(1)),
              "chunked_label_logprobs: the head requires grad, or ", hidden.size(0) * (hidden.size(1) - 1),
              " positions are too few; compute full logits instead");
  const std::int64_t b = hidden.size(0), t = hidden.size(1), c = hidden.size(2);
  const at::Tensor y = labels.narrow(1, 1, t - 1).to(hidden.device(), at::kLong);
  LabelLogprobs out;
  out.mask = y.ne(kIgnoreIndex);
  const at::Tensor targets = y.masked_fill(out.mask.logical_not(), 0).reshape({-1, 1});
  const at::Tensor h = hidden.narrow(1, 0, t - 1).reshape({-1, c});
  auto head = c10::make_intrusive<HeadOf>();
  head->model = &model;
  out.logprobs = ChunkedLabelLogprobs::apply(h, targets, head).view({b, t - 1});
  return out;
}

}  // namespace lethe::model

#include "lethe/unlearn/losses.h"

#include <ATen/ATen.h>

#include <limits>

#include "lethe/core/error.h"
#include "lethe/core/labels.h"
#include "lethe/model/score.h"

namespace lethe::unlearn {
namespace {

// Reduced-precision logits are promoted to fp32; fp64 stays fp64 (gradient checks use it).
at::Tensor promote(const at::Tensor& t) { return t.scalar_type() == at::kDouble ? t : t.to(at::kFloat); }

// The shifted view of the training label path (model/score.h): every term starts from it.
using Shifted = model::ShiftedLabels;
Shifted shift(const at::Tensor& logits, const at::Tensor& labels) { return model::shift_labels(logits, labels); }

at::Tensor masked_mean(const at::Tensor& per_token, const at::Tensor& mask) {
  const at::Tensor n = mask.sum();
  LETHE_CHECK(n.item<std::int64_t>() > 0, "loss: the batch has no label tokens");
  return per_token.masked_select(mask).sum() / n;
}

}  // namespace

at::Tensor sequence_nll(const at::Tensor& logits, const at::Tensor& labels) {
  Shifted s = shift(logits, labels);
  return sequence_nll(model::LabelLogprobs{model::label_logprobs(s), s.mask});
}

at::Tensor sequence_nll(const model::LabelLogprobs& lp) {
  return (-lp.logprobs).masked_fill(lp.mask.logical_not(), 0.0).sum(-1);
}

at::Tensor label_counts(const at::Tensor& labels) { return labels.ne(kIgnoreIndex).sum(-1).to(at::kDouble); }

at::Tensor dpo_loss(const at::Tensor& win_nll, const at::Tensor& win_ref_nll,
                    const at::Tensor& lose_nll, const at::Tensor& lose_ref_nll, double beta) {
  LETHE_CHECK(win_nll.defined() || lose_nll.defined(), "dpo_loss needs a winner or a loser");
  at::Tensor diff;
  if (win_nll.defined()) diff = -(win_nll - win_ref_nll);
  if (lose_nll.defined()) {
    at::Tensor lose_ratio = -(lose_nll - lose_ref_nll);
    diff = diff.defined() ? diff - lose_ratio : -lose_ratio;
  }
  return -2.0 / beta * at::log_sigmoid(beta * diff).mean();
}

at::Tensor npo_loss(const at::Tensor& nll, const at::Tensor& ref_nll, double beta) {
  return dpo_loss({}, {}, nll, ref_nll, beta);
}

at::Tensor simnpo_loss(const at::Tensor& nll, const at::Tensor& n_tokens, double beta, double delta) {
  return -at::log_sigmoid(beta * (nll / n_tokens.to(nll.scalar_type()) - delta)).mean() * 2.0 / beta;
}

at::Tensor kl_to_reference(const at::Tensor& logits, const at::Tensor& ref_logits, const at::Tensor& labels) {
  Shifted s = shift(logits, labels);
  const std::int64_t t = ref_logits.size(1);
  at::Tensor ref_logp = at::log_softmax(promote(ref_logits.narrow(1, 0, t - 1)).to(s.logits.scalar_type()), -1);
  at::Tensor logp = at::log_softmax(s.logits, -1);
  at::Tensor kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1);  // (B, T-1)
  return masked_mean(kl, s.mask);
}

at::Tensor undial_loss(const at::Tensor& logits, const at::Tensor& ref_logits, const at::Tensor& labels,
                       double beta) {
  Shifted s = shift(logits, labels);
  const std::int64_t t = ref_logits.size(1);
  at::Tensor teacher = promote(ref_logits.narrow(1, 0, t - 1)).to(s.logits.scalar_type()).clone();
  teacher.scatter_add_(-1, s.targets.unsqueeze(-1),
                       at::full_like(s.targets.unsqueeze(-1), -beta, teacher.options()));
  at::Tensor target = at::softmax(teacher, -1).detach();
  at::Tensor ce = -(target * at::log_softmax(s.logits, -1)).sum(-1);  // (B, T-1)
  return masked_mean(ce, s.mask);
}

at::Tensor wga_loss(const at::Tensor& logits, const at::Tensor& labels, double beta) {
  Shifted s = shift(logits, labels);
  const at::Tensor lp = model::label_logprobs(s);
  at::Tensor w = lp.detach().exp().pow(beta);
  return -masked_mean(w * (-lp), s.mask);
}

at::Tensor satimp_loss(const at::Tensor& logits, const at::Tensor& labels, double beta1, double beta2) {
  Shifted s = shift(logits, labels);
  const at::Tensor lp = model::label_logprobs(s);
  at::Tensor p = lp.detach().exp();
  at::Tensor w = p.pow(beta1) * (1.0 - p).pow(beta2);
  return -masked_mean(w * (-lp), s.mask);
}

at::Tensor ceu_loss(const at::Tensor& logits, const at::Tensor& labels, std::int64_t ignore_first) {
  // Leave out each sequence's first `ignore_first` answer tokens (counted on unshifted labels).
  at::Tensor valid = labels.ne(kIgnoreIndex);
  at::Tensor drop = valid.to(at::kLong).cumsum(-1).le(ignore_first).logical_and(valid);
  Shifted s = shift(logits, labels.masked_fill(drop, kIgnoreIndex));
  at::Tensor target_logits = s.logits.detach().clone();
  target_logits.scatter_(-1, s.targets.unsqueeze(-1), -std::numeric_limits<float>::infinity());
  at::Tensor target = at::softmax(target_logits, -1);
  at::Tensor logp = at::log_softmax(s.logits, -1);
  at::Tensor ce = -(target * logp).nan_to_num(0.0).sum(-1);
  return masked_mean(ce, s.mask);
}

at::Tensor ihl_loss(const at::Tensor& logits, const at::Tensor& labels, double margin) {
  Shifted s = shift(logits, labels);
  at::Tensor p = at::softmax(s.logits, -1);
  at::Tensor p_label = p.gather(-1, s.targets.unsqueeze(-1)).squeeze(-1);
  at::Tensor others = p.scatter(-1, s.targets.unsqueeze(-1), -1.0);  // the label can never win
  at::Tensor p_other = std::get<0>(others.max(-1));
  at::Tensor h = at::clamp_min(margin + p_label - p_other, 0.0);
  return masked_mean(h, s.mask);
}

at::Tensor activation_mse(const at::Tensor& act, const at::Tensor& target, const at::Tensor& mask) {
  at::Tensor sq = (promote(act) - promote(target).to(promote(act).scalar_type())).pow(2).mean(-1);  // (B, T)
  at::Tensor m = mask.to(sq.scalar_type());
  at::Tensor per_seq = (sq * m).sum(-1) / m.sum(-1);
  return per_seq.mean();
}

}  // namespace lethe::unlearn

// The loss formulas of the unlearning methods, as pure functions of logits, labels and
// reference outputs — OpenUnlearning's formulas, with every term masked to the label tokens.
//
// Shapes: logits (B, T, V), labels (B, T) with -100 outside the answer span. As in Hugging
// Face, position t predicts token t+1: losses pair logits[:, :-1] with labels[:, 1:], and
// "label tokens" below means the positions where labels[:, 1:] != -100.
#pragma once

#include <ATen/core/Tensor.h>

#include "lethe/model/score.h"

#include <cstdint>

namespace lethe::unlearn {

// Σ over each sequence's label tokens of -log p (OpenUnlearning's compute_batch_nll). -> (B)
at::Tensor sequence_nll(const at::Tensor& logits, const at::Tensor& labels);
// The same from the label path's log-probs (train::label_logprobs_of).
at::Tensor sequence_nll(const model::LabelLogprobs& lp);
// Label tokens per sequence, counted on the unshifted labels as SimNPO does. -> (B)
at::Tensor label_counts(const at::Tensor& labels);
// The mean -log p over all label tokens (Hugging Face's loss) is model::causal_lm_loss.

// DPO: -2/β · mean logsigmoid(β · (r_win - r_lose)), with r = -(nll - ref_nll) per sequence.
// Either side may be undefined (NPO has no winner).
at::Tensor dpo_loss(const at::Tensor& win_nll, const at::Tensor& win_ref_nll,
                    const at::Tensor& lose_nll, const at::Tensor& lose_ref_nll, double beta);
// NPO: dpo_loss with the forget answers as the loser only.
at::Tensor npo_loss(const at::Tensor& nll, const at::Tensor& ref_nll, double beta);
// SimNPO: -2/β · mean logsigmoid(β · (nll / n_tokens - δ)).
at::Tensor simnpo_loss(const at::Tensor& nll, const at::Tensor& n_tokens, double beta, double delta);

// KL(ref ‖ θ) per label token, averaged over the label tokens (OpenUnlearning averages over
// every position of the batch, prompt and padding included).
at::Tensor kl_to_reference(const at::Tensor& logits, const at::Tensor& ref_logits,
                           const at::Tensor& labels);

// UNDIAL: cross-entropy against softmax(ref_logits - β·onehot(label)), averaged over the label
// tokens (OpenUnlearning averages over every position, and at ignored positions indexes the
// vocabulary with -100).
at::Tensor undial_loss(const at::Tensor& logits, const at::Tensor& ref_logits,
                       const at::Tensor& labels, double beta);

// WGA: -mean over label tokens of w · CE, with CE = -log p of the label and w = p^β (detached):
// gradient ascent weighted toward tokens the model still predicts well.
at::Tensor wga_loss(const at::Tensor& logits, const at::Tensor& labels, double beta);
// SatImp: -mean over label tokens of w · CE with w = p^β1 · (1-p)^β2 (detached).
at::Tensor satimp_loss(const at::Tensor& logits, const at::Tensor& labels, double beta1, double beta2);
// CE-U: cross-entropy against softmax of the (detached) logits with the label's logit set to
// -inf, averaged over label tokens; the first `ignore_first` answer tokens of each sequence are
// left out (the CE-U paper's footnote, as OpenUnlearning).
at::Tensor ceu_loss(const at::Tensor& logits, const at::Tensor& labels, std::int64_t ignore_first);
// IHL (LoKU): mean over label tokens of max(0, margin + p(y) - max_{v≠y} p(v)).
at::Tensor ihl_loss(const at::Tensor& logits, const at::Tensor& labels, double margin = 1.0);

// RMU's activation loss: per sequence, Σ over masked positions of mean_d (a - target)², divided
// by the masked count; mean over sequences. activations (B, T, C), target broadcastable,
// mask (B, T) bool.
at::Tensor activation_mse(const at::Tensor& activations, const at::Tensor& target, const at::Tensor& mask);

}  // namespace lethe::unlearn

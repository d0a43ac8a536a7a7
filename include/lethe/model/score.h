// The scoring service: per-token log-probabilities of target tokens, batched (architecture.md §3).
//
// Every log-prob metric (probability, truth ratio, MIA scores, ...) goes through here. The
// vocabulary projection runs in row chunks and takes logsumexp per chunk, so neither the full
// (B, T, V) logits nor a log_softmax copy of them is ever held at once.
#pragma once

#include "lethe/core/labels.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "lethe/model/causal_lm.h"

namespace lethe::model {


struct TokenLogprobs {
  at::Tensor logprobs;  // (B, T-1) float32: log p(target[t+1] | tokens[..t]); 0 where ignored
  at::Tensor mask;      // (B, T-1) bool: true where a target was scored
  // With ScoreExtras::distribution: the mean and standard deviation of log p(v) under p over
  // the vocabulary at each position (Min-K%++'s calibration). (B, T-1) float32.
  at::Tensor mean_logprob, std_logprob;
  // With ScoreExtras::argmax: whether the most likely token is the target (teacher-forced
  // greedy match, for exact memorization and extraction strength). (B, T-1) bool.
  at::Tensor argmax_hit;
};

struct ScoreExtras {
  bool distribution = false;
  bool argmax = false;
};

// Positions for a padded batch: cumsum(mask) - 1, with padding set to 1 (HF's generate rule).
// Right padding yields 0..n-1 for the real tokens, left padding shifts them to start at 0.
at::Tensor positions_from_mask(const at::Tensor& attention_mask);

// Scores a batch without gradients. `attention_mask` (B, T): 1 real, 0 pad (undefined: all
// real); positions follow positions_from_mask. `labels` (B, T): the targets, kIgnoreIndex where
// not scored (undefined: input_ids). Targets at padded positions, or after one, are ignored.
// `hooks`, if given, observes (or edits) the forward pass.
TokenLogprobs score_tokens(CausalLM& model, const at::Tensor& input_ids,
                           const at::Tensor& attention_mask = {},
                           const at::Tensor& labels = {}, HookObserver* hooks = nullptr,
                           ScoreExtras extras = {});

// Scores sequences of different lengths in right-padded batches of up to `batch_size`
// (longest first, so padding is small). Entry i holds len(seqs[i]) - 1 log-probs.
std::vector<std::vector<float>> score_sequences(CausalLM& model,
                                                const std::vector<std::vector<std::int64_t>>& seqs,
                                                std::int64_t batch_size = 8);

// ---- the differentiable label path (training losses) ---------------------------------------
// The scorer above is the inference path: no gradients, the vocabulary projection in chunks.
// Training has one path of its own, shared by causal_lm_loss, every unlearning loss term and
// token_logprobs: the view below, then one log-softmax gathered at the targets.

// logits[:, :-1] in fp32 (reduced precision promoted; fp64 stays fp64 for gradient checks), the
// targets labels[:, 1:] with ignored positions set to 0, and the mask of scored positions, as
// HF's causal-LM loss shifts them. logits (B, T, V), labels (B, T) with kIgnoreIndex.
struct ShiftedLabels {
  at::Tensor logits;   // (B, T-1, V)
  at::Tensor targets;  // (B, T-1) int64
  at::Tensor mask;     // (B, T-1) bool
};
ShiftedLabels shift_labels(const at::Tensor& logits, const at::Tensor& labels);
// log p(target) at every shifted position (B, T-1): log_softmax over the vocabulary, gathered.
// Ignored positions hold the log-prob of token 0; mask them.
at::Tensor label_logprobs(const ShiftedLabels& shifted);

// token_logprobs on the training path: logprobs 0 where ignored.
TokenLogprobs token_logprobs(const at::Tensor& logits, const at::Tensor& labels);
// Mean -log p over the non-ignored shifted targets (HF's causal-LM loss): the one loss that
// fine-tuning, the retain terms, FILA and GradNorm train or differentiate, and the golden tests
// check against transformers. A batch without label tokens is an error.
at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels);
// The same from label log-probs and their mask (B, T-1).
at::Tensor mean_nll(const at::Tensor& label_logprobs, const at::Tensor& mask);

// label_logprobs(shift_labels(model.head(hidden), labels)) and the mask, from the final hidden
// states (B, T, C), computed a chunk of positions at a time: in the forward each chunk's logits
// live only while its log-softmax is gathered, and the backward runs the head again chunk by
// chunk. The (tokens, vocab) logits never exist whole — at Llama-3's vocabulary a 4×256 batch's
// logits are 525 MB, and the plain path keeps three such (logits, log-softmax, their gradient).
// Values and the hidden states' gradient are those of the plain path up to float rounding (the
// same row operations; sgemm may sum a chunk's rows in another order than the whole batch's —
// OpenBLAS's Haswell kernels do, by 1.5e-6 of the largest gradient); the head's own parameters receive no gradient, so it is for a frozen
// head (LoRA, frozen embeddings): a head that requires grad is refused, and so are batches of
// 16 positions or fewer (whose plain head may take the few-row kernel; their logits are small).
struct LabelLogprobs {
  at::Tensor logprobs;  // (B, T-1), differentiable; ignored positions hold token 0's
  at::Tensor mask;      // (B, T-1) bool
};
LabelLogprobs chunked_label_logprobs(const CausalLM& model, const at::Tensor& hidden, const at::Tensor& labels);
// Whether chunked_label_logprobs takes a batch of (batch, tokens): a frozen head (weight and
// bias) and more than 16 positions.
bool chunked_label_logprobs_applies(const CausalLM& model, std::int64_t batch, std::int64_t tokens);

}  // namespace lethe::model

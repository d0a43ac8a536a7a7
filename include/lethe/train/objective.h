// What the trainer minimises: an Objective turns a micro-batch of anchor examples into named
// loss terms. Fine-tuning (train/objectives.h) and unlearning (unlearn/objective.h) implement it;
// the trainer knows nothing else about them.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lethe/data/batch.h"
#include "lethe/model/causal_lm.h"
#include "lethe/model/hooks.h"
#include "lethe/model/score.h"

namespace lethe::train {

struct LossTerms {
  at::Tensor total;                                       // what is minimised
  std::vector<std::pair<std::string, at::Tensor>> terms;  // e.g. {"forget", ..}, {"retain", ..}
  // The term the collapse guard watches (a method's retain term: it must not grow while the
  // forget term is pushed); undefined when the objective has none. Also one of `terms`.
  at::Tensor guarded;
};

// The model's logits for a batch (masks and positions applied). (B, T, V)
at::Tensor logits_of(model::CausalLM& model, const data::Batch& batch, model::HookObserver* hooks = nullptr);
// The batch's label log-probs on the training path (model/score.h): through the head in chunks
// (model::chunked_label_logprobs) when the head is frozen — under LoRA, and for a reference —
// so a large vocabulary's logits never exist whole; else from full logits. The same values and
// gradients either way. The NLL terms (fine-tuning, NPO, DPO, GradDiff's retain) use it.
model::LabelLogprobs label_logprobs_of(model::CausalLM& model, const data::Batch& batch);
// Mean NLL over the batch's label tokens (= model::causal_lm_loss of its logits).
at::Tensor nll_of(model::CausalLM& model, const data::Batch& batch);

// What a micro-batch of anchor examples contributes to the loss.
class Objective {
 public:
  virtual ~Objective() = default;
  virtual std::size_t size() const = 0;  // anchor examples of every epoch: 0 .. size() - 1
  // Anchor examples (indices >= size()) that only `epoch` visits besides those: controlled
  // insertions (data.insert_text). The trainer shuffles them in with the rest of the epoch.
  virtual std::vector<std::size_t> epoch_extras(std::uint64_t /*epoch*/) const { return {}; }
  // `indices`: anchor examples of this micro-batch; `positions`: their positions in the epoch.
  virtual LossTerms loss(const std::vector<std::size_t>& indices, const std::vector<std::size_t>& positions,
                         std::uint64_t epoch) = 0;
  // Tokens the micro-batch processes (for the logged rate).
  virtual std::int64_t tokens(const std::vector<std::size_t>& indices) const = 0;
};

}  // namespace lethe::train

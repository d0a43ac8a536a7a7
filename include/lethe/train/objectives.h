// Fine-tuning's objective: the NLL of the label tokens (the unlearning objective is
// unlearn/objective.h).
#pragma once

#include <memory>
#include <vector>

#include "lethe/data/batch.h"
#include "lethe/data/dataset.h"
#include "lethe/model/causal_lm.h"
#include "lethe/train/trainer.h"

namespace lethe::train {

class FinetuneObjective : public Objective {
 public:
  // A forward pass's fixed cost, in padded tokens, when a batch is split by length.
  static constexpr std::int64_t kGroupOverheadTokens = 256;
  FinetuneObjective(model::CausalLM& model, const std::vector<data::Example>& examples, std::int64_t pad_id);
  // Controlled insertions: examples[every_epoch ..] are visited only in the epochs that
  // `by_epoch` lists them for (by_epoch[e]: indices into `examples`, all >= every_epoch).
  FinetuneObjective(model::CausalLM& model, const std::vector<data::Example>& examples, std::int64_t pad_id,
                    std::size_t every_epoch, std::vector<std::vector<std::size_t>> by_epoch);
  std::size_t size() const override { return every_epoch_; }
  std::vector<std::size_t> epoch_extras(std::uint64_t epoch) const override {
    return epoch < by_epoch_.size() ? by_epoch_[epoch] : std::vector<std::size_t>{};
  }
  LossTerms loss(const std::vector<std::size_t>& indices, const std::vector<std::size_t>& positions,
                          std::uint64_t epoch) override;
  std::int64_t tokens(const std::vector<std::size_t>& indices) const override;

 private:
  model::CausalLM& model_;
  const std::vector<data::Example>& examples_;
  std::int64_t pad_id_;
  std::size_t every_epoch_;
  std::vector<std::vector<std::size_t>> by_epoch_;
};

}  // namespace lethe::train

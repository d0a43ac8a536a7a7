// The two objectives runs train with: fine-tuning (NLL on the label tokens) and unlearning (an
// unlearn::Method over forget batches, with paired retain and alternate batches).
#pragma once

#include <memory>
#include <vector>

#include "lethe/data/batch.h"
#include "lethe/data/dataset.h"
#include "lethe/model/causal_lm.h"
#include "lethe/train/trainer.h"
#include "lethe/unlearn/method.h"

namespace lethe::train {

class FinetuneObjective : public Objective {
 public:
  // A forward pass's fixed cost, in padded tokens, when a batch is split by length.
  static constexpr std::int64_t kGroupOverheadTokens = 256;
  FinetuneObjective(model::CausalLM& model, const std::vector<data::Example>& examples, std::int64_t pad_id);
  std::size_t size() const override { return examples_.size(); }
  unlearn::LossTerms loss(const std::vector<std::size_t>& indices, const std::vector<std::size_t>& positions,
                          std::uint64_t epoch) override;
  std::int64_t tokens(const std::vector<std::size_t>& indices) const override;

 private:
  model::CausalLM& model_;
  const std::vector<data::Example>& examples_;
  std::int64_t pad_id_;
};

// Forget examples anchor the epoch. The retain example paired with the forget example at epoch
// position p is data::paired_retain_index(p, ...); alternate[i] answers forget[i]'s question.
class UnlearnObjective : public Objective {
 public:
  UnlearnObjective(model::CausalLM& model, model::CausalLM* reference, unlearn::Method& method,
                   const std::vector<data::Example>& forget, const std::vector<data::Example>& retain,
                   const std::vector<data::Example>& alternate, std::int64_t pad_id, std::uint64_t seed);
  std::size_t size() const override { return forget_.size(); }
  unlearn::LossTerms loss(const std::vector<std::size_t>& indices, const std::vector<std::size_t>& positions,
                          std::uint64_t epoch) override;
  std::int64_t tokens(const std::vector<std::size_t>& indices) const override;

 private:
  model::CausalLM& model_;
  model::CausalLM* reference_;
  unlearn::Method& method_;
  const std::vector<data::Example>& forget_;
  const std::vector<data::Example>& retain_;
  const std::vector<data::Example>& alternate_;
  std::int64_t pad_id_;
  std::uint64_t seed_;
  // Retain order cache for (epoch, round).
  std::uint64_t cached_key_ = ~0ULL;
  std::vector<std::size_t> cached_order_;
};

}  // namespace lethe::train

// The unlearning objective the trainer minimises: an unlearn::Method over forget batches, with
// paired retain and alternate batches.
#pragma once

#include <cstdint>
#include <vector>

#include "lethe/data/batch.h"
#include "lethe/data/dataset.h"
#include "lethe/model/causal_lm.h"
#include "lethe/train/objective.h"
#include "lethe/unlearn/method.h"

namespace lethe::unlearn {

// Forget examples anchor the epoch. The retain example paired with the forget example at epoch
// position p is data::paired_retain_index(p, ...); alternate[i] answers forget[i]'s question.
class UnlearnObjective : public train::Objective {
 public:
  UnlearnObjective(model::CausalLM& model, model::CausalLM* reference, Method& method,
                   const std::vector<data::Example>& forget, const std::vector<data::Example>& retain,
                   const std::vector<data::Example>& alternate, std::int64_t pad_id, std::uint64_t seed);
  std::size_t size() const override { return forget_.size(); }
  LossTerms loss(const std::vector<std::size_t>& indices, const std::vector<std::size_t>& positions,
                          std::uint64_t epoch) override;
  std::int64_t tokens(const std::vector<std::size_t>& indices) const override;

 private:
  model::CausalLM& model_;
  model::CausalLM* reference_;
  Method& method_;
  const std::vector<data::Example>& forget_;
  const std::vector<data::Example>& retain_;
  const std::vector<data::Example>& alternate_;
  std::int64_t pad_id_;
  std::uint64_t seed_;
  // Retain order cache for (epoch, round).
  std::uint64_t cached_key_ = ~0ULL;
  std::vector<std::size_t> cached_order_;
};

}  // namespace lethe::unlearn

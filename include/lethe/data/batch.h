// Collation: examples of different lengths -> padded (B, T) tensors.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "lethe/data/dataset.h"

namespace lethe::data {

enum class PaddingSide { kRight, kLeft };

struct Batch {
  at::Tensor input_ids;       // (B, T) int64, pads = pad_id
  at::Tensor attention_mask;  // (B, T) int64, 1 real / 0 pad
  at::Tensor labels;          // (B, T) int64, kIgnoreIndex outside the loss span and at pads
  at::Tensor position_ids;    // (B, T) positions_from_mask(attention_mask)
  std::int64_t size() const { return input_ids.defined() ? input_ids.size(0) : 0; }
  // Number of label tokens that carry loss after the causal shift (labels[:, 1:] != -100).
  std::int64_t loss_tokens() const;
  Batch to(const c10::Device& device) const;
};

Batch collate(const std::vector<const Example*>& examples, std::int64_t pad_id,
              PaddingSide side = PaddingSide::kRight);

// Splits a batch of sequences with these lengths into groups of similar lengths that together
// compute the fewest padded tokens, counting `overhead_tokens` for each group beyond the first
// (the fixed cost of one more forward pass). Returns positions into `lengths`, each group in
// ascending length. A batch of short QA pairs and 128-token text windows computes 3x fewer
// tokens as two groups than padded as one; sequences of similar lengths stay one group.
std::vector<std::vector<std::size_t>> length_groups(const std::vector<std::int64_t>& lengths,
                                                    std::int64_t overhead_tokens);

}  // namespace lethe::data

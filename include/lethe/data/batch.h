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
  at::Tensor labels;          // (B, T) int64, kIgnore outside the loss span and at pads
  at::Tensor position_ids;    // (B, T) positions_from_mask(attention_mask)
  std::int64_t size() const { return input_ids.defined() ? input_ids.size(0) : 0; }
  // Number of label tokens that carry loss after the causal shift (labels[:, 1:] != -100).
  std::int64_t loss_tokens() const;
  Batch to(const c10::Device& device) const;
};

Batch collate(const std::vector<const Example*>& examples, std::int64_t pad_id,
              PaddingSide side = PaddingSide::kRight);

}  // namespace lethe::data

// KVCache: keys and values of past positions, one pair per layer, in buffers allocated once
// for `capacity` positions (and grown by doubling if exceeded) so that decoding a token writes
// in place instead of concatenating — and never touches fresh memory (performance.md fact 4).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace lethe::model {

class KVCache {
 public:
  // `capacity`: positions to reserve (prompt + new tokens); storage is allocated on first use
  // with the dtype and device of the keys.
  KVCache(std::int64_t num_layers, std::int64_t capacity);

  std::int64_t length() const { return length_; }  // positions already cached
  std::int64_t capacity() const { return capacity_; }

  // Stores k, v (B, KVH, T, D) of `layer` after the cached positions and returns views
  // (B, KVH, length + T, D) over everything cached for that layer, new positions included.
  std::pair<at::Tensor, at::Tensor> append(std::int64_t layer, const at::Tensor& k,
                                           const at::Tensor& v);
  // Moves the cached length forward by t positions; the model calls this once per forward.
  void advance(std::int64_t t);
  // Forgets every cached position (keeps the buffers).
  void reset() { length_ = 0; }
  // Forgets the positions from `length` on: a shared prefix stays cached while the rows after
  // it are replaced (exposure scoring reuses a canary's prefix for every candidate batch).
  void truncate(std::int64_t length);

 private:
  std::int64_t capacity_;
  std::int64_t length_ = 0;
  std::vector<at::Tensor> keys_, values_;  // (B, KVH, capacity, D) each
};

}  // namespace lethe::model

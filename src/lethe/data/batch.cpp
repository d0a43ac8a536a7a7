#include "lethe/data/batch.h"

#include <algorithm>
#include <numeric>

#include "lethe/core/error.h"
#include "lethe/model/score.h"

namespace lethe::data {

std::int64_t Batch::loss_tokens() const {
  return labels.narrow(1, 1, labels.size(1) - 1).ne(kIgnoreIndex).sum().item<std::int64_t>();
}

Batch Batch::to(const c10::Device& device) const {
  return {input_ids.to(device), attention_mask.to(device), labels.to(device), position_ids.to(device)};
}

Batch collate(const std::vector<const Example*>& examples, std::int64_t pad_id, PaddingSide side) {
  LETHE_CHECK(!examples.empty(), "collate: no examples");
  std::size_t t = 0;
  for (const Example* e : examples) {
    LETHE_CHECK(!e->input_ids.empty() && e->input_ids.size() == e->labels.size(),
                "collate: an example has no tokens or mismatched labels");
    t = std::max(t, e->input_ids.size());
  }
  const auto b = static_cast<std::int64_t>(examples.size());
  const auto tl = static_cast<std::int64_t>(t);
  Batch out;
  out.input_ids = at::full({b, tl}, pad_id, at::kLong);
  out.attention_mask = at::zeros({b, tl}, at::kLong);
  out.labels = at::full({b, tl}, kIgnoreIndex, at::kLong);
  auto* ids = out.input_ids.data_ptr<std::int64_t>();
  auto* mask = out.attention_mask.data_ptr<std::int64_t>();
  auto* lab = out.labels.data_ptr<std::int64_t>();
  for (std::int64_t r = 0; r < b; ++r) {
    const Example& e = *examples[static_cast<std::size_t>(r)];
    const std::int64_t n = static_cast<std::int64_t>(e.input_ids.size());
    const std::int64_t off = side == PaddingSide::kLeft ? tl - n : 0;
    std::copy(e.input_ids.begin(), e.input_ids.end(), ids + r * tl + off);
    std::copy(e.labels.begin(), e.labels.end(), lab + r * tl + off);
    std::fill_n(mask + r * tl + off, n, 1);
  }
  out.position_ids = model::positions_from_mask(out.attention_mask);
  return out;
}

std::vector<std::vector<std::size_t>> length_groups(const std::vector<std::int64_t>& lengths,
                                                    std::int64_t overhead_tokens) {
  const std::size_t n = lengths.size();
  std::vector<std::size_t> sorted(n);
  std::iota(sorted.begin(), sorted.end(), 0);
  std::stable_sort(sorted.begin(), sorted.end(), [&](std::size_t a, std::size_t b) { return lengths[a] < lengths[b]; });
  // best[j]: least cost of the j shortest sequences; a group [i, j) pads to its longest, j - 1.
  std::vector<std::int64_t> best(n + 1, 0);
  std::vector<std::size_t> cut(n + 1, 0);
  for (std::size_t j = 1; j <= n; ++j) {
    best[j] = -1;
    for (std::size_t i = 0; i < j; ++i) {
      const std::int64_t c = best[i] + lengths[sorted[j - 1]] * static_cast<std::int64_t>(j - i) +
                             (i > 0 ? overhead_tokens : 0);
      if (best[j] < 0 || c < best[j]) {
        best[j] = c;
        cut[j] = i;
      }
    }
  }
  std::vector<std::vector<std::size_t>> groups;
  for (std::size_t j = n; j > 0; j = cut[j]) groups.emplace_back(sorted.begin() + static_cast<std::ptrdiff_t>(cut[j]),
                                                                sorted.begin() + static_cast<std::ptrdiff_t>(j));
  std::reverse(groups.begin(), groups.end());
  return groups;
}

}  // namespace lethe::data

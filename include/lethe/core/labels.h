// The one label value that carries no loss: positions outside the answer span and padding.
// Hugging Face's ignore_index (-100), so labels lethe writes and reads mean what theirs do.
#pragma once

#include <cstdint>

namespace lethe {

inline constexpr std::int64_t kIgnoreIndex = -100;

}  // namespace lethe

// Tensor comparison for golden tests: one tolerance table, and failures that print the worst
// element (index, actual, expected), the number of violations and the tolerance.
#pragma once

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <string>

namespace lethe::test {

struct Tolerance {
  double atol;
  double rtol;
};

// The one tolerance table (architecture.md §5; ../shared/golden/hf/README.md). fp32 noise between
// two correct implementations is <= 7e-6 on logits; a wrong GELU variant is ~1e-3.
namespace tol {
inline constexpr Tolerance kLogits{5e-5, 0.0};
inline constexpr Tolerance kLogprobs{5e-5, 0.0};
inline constexpr Tolerance kHidden{5e-5, 0.0};
inline constexpr Tolerance kLoss{1e-5, 0.0};
inline constexpr Tolerance kGrad{1e-6, 0.0};
// llama2.c's C reference vs an optimised build differ by up to 3e-5 (shared/README.md).
inline constexpr Tolerance kLlama2c{1e-3, 0.0};
// Same implementation, different batching / caching / thread count, on the tests' tiny models
// with weights scaled 20x (logits up to ~10): over 3,000 random inputs the KV cache's logits
// differed from the full recompute's by at most 6.1e-5, which 5e-5 + 1e-5 relative failed on
// about one input in 300. A wrong cache or mask is off by 1e-1 or more.
inline constexpr Tolerance kSelf{1.5e-4, 1e-5};
}  // namespace tol

// |actual - expected| <= atol + rtol * |expected| everywhere `mask` (broadcastable bool) is
// true (everywhere when undefined). Shapes must match exactly.
::testing::AssertionResult all_close(const std::string& what, const at::Tensor& actual,
                                     const at::Tensor& expected, Tolerance tol,
                                     const at::Tensor& mask = {});

// Token ids in [lo, hi) from a generator of their own, so a test sees the same inputs in every
// process and run, whatever else drew from the global generator first.
at::Tensor random_ids(std::int64_t lo, std::int64_t hi, at::IntArrayRef shape, std::uint64_t seed = 1);

}  // namespace lethe::test

#define EXPECT_CLOSE(what, actual, expected, tol, ...) \
  EXPECT_TRUE(::lethe::test::all_close(what, actual, expected, tol, ##__VA_ARGS__))

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
// Same implementation, different batching / caching / thread count.
inline constexpr Tolerance kSelf{5e-5, 1e-5};
}  // namespace tol

// |actual - expected| <= atol + rtol * |expected| everywhere `mask` (broadcastable bool) is
// true (everywhere when undefined). Shapes must match exactly.
::testing::AssertionResult all_close(const std::string& what, const at::Tensor& actual,
                                     const at::Tensor& expected, Tolerance tol,
                                     const at::Tensor& mask = {});

}  // namespace lethe::test

#define EXPECT_CLOSE(what, actual, expected, tol, ...) \
  EXPECT_TRUE(::lethe::test::all_close(what, actual, expected, tol, ##__VA_ARGS__))

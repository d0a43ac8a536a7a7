#include "support/compare.h"

#include <ATen/ATen.h>

#include <sstream>

namespace lethe::test {

::testing::AssertionResult all_close(const std::string& what, const at::Tensor& actual,
                                     const at::Tensor& expected, Tolerance tol,
                                     const at::Tensor& mask) {
  if (!actual.defined() || !expected.defined()) {
    return ::testing::AssertionFailure() << what << ": undefined tensor";
  }
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure() << what << ": shape " << actual.sizes()
                                         << " != expected " << expected.sizes();
  }
  at::Tensor a = actual.detach().to(at::kCPU, at::kDouble);
  at::Tensor e = expected.detach().to(at::kCPU, at::kDouble);
  at::Tensor nan = a.isnan().logical_xor(e.isnan());
  at::Tensor excess = (a - e).abs() - (tol.atol + tol.rtol * e.abs());
  excess = excess.nan_to_num(0.0).masked_fill(nan, 1e30);
  if (mask.defined()) {
    at::Tensor m = mask.to(at::kCPU).to(at::kBool).expand_as(excess);
    excess = excess.masked_fill(m.logical_not(), -1.0);
  }
  const std::int64_t bad = excess.gt(0).sum().item<std::int64_t>();
  if (bad == 0) return ::testing::AssertionSuccess();
  const std::int64_t flat = excess.reshape({-1}).argmax().item<std::int64_t>();
  std::vector<std::int64_t> index;
  std::int64_t rem = flat;
  for (std::int64_t d = excess.dim() - 1; d >= 0; --d) {
    index.insert(index.begin(), rem % excess.size(d));
    rem /= excess.size(d);
  }
  std::ostringstream os;
  os << what << ": " << bad << " of " << excess.numel() << " elements outside atol "
     << tol.atol << " + rtol " << tol.rtol << "; worst at [";
  for (std::size_t i = 0; i < index.size(); ++i) os << (i ? "," : "") << index[i];
  const double av = a.reshape({-1})[flat].item<double>();
  const double ev = e.reshape({-1})[flat].item<double>();
  os << "]: actual " << av << ", expected " << ev << " (|diff| " << std::abs(av - ev) << ")";
  return ::testing::AssertionFailure() << os.str();
}

at::Tensor random_ids(std::int64_t lo, std::int64_t hi, at::IntArrayRef shape, std::uint64_t seed) {
  return at::randint(lo, hi, shape, at::detail::createCPUGenerator(seed), at::kLong);
}

}  // namespace lethe::test

#include "lethe/core/range.h"

#include <cmath>
#include <cstdio>

#include "lethe/core/error.h"

namespace lethe {

namespace {
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}
}  // namespace

bool Range::contains(double v) const {
  if (std::isnan(v)) return false;
  if (integer && std::floor(v) != v) return false;
  if (lo_open ? !(v > lo) : !(v >= lo)) return false;
  if (hi_open ? !(v < hi) : !(v <= hi)) return false;
  return true;
}

std::string Range::str() const {
  std::string s = std::string(lo_open || std::isinf(lo) ? "(" : "[") + number(lo) + ", " + number(hi) +
                  (hi_open || std::isinf(hi) ? ")" : "]");
  return integer ? "an integer in " + s : s;
}

void check_range(const std::string& what, double value, const Range& range) {
  LETHE_CHECK(range.contains(value), what, " = ", number(value), " is outside ", range.str());
}

}  // namespace lethe

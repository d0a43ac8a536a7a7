// The domain of a numeric setting, declared once beside the setting and checked wherever a
// value arrives (config files, overrides, method parameters, CLI options).
#pragma once

#include <limits>
#include <string>

namespace lethe {

struct Range {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;
  bool integer = false;

  static Range any() { return {}; }
  static Range positive() { return {0, std::numeric_limits<double>::infinity(), true, false}; }
  static Range non_negative() { return {0, std::numeric_limits<double>::infinity(), false, false}; }
  static Range unit() { return {0, 1, false, false}; }             // [0, 1]
  static Range unit_right_open() { return {0, 1, false, true}; }   // [0, 1)
  static Range unit_left_open() { return {0, 1, true, false}; }    // (0, 1]
  static Range count() { return non_negative().whole(); }         // 0, 1, 2, ...
  static Range at_least(double v) { return {v, std::numeric_limits<double>::infinity(), false, false}; }
  Range whole() const {
    Range r = *this;
    r.integer = true;
    return r;
  }

  // False for NaN, and for a fraction where an integer is required.
  bool contains(double v) const;
  // "(0, inf)", "[0, 1]", "an integer in [1, inf)".
  std::string str() const;
};

// Throws lethe::Error "<what> = <value> is outside <range>" unless range.contains(value).
void check_range(const std::string& what, double value, const Range& range);

}  // namespace lethe

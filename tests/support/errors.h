// Assertions on lethe::Error messages, shared by the unit tests.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <string>

#include "lethe/core/error.h"

namespace lethe::test {

// Runs `fn` and returns the lethe::Error message (fails the test when nothing is thrown).
template <typename Fn>
inline std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected lethe::Error, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected lethe::Error, nothing was thrown";
  return "";
}

}  // namespace lethe::test

#define EXPECT_ERROR_HAS(expr, fragment)                                           \
  do {                                                                             \
    const std::string msg_ = error_of([&] { expr; });                              \
    EXPECT_NE(msg_.find(fragment), std::string::npos)                              \
        << "error message lacks \"" << (fragment) << "\": " << msg_;               \
  } while (0)

// lethe::Error and the LETHE_CHECK macro.
//
// Every failure the library reports to a user is a lethe::Error whose message says what went
// wrong, where (file, tensor, key, offset) and, where it helps, what to do. The CLI catches it
// once and prints one line. Nothing in the library calls exit().
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace lethe {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
[[noreturn]] void throw_error(const std::string& message);
}  // namespace detail

// Builds a message from any streamable pieces: lethe::fail("tensor ", name, " has shape ", s).
template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  detail::throw_error(detail::concat(std::forward<Args>(args)...));
}

}  // namespace lethe

// LETHE_CHECK(cond, pieces...): throws lethe::Error built from the pieces when cond is false.
// The pieces are only evaluated on failure.
#define LETHE_CHECK(cond, ...)                  \
  do {                                          \
    if (!(cond)) [[unlikely]] {                 \
      ::lethe::fail(__VA_ARGS__);               \
    }                                           \
  } while (0)

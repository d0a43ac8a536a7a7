// PCRE2 (JIT) wrapper for tokenizer.json patterns: Unicode properties (\p{L}), Unicode \s \w,
// lookahead. Patterns compile once; matching is thread-safe (match data per call). Subjects may
// contain invalid UTF-8: it never matches, and never errors (PCRE2_MATCH_INVALID_UTF).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lethe::text {

class Regex {
 public:
  // Throws lethe::Error naming `where` and PCRE2's message and offset when the pattern is invalid.
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Byte ranges [begin, end) of every non-overlapping match, left to right. Empty matches are
  // skipped (the search moves on one unit).
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view subject) const;
  // True when the whole subject matches (Python's re.fullmatch).
  bool full_match(std::string_view subject) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Escapes a literal string for use as a PCRE2 pattern.
std::string regex_escape(std::string_view literal);

}  // namespace lethe::text

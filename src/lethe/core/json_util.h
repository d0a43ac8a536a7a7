// Internal JSON helpers: file parsing with errors that name the file, and typed field access
// with errors that name the file and the key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "lethe/core/error.h"
#include "lethe/core/file.h"

namespace lethe {

using Json = nlohmann::json;

// Parses a JSON file; invalid JSON or invalid UTF-8 is a lethe::Error naming the file.
inline Json parse_json_file(const std::filesystem::path& path) {
  std::string text = read_file(path);
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    fail(path.string(), ": not valid JSON (", e.what(), ")");
  }
}

// Runs `read` (code that walks a parsed document) and turns a JSON type error it lets escape
// (a value of the wrong type deep inside a file of the right shape) into one lethe::Error naming
// `where`: the typed readers below are the first line; this is the backstop for the whole file.
template <typename F>
auto json_named(const std::string& where, F&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const Json::exception& e) {
    fail(where, ": unexpected content (", e.what(), ")");
  }
}

inline const char* json_kind(const Json& v) { return v.type_name(); }

// Typed read of obj[key]; `where` names the file. A missing key or wrong type is an error.
template <typename T>
T json_required(const Json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  LETHE_CHECK(it != obj.end() && !it->is_null(), where, ": missing required key '", key, "'");
  try {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      LETHE_CHECK(it->is_number_integer(), where, ": key '", key,
                  "' must be an integer, got ", it->dump());
      // get<T>() wraps silently (2^63 became -1): a value T cannot hold is an error.
      const bool fits = it->is_number_unsigned()
                            ? it->get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())
                            : it->get<std::int64_t>() >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
                                  (std::is_unsigned_v<T> || it->get<std::int64_t>() <=
                                                                static_cast<std::int64_t>(std::numeric_limits<T>::max()));
      LETHE_CHECK(fits, where, ": key '", key, "' = ", it->dump(), " is out of range (", std::numeric_limits<T>::min(),
                  " to ", std::numeric_limits<T>::max(), ")");
    } else if constexpr (std::is_floating_point_v<T>) {
      LETHE_CHECK(it->is_number(), where, ": key '", key, "' must be a number, got ",
                  it->dump());
    } else if constexpr (std::is_same_v<T, bool>) {
      LETHE_CHECK(it->is_boolean(), where, ": key '", key, "' must be true or false, got ",
                  it->dump());
    } else if constexpr (std::is_same_v<T, std::string>) {
      LETHE_CHECK(it->is_string(), where, ": key '", key, "' must be a string, got ",
                  it->dump());
    }
    return it->get<T>();
  } catch (const Json::exception& e) {
    fail(where, ": key '", key, "': ", e.what());
  }
}

// Like json_required, but a missing or null key yields `fallback`.
template <typename T>
T json_optional(const Json& obj, const char* key, T fallback, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  return json_required<T>(obj, key, where);
}

}  // namespace lethe

// Run configs: YAML files read as JSON, `key.sub=value` overrides, and a strict reader of their
// sections. Shared by every kind of run (finetune, unlearn, eval sections) so that one parser,
// with one set of rules, reads everything a user writes:
//   - a key given without a value (`lr:`, `train.lr=`) is an error, never the default;
//   - a duplicate key is an error naming both lines;
//   - an unknown key is an error listing the accepted ones;
//   - a number outside its declared domain (core/range.h) is an error naming key, value, domain.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "lethe/core/error.h"
#include "lethe/core/range.h"

namespace lethe {

using Json = nlohmann::json;

// YAML text as JSON: mappings (string keys), sequences, and scalars: what parses whole as an
// integer or a float is a number, true/True/false/False a boolean, null/~ null, anything else
// and every quoted scalar a string. `source` names the text in errors. An empty document is an
// empty mapping.
Json parse_yaml(const std::string& text, const std::string& source);
// The same for a file; errors name it.
Json load_yaml_file(const std::filesystem::path& path);
// Applies "a.b.c=value" (value in YAML) to `root`, creating mappings on the way.
void apply_override(Json& root, const std::string& spec);

// Reads one mapping of a config, remembering which keys were read; done() rejects the rest. Every
// error names the key by its dotted path ("train.lr").
class ConfigSection {
 public:
  ConfigSection(const Json& j, std::string path) : j_(j.is_null() ? Json::object() : j), path_(std::move(path)) {
    LETHE_CHECK(j_.is_object(), where(""), " must be a mapping");
  }
  // A key given without a value (`lr:` in YAML, `train.lr=` on the command line) is an error,
  // never the default: leaving the key out is how a default is asked for.
  bool has(const char* k) const {
    if (!j_.contains(k)) return false;
    LETHE_CHECK(!j_[k].is_null(), "config: '", where(k), "' has no value; give one or leave the key out");
    return true;
  }

  template <typename T>
  T get(const char* k, T fallback) {
    accepted_.emplace_back(k);
    if (!has(k)) return fallback;
    return as<T>(j_[k], k);
  }
  // The same for a number whose domain is `range`, checked when the key is given; `fallback`
  // may lie outside it (0 for "the suite's default").
  template <typename T>
  T get(const char* k, T fallback, const Range& range) {
    const bool given = has(k);
    const T v = get<T>(k, fallback);
    if (given) check_range("config: '" + where(k) + "'", static_cast<double>(v), range);
    return v;
  }
  template <typename T>
  T need(const char* k) {
    accepted_.emplace_back(k);
    LETHE_CHECK(has(k), "config: missing required key '", where(k), "'");
    return as<T>(j_[k], k);
  }
  // A path: a non-empty string ("" is no more a default than a missing value is).
  std::string get_path(const char* k) {
    const std::string v = get<std::string>(k, "");
    LETHE_CHECK(!j_.contains(k) || !v.empty(), "config: '", where(k), "' is an empty path; give one or leave the key out");
    return v;
  }
  std::string need_path(const char* k) {
    const std::string v = need<std::string>(k);
    LETHE_CHECK(!v.empty(), "config: '", where(k), "' is an empty path");
    return v;
  }
  const Json& raw(const char* k) {
    accepted_.emplace_back(k);
    return has(k) ? j_[k] : null_;
  }
  ConfigSection sub(const char* k) {
    accepted_.emplace_back(k);
    return ConfigSection(has(k) ? j_[k] : Json::object(), where(k));
  }
  std::string where(const std::string& k) const { return path_.empty() ? k : k.empty() ? path_ : path_ + "." + k; }
  const Json& json() const { return j_; }
  void done() const {
    for (const auto& [k, _] : j_.items()) {
      if (std::find(accepted_.begin(), accepted_.end(), k) == accepted_.end()) {
        std::string list;
        for (const auto& a : accepted_) list += (list.empty() ? "" : ", ") + a;
        fail("config: unknown key '", where(k), "' (accepted", path_.empty() ? "" : " in " + path_, ": ",
             list, ")");
      }
    }
  }

 private:
  template <typename T>
  T as(const Json& v, const char* k) const {
    try {
      if constexpr (std::is_same_v<T, bool>) {
        LETHE_CHECK(v.is_boolean(), "true or false");
      } else if constexpr (std::is_integral_v<T>) {
        LETHE_CHECK(v.is_number_integer(), "an integer");
        LETHE_CHECK(!v.is_number_unsigned() ||
                        v.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max()),
                    "an integer up to ", std::numeric_limits<T>::max());
      } else if constexpr (std::is_floating_point_v<T>) {
        LETHE_CHECK(v.is_number(), "a number");
      } else if constexpr (std::is_same_v<T, std::string>) {
        LETHE_CHECK(v.is_string(), "a string");
      }
      return v.get<T>();
    } catch (const Error& e) {
      fail("config: '", where(k), "' must be ", e.what(), ", got ", v.dump());
    } catch (const Json::exception&) {
      fail("config: '", where(k), "' has the wrong type: ", v.dump());
    }
  }
  Json j_;
  std::string path_;
  std::vector<std::string> accepted_;
  Json null_;
};


}  // namespace lethe

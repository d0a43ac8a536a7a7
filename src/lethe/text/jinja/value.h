// Values of lethe's Jinja subset, with Python's semantics where a chat template can see them:
// truthiness, str() and repr(), ==, ordering, json.dumps. Lists and dicts are immutable once
// built (transformers renders in an ImmutableSandboxedEnvironment), so values share them freely;
// a namespace() is the one mutable object, shared by reference as in Python.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lethe::text::jinja {

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, as Python's dict

// Positional and keyword arguments of a call, evaluated.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using Function = std::function<Value(Args&)>;

struct Value {
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };
  Kind kind = Kind::kUndefined;
  bool b = false;
  std::int64_t i = 0;
  double f = 0;
  std::string s;                      // string; for undefined, the name that was looked up
  std::shared_ptr<const List> list;   // list (tuples are lists too)
  std::shared_ptr<Dict> dict;         // dict (never modified once built) or namespace (mutable)
  std::shared_ptr<const Function> fn;

  static Value undefined(std::string name = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(std::int64_t v);
  static Value real(double v);
  static Value string(std::string v);
  static Value make_list(List v);
  static Value make_dict(Dict v);
  static Value make_namespace(Dict v);
  static Value callable(Function f);

  bool is(Kind k) const { return kind == k; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool; }
  // The dict entry for `key`, or nullptr (dicts and namespaces).
  const Value* find(std::string_view key) const;
};

// Python's type name, for error messages ("str", "int", "list", "dict", ...).
const char* type_name(const Value& v);
bool truthy(const Value& v);
std::string to_str(const Value& v);   // str(v); undefined prints as ""
std::string repr(const Value& v);     // repr(v), as str() shows list and dict members
bool equals(const Value& a, const Value& b);
// <0, 0, >0 for a < b, ==, >; numbers with numbers, strings with strings, lists element-wise;
// anything else is an error naming both types.
int compare(const Value& a, const Value& b);
double as_double(const Value& v);  // numbers and bools

// json.dumps(v, ensure_ascii=..., indent=indent (<0: none), sort_keys=...) with Python's
// default separators; undefined, functions and namespaces are errors, as they are not JSON.
std::string to_json(const Value& v, int indent = -1, bool sort_keys = false, bool ensure_ascii = false);
Value from_json(const nlohmann::ordered_json& j);

// Python's str.isspace() for one code point, and UTF-8 helpers that count code points as
// Python's len() and slicing do.
bool is_space(char32_t c);
std::u32string decode_utf8(std::string_view s);
std::string encode_utf8(std::u32string_view s);
std::string strip(std::string_view s, bool left, bool right, const std::string* chars = nullptr);

}  // namespace lethe::text::jinja

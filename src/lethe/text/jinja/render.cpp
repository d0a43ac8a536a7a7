// The renderer of lethe's Jinja subset: statements, expressions, and the filters, tests, methods
// and functions the parser admits, each with the behaviour Jinja2 3.1 (in transformers'
// ImmutableSandboxedEnvironment) gives it. Scoping follows Jinja: a for loop's body and a macro
// get their own scope, so `set` inside them does not leak out (namespace() is the way out).
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "lethe/core/error.h"
#include "text/jinja/ast.h"
#include "text/unicode.h"

namespace lethe::text::jinja {

namespace {

constexpr int kMaxCallDepth = 64;                 // macro recursion
constexpr std::size_t kMaxOutput = 64u << 20;     // bytes of one rendering
constexpr std::int64_t kMaxRange = 1'000'000;     // elements of range() and of repeated sequences
constexpr std::int64_t kMaxSteps = 2'000'000;     // statements run and loop iterations of one rendering

using Scope = std::unordered_map<std::string, Value>;
using ScopeChain = std::vector<std::shared_ptr<Scope>>;

enum class Flow { kNormal, kBreak, kContinue };

struct EvalError {
  int line;
  std::string message;
};
[[noreturn]] void raise(int line, std::string message) { throw EvalError{line, std::move(message)}; }

// a op b on int64, or an error (Python's ints do not overflow; lethe's stop at 2^63).
template <typename Op>
std::int64_t checked(Op op, std::int64_t a, std::int64_t b, int line) {
  std::int64_t r = 0;
  if (op(a, b, &r)) raise(line, "integer overflow");
  return r;
}
constexpr auto kAdd = [](std::int64_t a, std::int64_t b, std::int64_t* r) { return __builtin_add_overflow(a, b, r); };
constexpr auto kSub = [](std::int64_t a, std::int64_t b, std::int64_t* r) { return __builtin_sub_overflow(a, b, r); };
constexpr auto kMul = [](std::int64_t a, std::int64_t b, std::int64_t* r) { return __builtin_mul_overflow(a, b, r); };

std::int64_t as_int(const Value& v) { return v.kind == Value::Kind::kBool ? (v.b ? 1 : 0) : v.i; }
bool is_intlike(const Value& v) { return v.kind == Value::Kind::kInt || v.kind == Value::Kind::kBool; }

std::u32string u32(const std::string& s) { return decode_utf8(s); }

// Python's slice.indices(len) followed by the selection.
std::vector<std::int64_t> slice_positions(std::int64_t n, const Value* start, const Value* stop, const Value* step, int line) {
  std::int64_t st = 1;
  if (step && step->kind != Value::Kind::kNone) {
    if (!is_intlike(*step)) raise(line, "slice indices must be integers");
    st = as_int(*step);
    if (st == 0) raise(line, "slice step cannot be zero");
  }
  auto bound = [&](const Value* v, std::int64_t dflt) {
    if (!v || v->kind == Value::Kind::kNone) return dflt;
    if (!is_intlike(*v)) raise(line, "slice indices must be integers");
    std::int64_t x = as_int(*v);
    if (x < 0) x += n;
    if (st > 0) return std::clamp<std::int64_t>(x, 0, n);
    return std::clamp<std::int64_t>(x, -1, n - 1);
  };
  const std::int64_t a = bound(start, st > 0 ? 0 : n - 1);
  const std::int64_t b = bound(stop, st > 0 ? n : -1);
  std::vector<std::int64_t> out;
  for (std::int64_t k = a; st > 0 ? k < b : k > b; k += st) out.push_back(k);
  return out;
}

// The items a for loop, a filter or list() walks: list items, dict keys, string characters.
std::vector<Value> iterate(const Value& v, int line) {
  switch (v.kind) {
    case Value::Kind::kUndefined: return {};
    case Value::Kind::kList: return *v.list;
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& kv : *v.dict) keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Value::Kind::kString: {
      std::vector<Value> chars;
      for (char32_t c : u32(v.s)) chars.push_back(Value::string(encode_utf8(std::u32string(1, c))));
      return chars;
    }
    default: raise(line, std::string("'") + type_name(v) + "' object is not iterable");
  }
}

std::int64_t length_of(const Value& v, int line) {
  switch (v.kind) {
    case Value::Kind::kUndefined: return 0;
    case Value::Kind::kString: return static_cast<std::int64_t>(u32(v.s).size());
    case Value::Kind::kList: return static_cast<std::int64_t>(v.list->size());
    case Value::Kind::kDict: return static_cast<std::int64_t>(v.dict->size());
    default: raise(line, std::string("object of type '") + type_name(v) + "' has no len()");
  }
}

bool contains(const Value& container, const Value& item, int line) {
  switch (container.kind) {
    case Value::Kind::kString:
      if (item.kind != Value::Kind::kString) raise(line, "'in <string>' requires string as left operand");
      return container.s.find(item.s) != std::string::npos;
    case Value::Kind::kList:
      for (const auto& x : *container.list)
        if (equals(x, item)) return true;
      return false;
    case Value::Kind::kDict: return item.kind == Value::Kind::kString && container.find(item.s) != nullptr;
    case Value::Kind::kUndefined: return false;
    default: raise(line, std::string("argument of type '") + type_name(container) + "' is not iterable");
  }
}

std::string title_case(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (char32_t c : u32(s)) {
    const std::string one = encode_utf8(std::u32string(1, c));
    const std::string up = uppercase(one), low = lowercase(one);
    const bool cased = up != low;
    out += cased ? (prev_cased ? low : up) : one;
    prev_cased = cased;
  }
  return out;
}

std::string capitalize(const std::string& s) {
  const std::u32string u = u32(s);
  if (u.empty()) return s;
  return uppercase(encode_utf8(u.substr(0, 1))) + lowercase(encode_utf8(u.substr(1)));
}

// str.split / str.rsplit: sep null splits on whitespace runs and drops empty pieces.
std::vector<std::string> split(const std::string& s, const std::string* sep, std::int64_t maxsplit, bool from_right, int line) {
  std::vector<std::string> out;
  if (sep != nullptr) {
    if (sep->empty()) raise(line, "empty separator");
    if (!from_right) {
      std::size_t start = 0;
      while (maxsplit < 0 || static_cast<std::int64_t>(out.size()) < maxsplit) {
        const std::size_t k = s.find(*sep, start);
        if (k == std::string::npos) break;
        out.push_back(s.substr(start, k - start));
        start = k + sep->size();
      }
      out.push_back(s.substr(start));
    } else {
      std::size_t end = s.size();
      std::vector<std::string> rev;
      while (maxsplit < 0 || static_cast<std::int64_t>(rev.size()) < maxsplit) {
        if (end < sep->size()) break;
        const std::size_t k = s.rfind(*sep, end - sep->size());
        if (k == std::string::npos) break;
        rev.push_back(s.substr(k + sep->size(), end - k - sep->size()));
        end = k;
      }
      rev.push_back(s.substr(0, end));
      out.assign(rev.rbegin(), rev.rend());
    }
    return out;
  }
  const std::u32string u = u32(s);
  std::vector<std::pair<std::size_t, std::size_t>> words;
  for (std::size_t k = 0; k < u.size();) {
    while (k < u.size() && is_space(u[k])) ++k;
    if (k >= u.size()) break;
    std::size_t e = k;
    while (e < u.size() && !is_space(u[e])) ++e;
    words.emplace_back(k, e);
    k = e;
  }
  if (maxsplit >= 0 && static_cast<std::int64_t>(words.size()) > maxsplit + 1) {
    // The last piece (first, from the right) keeps the rest of the text, stripped on its outer side only.
    const std::size_t keep = static_cast<std::size_t>(maxsplit);
    if (!from_right) {
      for (std::size_t k = 0; k < keep; ++k) out.push_back(encode_utf8(u.substr(words[k].first, words[k].second - words[k].first)));
      out.push_back(encode_utf8(u.substr(words[keep].first, words.back().second - words[keep].first)));
    } else {
      const std::size_t first = words.size() - keep;
      out.push_back(encode_utf8(u.substr(words[0].first, words[first - 1].second - words[0].first)));
      for (std::size_t k = first; k < words.size(); ++k)
        out.push_back(encode_utf8(u.substr(words[k].first, words[k].second - words[k].first)));
    }
    return out;
  }
  for (const auto& [a, b] : words) out.push_back(encode_utf8(u.substr(a, b - a)));
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, std::int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between every character (and at both ends)
    const std::u32string u = u32(s);
    std::int64_t n = 0;
    for (std::size_t k = 0; k <= u.size(); ++k) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      if (k < u.size()) out += encode_utf8(u.substr(k, 1));
    }
    return out;
  }
  std::size_t start = 0;
  std::int64_t n = 0;
  while (count < 0 || n < count) {
    const std::size_t k = s.find(from, start);
    if (k == std::string::npos) break;
    out += s.substr(start, k - start) + to;
    start = k + from.size();
    ++n;
  }
  return out + s.substr(start);
}

class Renderer {
 public:
  Renderer(const RenderEnv& env) : env_(env) {}

  std::string run(const Program& p, const Dict& variables) {
    auto globals = std::make_shared<Scope>();
    for (const auto& [k, v] : variables) (*globals)[k] = v;
    scopes_ = {globals};
    std::string out;
    exec(p.body, out);
    return out;
  }

 private:
  // ---- statements ----------------------------------------------------------------------------
  // A template is a program from a model folder: its run time and memory are bounded, so a
  // hostile one ends in an error instead of a hang.
  void step(int line) {
    if (++steps_ > kMaxSteps) raise(line, "the rendering runs more than 2,000,000 steps");
  }
  static Value bounded(std::string s, int line) {
    if (s.size() > kMaxOutput) raise(line, "a string longer than 64 MiB");
    return Value::string(std::move(s));
  }

  void emit(std::string& out, const std::string& s, int line) {
    if (out.size() + s.size() > kMaxOutput) raise(line, "the rendering exceeds 64 MiB");
    out += s;
  }

  Flow exec(const Body& body, std::string& out) {
    for (const auto& n : body) {
      const Flow f = exec(*n, out);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow exec(const Node& n, std::string& out) {
    step(n.line);
    switch (n.kind) {
      case Node::Kind::kText: emit(out, n.text, n.line); return Flow::kNormal;
      case Node::Kind::kOutput: emit(out, to_str(eval(*n.expr)), n.line); return Flow::kNormal;
      case Node::Kind::kIf:
        for (std::size_t k = 0; k < n.conds.size(); ++k)
          if (truthy(eval(*n.conds[k]))) return exec(n.bodies[k], out);
        return exec(n.else_body, out);
      case Node::Kind::kFor: return exec_for(n, out);
      case Node::Kind::kSet: assign(n, eval(*n.expr)); return Flow::kNormal;
      case Node::Kind::kSetBlock: {
        std::string captured;
        exec(n.body, captured);
        assign(n, Value::string(std::move(captured)));
        return Flow::kNormal;
      }
      case Node::Kind::kMacro: (*scopes_.back())[n.name] = macro(n.params, n.body, scopes_, n.name); return Flow::kNormal;
      case Node::Kind::kCallBlock: {
        const Value caller = macro(n.params, n.body, scopes_, "caller");
        emit(out, to_str(eval_call(*n.expr, &caller)), n.line);
        return Flow::kNormal;
      }
      case Node::Kind::kBreak: return Flow::kBreak;
      case Node::Kind::kContinue: return Flow::kContinue;
      case Node::Kind::kGeneration: return exec(n.body, out);
    }
    return Flow::kNormal;
  }

  void bind(Scope& scope, const std::vector<std::string>& targets, const Value& v, int line) {
    if (targets.size() == 1) {
      scope[targets[0]] = v;
      return;
    }
    const std::vector<Value> items = iterate(v, line);
    if (items.size() != targets.size())
      raise(line, "cannot unpack " + std::to_string(items.size()) + " values into " + std::to_string(targets.size()) + " names");
    for (std::size_t k = 0; k < targets.size(); ++k) scope[targets[k]] = items[k];
  }

  void assign(const Node& n, const Value& v) {
    if (!n.attr.empty()) {
      const Value ns = lookup(n.targets[0]);
      if (ns.kind != Value::Kind::kNamespace) raise(n.line, "cannot assign attribute on non-namespace object '" + n.targets[0] + "'");
      for (auto& kv : *ns.dict)
        if (kv.first == n.attr) {
          kv.second = v;
          return;
        }
      ns.dict->emplace_back(n.attr, v);
      return;
    }
    bind(*scopes_.back(), n.targets, v, n.line);
  }

  Flow exec_for(const Node& n, std::string& out) {
    const std::vector<Value> all = iterate(eval(*n.expr), n.line);
    std::vector<Value> items;
    if (n.cond) {
      for (const auto& v : all) {
        scopes_.push_back(std::make_shared<Scope>());
        bind(*scopes_.back(), n.targets, v, n.line);
        const bool keep = truthy(eval(*n.cond));
        scopes_.pop_back();
        if (keep) items.push_back(v);
      }
    } else {
      items = all;
    }
    if (items.empty()) return exec(n.else_body, out);
    const auto len = static_cast<std::int64_t>(items.size());
    for (std::int64_t k = 0; k < len; ++k) {
      step(n.line);
      auto scope = std::make_shared<Scope>();
      bind(*scope, n.targets, items[static_cast<std::size_t>(k)], n.line);
      (*scope)["loop"] = Value::make_dict({
          {"index", Value::integer(k + 1)},
          {"index0", Value::integer(k)},
          {"revindex", Value::integer(len - k)},
          {"revindex0", Value::integer(len - k - 1)},
          {"first", Value::boolean(k == 0)},
          {"last", Value::boolean(k == len - 1)},
          {"length", Value::integer(len)},
          {"depth", Value::integer(1)},
          {"depth0", Value::integer(0)},
          {"previtem", k > 0 ? items[static_cast<std::size_t>(k - 1)] : Value::undefined("loop.previtem")},
          {"nextitem", k + 1 < len ? items[static_cast<std::size_t>(k + 1)] : Value::undefined("loop.nextitem")},
      });
      scopes_.push_back(scope);
      const Flow f = exec(n.body, out);
      scopes_.pop_back();
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  // A macro (or a call block's caller): binds its parameters in a scope above the chain it was
  // defined in and returns its rendered body.
  // The chain is held weakly: the macro lives in one of its scopes, and a strong reference
  // would be a cycle that outlives the rendering.
  Value macro(const std::vector<MacroParam>& params, const Body& body, const ScopeChain& defined_in, const std::string& name) {
    std::vector<std::weak_ptr<Scope>> weak(defined_in.begin(), defined_in.end());
    return Value::callable([this, &params, &body, weak, name](Args& args) {
      ScopeChain chain;
      for (const auto& w : weak) {
        chain.push_back(w.lock());
        if (!chain.back()) raise(0, "macro '" + name + "' called outside the block it was defined in");
      }
      if (++depth_ > kMaxCallDepth) raise(0, "macro '" + name + "' recursed deeper than " + std::to_string(kMaxCallDepth) + " calls");
      if (args.positional.size() > params.size())
        raise(0, "macro '" + name + "' takes no more than " + std::to_string(params.size()) + " arguments");
      auto scope = std::make_shared<Scope>();
      ScopeChain saved = std::move(scopes_);
      scopes_ = chain;
      scopes_.push_back(scope);
      for (std::size_t k = 0; k < params.size(); ++k) {
        const MacroParam& p = params[k];
        Value v = Value::undefined(p.name);
        if (k < args.positional.size()) {
          v = args.positional[k];
        } else if (p.default_value) {
          v = eval(*p.default_value);
        }
        (*scope)[p.name] = v;
      }
      for (const auto& kw : args.keyword) {
        const std::string& k = kw.first;
        const bool known = k == "caller" || std::any_of(params.begin(), params.end(), [&](const MacroParam& p) { return p.name == k; });
        if (!known) raise(0, "macro '" + name + "' takes no keyword argument '" + k + "'");
        (*scope)[k] = kw.second;
      }
      std::string out;
      try {
        exec(body, out);
      } catch (...) {
        scopes_ = std::move(saved);
        --depth_;
        throw;
      }
      scopes_ = std::move(saved);
      --depth_;
      return Value::string(std::move(out));
    });
  }

  // ---- expressions ---------------------------------------------------------------------------
  Value lookup(const std::string& name) {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = (*it)->find(name);
      if (f != (*it)->end()) return f->second;
    }
    if (known_function(name)) return builtin(name);
    return Value::undefined("'" + name + "'");
  }

  [[noreturn]] void undefined_use(const Value& v, int line) {
    raise(line, (v.s.empty() ? std::string("a value") : v.s) + " is undefined");
  }

  Value attribute(const Value& obj, const std::string& name, int line) {
    if (obj.kind == Value::Kind::kUndefined) undefined_use(obj, line);
    if (obj.kind == Value::Kind::kDict || obj.kind == Value::Kind::kNamespace) {
      if (const Value* v = obj.find(name)) return *v;
      return Value::undefined(std::string("'") + (obj.kind == Value::Kind::kDict ? "dict object" : "namespace") +
                              "' has no attribute '" + name + "'");
    }
    return Value::undefined(std::string("'") + type_name(obj) + " object' has no attribute '" + name + "'");
  }

  Value item(const Value& obj, const Value& key, int line) {
    if (obj.kind == Value::Kind::kUndefined) undefined_use(obj, line);
    if ((obj.kind == Value::Kind::kList || obj.kind == Value::Kind::kString) && is_intlike(key)) {
      if (obj.kind == Value::Kind::kList) {
        std::int64_t k = as_int(key);
        const auto n = static_cast<std::int64_t>(obj.list->size());
        if (k < 0) k += n;
        if (k >= 0 && k < n) return (*obj.list)[static_cast<std::size_t>(k)];
      } else {
        const std::u32string u = u32(obj.s);
        std::int64_t k = as_int(key);
        const auto n = static_cast<std::int64_t>(u.size());
        if (k < 0) k += n;
        if (k >= 0 && k < n) return Value::string(encode_utf8(u.substr(static_cast<std::size_t>(k), 1)));
      }
      return Value::undefined("index " + std::to_string(as_int(key)) + " (out of range)");
    }
    if (key.kind == Value::Kind::kString) return attribute(obj, key.s, line);
    return Value::undefined("item " + repr(key));
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.value;
      case Expr::Kind::kName: return lookup(e.name);
      case Expr::Kind::kList: {
        List l;
        for (const auto& x : e.items) l.push_back(eval(*x));
        return Value::make_list(std::move(l));
      }
      case Expr::Kind::kDict: {
        Dict d;
        for (std::size_t k = 0; k < e.keys.size(); ++k) {
          const Value key = eval(*e.keys[k]);
          if (key.kind != Value::Kind::kString) raise(e.line, "dict keys must be strings in chat templates");
          Value v = eval(*e.items[k]);
          auto it = std::find_if(d.begin(), d.end(), [&](const auto& kv) { return kv.first == key.s; });
          if (it != d.end()) {
            it->second = std::move(v);
          } else {
            d.emplace_back(key.s, std::move(v));
          }
        }
        return Value::make_dict(std::move(d));
      }
      case Expr::Kind::kAttr: return attribute(eval(*e.items[0]), e.name, e.line);
      case Expr::Kind::kItem: return item(eval(*e.items[0]), eval(*e.items[1]), e.line);
      case Expr::Kind::kSlice: {
        const Value obj = eval(*e.items[0]);
        if (obj.kind == Value::Kind::kUndefined) undefined_use(obj, e.line);
        Value parts[3];
        for (int k = 0; k < 3; ++k) parts[k] = e.items[static_cast<std::size_t>(k + 1)] ? eval(*e.items[static_cast<std::size_t>(k + 1)]) : Value::none();
        if (obj.kind == Value::Kind::kList) {
          List l;
          for (auto k : slice_positions(static_cast<std::int64_t>(obj.list->size()), &parts[0], &parts[1], &parts[2], e.line))
            l.push_back((*obj.list)[static_cast<std::size_t>(k)]);
          return Value::make_list(std::move(l));
        }
        if (obj.kind == Value::Kind::kString) {
          const std::u32string u = u32(obj.s);
          std::u32string r;
          for (auto k : slice_positions(static_cast<std::int64_t>(u.size()), &parts[0], &parts[1], &parts[2], e.line))
            r += u[static_cast<std::size_t>(k)];
          return Value::string(encode_utf8(r));
        }
        return Value::undefined("a slice of " + std::string(type_name(obj)));
      }
      case Expr::Kind::kCall: return eval_call(e, nullptr);
      case Expr::Kind::kFilter: return filter(e);
      case Expr::Kind::kTest: return Value::boolean(test(e) != e.negated);
      case Expr::Kind::kUnary: {
        const Value v = eval(*e.items[0]);
        if (e.name == "not") return Value::boolean(!truthy(v));
        if (v.kind == Value::Kind::kUndefined) undefined_use(v, e.line);
        if (!v.is_number()) raise(e.line, std::string("bad operand type for unary ") + e.name + ": '" + type_name(v) + "'");
        if (e.name == "+") return is_intlike(v) ? Value::integer(as_int(v)) : v;
        if (is_intlike(v)) return Value::integer(checked(kSub, 0, as_int(v), e.line));
        return Value::real(-v.f);
      }
      case Expr::Kind::kBinary: return binary(e);
      case Expr::Kind::kCond:
        if (truthy(eval(*e.items[0]))) return eval(*e.items[1]);
        return e.items[2] ? eval(*e.items[2]) : Value::undefined("the missing else branch");
    }
    return Value::undefined();
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value a = eval(*e.items[0]);
      return truthy(a) ? eval(*e.items[1]) : a;
    }
    if (op == "or") {
      Value a = eval(*e.items[0]);
      return truthy(a) ? a : eval(*e.items[1]);
    }
    const Value a = eval(*e.items[0]);
    const Value b = eval(*e.items[1]);
    const int line = e.line;
    if (op == "==") return Value::boolean(equals(a, b));
    if (op == "!=") return Value::boolean(!equals(a, b));
    if (op == "in") return Value::boolean(contains(b, a, line));
    if (op == "not in") return Value::boolean(!contains(b, a, line));
    if (op == "~") return bounded(to_str(a) + to_str(b), line);
    if (a.kind == Value::Kind::kUndefined) undefined_use(a, line);
    if (b.kind == Value::Kind::kUndefined) undefined_use(b, line);
    if (op == "<" || op == "<=" || op == ">" || op == ">=") {
      int c;
      try {
        c = compare(a, b);
      } catch (const Error& err) {
        raise(line, err.what());
      }
      return Value::boolean(op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0);
    }
    auto type_error = [&]() -> Value {
      raise(line, "unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
    };
    if (op == "+") {
      if (a.kind == Value::Kind::kString && b.kind == Value::Kind::kString) return bounded(a.s + b.s, line);
      if (a.kind == Value::Kind::kList && b.kind == Value::Kind::kList) {
        if (a.list->size() + b.list->size() > static_cast<std::size_t>(kMaxRange)) raise(line, "a list longer than 10^6 items");
        List l = *a.list;
        l.insert(l.end(), b.list->begin(), b.list->end());
        return Value::make_list(std::move(l));
      }
    }
    if (op == "*") {  // sequence repetition
      const Value* seq = a.kind == Value::Kind::kString || a.kind == Value::Kind::kList ? &a : b.kind == Value::Kind::kString || b.kind == Value::Kind::kList ? &b : nullptr;
      const Value* count = seq == &a ? &b : &a;
      if (seq != nullptr) {
        if (!is_intlike(*count)) return type_error();
        const std::int64_t n = std::max<std::int64_t>(0, as_int(*count));
        const std::int64_t len = length_of(*seq, line);
        if (len > 0 && n > kMaxRange / len) raise(line, "a repeated sequence longer than 10^6 items");
        if (seq->kind == Value::Kind::kString && n > 0 && seq->s.size() > kMaxOutput / static_cast<std::size_t>(n))
          raise(line, "a string longer than 64 MiB");
        if (seq->kind == Value::Kind::kString) {
          std::string s;
          for (std::int64_t k = 0; k < n; ++k) s += seq->s;
          return Value::string(std::move(s));
        }
        List l;
        for (std::int64_t k = 0; k < n; ++k) l.insert(l.end(), seq->list->begin(), seq->list->end());
        return Value::make_list(std::move(l));
      }
    }
    if (op == "%" && a.kind == Value::Kind::kString) raise(line, "printf-style string formatting ('%') is not supported in chat templates");
    if (!a.is_number() || !b.is_number()) return type_error();
    if (is_intlike(a) && is_intlike(b) && op != "/") {
      const std::int64_t x = as_int(a), y = as_int(b);
      if (op == "+") return Value::integer(checked(kAdd, x, y, line));
      if (op == "-") return Value::integer(checked(kSub, x, y, line));
      if (op == "*") return Value::integer(checked(kMul, x, y, line));
      if (op == "//" || op == "%") {
        if (y == 0) raise(line, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) raise(line, "integer overflow");
        std::int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        return Value::integer(op == "//" ? q : m);
      }
      if (op == "**") {
        if (y < 0) return Value::real(std::pow(static_cast<double>(x), static_cast<double>(y)));
        std::int64_t acc = 1;
        for (std::int64_t k = 0; k < y; ++k) {
          acc = checked(kMul, acc, x, line);
          if (acc == 0 || acc == 1) break;
        }
        return Value::integer(acc);
      }
    }
    const double x = as_double(a), y = as_double(b);
    if (op == "+") return Value::real(x + y);
    if (op == "-") return Value::real(x - y);
    if (op == "*") return Value::real(x * y);
    if (op == "/" || op == "//" || op == "%") {
      if (y == 0) raise(line, "division by zero");
      if (op == "/") return Value::real(x / y);
      const double q = std::floor(x / y);
      return Value::real(op == "//" ? q : x - q * y);
    }
    if (op == "**") return Value::real(std::pow(x, y));
    return type_error();
  }

  Args eval_args(const Expr& e) {
    Args a;
    for (const auto& x : e.args) a.positional.push_back(eval(*x));
    for (const auto& [k, x] : e.kwargs) a.keyword.emplace_back(k, eval(*x));
    return a;
  }

  Value eval_call(const Expr& e, const Value* caller) {
    const Expr& callee = *e.items[0];
    Args args = eval_args(e);
    if (caller != nullptr) args.keyword.emplace_back("caller", *caller);
    if (callee.kind == Expr::Kind::kAttr) {
      const Value obj = eval(*callee.items[0]);
      if (obj.kind == Value::Kind::kUndefined) undefined_use(obj, callee.line);
      return method(obj, callee.name, args, e.line);
    }
    const Value f = eval(callee);
    if (f.kind == Value::Kind::kUndefined) undefined_use(f, e.line);
    if (f.kind != Value::Kind::kCallable) raise(e.line, "'" + callee.name + "' is not callable");
    try {
      return (*f.fn)(args);
    } catch (EvalError& err) {
      if (err.line == 0) err.line = e.line;
      throw;
    }
  }

  // Positional-or-keyword argument k named `name` of a filter/method/function call.
  static const Value* arg(const Args& a, std::size_t k, const char* name) {
    if (k < a.positional.size()) return &a.positional[k];
    for (const auto& [n, v] : a.keyword)
      if (n == name) return &v;
    return nullptr;
  }
  static std::string str_arg(const Args& a, std::size_t k, const char* name, int line, const std::string& dflt = {}) {
    const Value* v = arg(a, k, name);
    if (v == nullptr) return dflt;
    if (v->kind != Value::Kind::kString) raise(line, std::string("argument '") + name + "' must be a string, got " + type_name(*v));
    return v->s;
  }
  static std::int64_t int_arg(const Args& a, std::size_t k, const char* name, int line, std::int64_t dflt) {
    const Value* v = arg(a, k, name);
    if (v == nullptr || v->kind == Value::Kind::kNone) return dflt;
    if (!is_intlike(*v)) raise(line, std::string("argument '") + name + "' must be an integer, got " + type_name(*v));
    return as_int(*v);
  }

  Value builtin(const std::string& name) {
    if (name == "range") {
      return Value::callable([](Args& a) {
        std::int64_t start = 0, stop = 0, step = 1;
        auto num = [](const Value& v) {
          if (!is_intlike(v)) raise(0, "range() takes integers");
          return as_int(v);
        };
        if (a.positional.size() == 1) {
          stop = num(a.positional[0]);
        } else if (a.positional.size() == 2 || a.positional.size() == 3) {
          start = num(a.positional[0]);
          stop = num(a.positional[1]);
          if (a.positional.size() == 3) step = num(a.positional[2]);
        } else {
          raise(0, "range() takes 1 to 3 arguments");
        }
        if (step == 0) raise(0, "range() arg 3 must not be zero");
        List l;
        for (std::int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
          if (static_cast<std::int64_t>(l.size()) >= kMaxRange) raise(0, "range() of more than 10^6 items");
          l.push_back(Value::integer(k));
        }
        return Value::make_list(std::move(l));
      });
    }
    if (name == "namespace" || name == "dict") {
      const bool ns = name == "namespace";
      return Value::callable([ns](Args& a) {
        Dict d;
        if (!a.positional.empty()) {
          if (a.positional.size() > 1 || a.positional[0].kind != Value::Kind::kDict) raise(0, "namespace()/dict() take one dict and keyword arguments");
          d = *a.positional[0].dict;
        }
        for (const auto& kw : a.keyword) {
          auto it = std::find_if(d.begin(), d.end(), [&](const auto& kv) { return kv.first == kw.first; });
          if (it != d.end()) {
            it->second = kw.second;
          } else {
            d.emplace_back(kw.first, kw.second);
          }
        }
        return ns ? Value::make_namespace(std::move(d)) : Value::make_dict(std::move(d));
      });
    }
    if (name == "raise_exception") {
      return Value::callable([](Args& a) -> Value {
        raise(0, "raise_exception: " + (a.positional.empty() ? std::string() : to_str(a.positional[0])));
      });
    }
    if (name == "strftime_now") {
      return Value::callable([this](Args& a) {
        if (a.positional.size() != 1 || a.positional[0].kind != Value::Kind::kString) raise(0, "strftime_now() takes one format string");
        if (!env_.strftime_now) raise(0, "strftime_now() has no clock in this rendering");
        return Value::string(env_.strftime_now(a.positional[0].s));
      });
    }
    raise(0, "unknown function '" + name + "'");
  }

  Value method(const Value& obj, const std::string& name, const Args& a, int line) {
    if (obj.kind == Value::Kind::kString) {
      const std::string& s = obj.s;
      if (name == "startswith" || name == "endswith") {
        const Value* p = arg(a, 0, "prefix");
        if (p == nullptr) raise(line, name + "() takes a prefix");
        std::vector<std::string> options;
        if (p->kind == Value::Kind::kString) {
          options.push_back(p->s);
        } else if (p->kind == Value::Kind::kList) {
          for (const auto& x : *p->list) {
            if (x.kind != Value::Kind::kString) raise(line, name + "() takes strings");
            options.push_back(x.s);
          }
        } else {
          raise(line, name + "() takes a string or a tuple of strings");
        }
        for (const auto& o : options) {
          if (o.size() > s.size()) continue;
          if (name == "startswith" ? s.compare(0, o.size(), o) == 0 : s.compare(s.size() - o.size(), o.size(), o) == 0)
            return Value::boolean(true);
        }
        return Value::boolean(false);
      }
      if (name == "strip" || name == "lstrip" || name == "rstrip") {
        const Value* c = arg(a, 0, "chars");
        std::string chars;
        const bool have = c != nullptr && c->kind != Value::Kind::kNone;
        if (have) {
          if (c->kind != Value::Kind::kString) raise(line, name + "() arg must be a string or None");
          chars = c->s;
        }
        return Value::string(strip(s, name != "rstrip", name != "lstrip", have ? &chars : nullptr));
      }
      if (name == "split" || name == "rsplit") {
        const Value* sep = arg(a, 0, "sep");
        const bool have = sep != nullptr && sep->kind != Value::Kind::kNone;
        if (have && sep->kind != Value::Kind::kString) raise(line, "split() separator must be a string or None");
        List l;
        for (auto& piece : split(s, have ? &sep->s : nullptr, int_arg(a, 1, "maxsplit", line, -1), name == "rsplit", line))
          l.push_back(Value::string(std::move(piece)));
        return Value::make_list(std::move(l));
      }
      if (name == "splitlines") {
        List l;
        std::size_t start = 0;
        for (std::size_t k = 0; k < s.size(); ++k) {
          if (s[k] == '\n' || s[k] == '\r') {
            l.push_back(Value::string(s.substr(start, k - start)));
            if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
            start = k + 1;
          }
        }
        if (start < s.size()) l.push_back(Value::string(s.substr(start)));
        return Value::make_list(std::move(l));
      }
      if (name == "upper") return Value::string(uppercase(s));
      if (name == "lower") return Value::string(lowercase(s));
      if (name == "title") return Value::string(title_case(s));
      if (name == "capitalize") return Value::string(capitalize(s));
      if (name == "replace")
        return bounded(replace_all(s, str_arg(a, 0, "old", line), str_arg(a, 1, "new", line), int_arg(a, 2, "count", line, -1)), line);
      if (name == "find" || name == "rfind" || name == "count") {
        const std::string sub = str_arg(a, 0, "sub", line);
        if (name == "count") {
          if (sub.empty()) return Value::integer(static_cast<std::int64_t>(u32(s).size()) + 1);
          std::int64_t n = 0;
          for (std::size_t k = s.find(sub); k != std::string::npos; k = s.find(sub, k + sub.size())) ++n;
          return Value::integer(n);
        }
        const std::size_t k = name == "find" ? s.find(sub) : s.rfind(sub);
        if (k == std::string::npos) return Value::integer(-1);
        return Value::integer(static_cast<std::int64_t>(u32(s.substr(0, k)).size()));
      }
      if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isupper" || name == "islower") {
        const std::u32string u = u32(s);
        if (u.empty()) return Value::boolean(false);
        if (name == "isspace") return Value::boolean(std::all_of(u.begin(), u.end(), is_space));
        if (name == "isdigit") return Value::boolean(std::all_of(u.begin(), u.end(), [](char32_t c) { return c >= '0' && c <= '9'; }));
        if (name == "isalpha")
          return Value::boolean(std::all_of(u.begin(), u.end(), [](char32_t c) {
            const std::string one = encode_utf8(std::u32string(1, c));
            return uppercase(one) != lowercase(one) || (c > 0x7f && !is_space(c) && !is_punctuation(c) && !is_numeric(c));
          }));
        bool cased = false;
        for (char32_t c : u) {
          const std::string one = encode_utf8(std::u32string(1, c));
          const std::string up = uppercase(one), low = lowercase(one);
          if (up == low) continue;
          cased = true;
          if (name == "isupper" ? one != up : one != low) return Value::boolean(false);
        }
        return Value::boolean(cased);
      }
      if (name == "join") {
        const Value* it = arg(a, 0, "iterable");
        if (it == nullptr) raise(line, "join() takes an iterable");
        std::string out;
        bool first = true;
        for (const auto& x : iterate(*it, line)) {
          if (x.kind != Value::Kind::kString) raise(line, std::string("join() expects strings, found ") + type_name(x));
          out += (first ? "" : s) + x.s;
          first = false;
          if (out.size() > kMaxOutput) raise(line, "a string longer than 64 MiB");
        }
        return Value::string(std::move(out));
      }
    }
    if (obj.kind == Value::Kind::kDict) {
      if (name == "items" || name == "keys" || name == "values") {
        List l;
        for (const auto& [k, v] : *obj.dict) {
          if (name == "items") {
            l.push_back(Value::make_list({Value::string(k), v}));
          } else {
            l.push_back(name == "keys" ? Value::string(k) : v);
          }
        }
        return Value::make_list(std::move(l));
      }
      if (name == "get") {
        const Value* k = arg(a, 0, "key");
        if (k == nullptr) raise(line, "get() takes a key");
        if (k->kind == Value::Kind::kString)
          if (const Value* v = obj.find(k->s)) return *v;
        const Value* d = arg(a, 1, "default");
        return d ? *d : Value::none();
      }
    }
    if (obj.kind == Value::Kind::kList && name == "count") {
      const Value* x = arg(a, 0, "value");
      if (x == nullptr) raise(line, "count() takes a value");
      return Value::integer(std::count_if(obj.list->begin(), obj.list->end(), [&](const Value& v) { return equals(v, *x); }));
    }
    raise(line, std::string("'") + type_name(obj) + "' object has no attribute '" + name + "'");
  }

  // ---- tests ---------------------------------------------------------------------------------
  bool run_test(const std::string& name, const Value& v, const std::vector<Value>& args, int line) {
    auto one = [&]() -> const Value& {
      if (args.size() != 1) raise(line, "test '" + name + "' takes one argument");
      return args[0];
    };
    if (name == "defined") return v.kind != Value::Kind::kUndefined;
    if (name == "undefined") return v.kind == Value::Kind::kUndefined;
    if (name == "none") return v.kind == Value::Kind::kNone;
    if (name == "boolean") return v.kind == Value::Kind::kBool;
    if (name == "true") return v.kind == Value::Kind::kBool && v.b;
    if (name == "false") return v.kind == Value::Kind::kBool && !v.b;
    if (name == "integer") return v.kind == Value::Kind::kInt;
    if (name == "float") return v.kind == Value::Kind::kFloat;
    if (name == "number") return v.is_number();
    if (name == "string") return v.kind == Value::Kind::kString;
    if (name == "mapping") return v.kind == Value::Kind::kDict;
    if (name == "iterable")
      return v.kind == Value::Kind::kString || v.kind == Value::Kind::kList || v.kind == Value::Kind::kDict ||
             v.kind == Value::Kind::kUndefined;
    if (name == "sequence") return v.kind == Value::Kind::kString || v.kind == Value::Kind::kList || v.kind == Value::Kind::kDict;
    if (name == "callable") return v.kind == Value::Kind::kCallable;
    if (name == "lower" || name == "upper") {
      const std::string s = to_str(v);
      return name == "lower" ? lowercase(s) == s && uppercase(s) != s : uppercase(s) == s && lowercase(s) != s;
    }
    if (name == "even" || name == "odd") {
      if (!is_intlike(v)) raise(line, "test '" + name + "' needs an integer");
      return (as_int(v) % 2 == 0) == (name == "even");
    }
    if (name == "divisibleby") {
      const Value& d = one();
      if (!is_intlike(v) || !is_intlike(d) || as_int(d) == 0) raise(line, "divisibleby needs integers and a non-zero divisor");
      return as_int(v) % as_int(d) == 0;
    }
    if (name == "sameas") {
      const Value& o = one();
      if (v.kind != o.kind) return false;
      if (v.kind == Value::Kind::kNone || v.kind == Value::Kind::kUndefined) return true;
      if (v.kind == Value::Kind::kBool) return v.b == o.b;
      return equals(v, o) && (v.list == o.list && v.dict == o.dict && v.fn == o.fn);
    }
    if (name == "in") return contains(one(), v, line);
    if (name == "eq" || name == "equalto" || name == "==") return equals(v, one());
    if (name == "ne" || name == "!=") return !equals(v, one());
    const int c = [&] {
      try {
        return compare(v, one());
      } catch (const Error& err) {
        raise(line, err.what());
      }
    }();
    if (name == "lt" || name == "lessthan" || name == "<") return c < 0;
    if (name == "le" || name == "<=") return c <= 0;
    if (name == "gt" || name == "greaterthan" || name == ">") return c > 0;
    if (name == "ge" || name == ">=") return c >= 0;
    raise(line, "unknown test '" + name + "'");
  }

  bool test(const Expr& e) {
    const Value v = eval(*e.items[0]);
    std::vector<Value> args;
    for (const auto& x : e.args) args.push_back(eval(*x));
    return run_test(e.name, v, args, e.line);
  }

  // ---- filters -------------------------------------------------------------------------------
  Value filter(const Expr& e) {
    const Value v = eval(*e.items[0]);
    const Args a = eval_args(e);
    return apply_filter(e.name, v, a, e.line);
  }

  // select/reject(test, args...) and selectattr/rejectattr(attr, test, args...).
  Value select(const Value& v, const Args& a, bool by_attr, bool keep_if, int line) {
    std::size_t k = 0;
    std::string attr;
    if (by_attr) {
      if (a.positional.empty() || a.positional[0].kind != Value::Kind::kString) raise(line, "selectattr/rejectattr take an attribute name");
      attr = a.positional[0].s;
      k = 1;
    }
    std::string test_name;
    if (k < a.positional.size()) {
      if (a.positional[k].kind != Value::Kind::kString) raise(line, "the test must be named by a string");
      test_name = a.positional[k].s;
      if (!known_test(test_name)) raise(line, "unsupported test '" + test_name + "'");
      ++k;
    }
    const std::vector<Value> targs(a.positional.begin() + static_cast<std::ptrdiff_t>(std::min(k, a.positional.size())), a.positional.end());
    List out;
    for (const auto& x : iterate(v, line)) {
      const Value probe = by_attr ? attr_path(x, attr, line) : x;
      const bool pass = test_name.empty() ? truthy(probe) : run_test(test_name, probe, targs, line);
      if (pass == keep_if) out.push_back(x);
    }
    return Value::make_list(std::move(out));
  }

  // Jinja's attribute argument: "a.b" walks dicts; "0" indexes lists.
  Value attr_path(const Value& x, const std::string& path, int line) {
    Value cur = x;
    std::size_t start = 0;
    while (true) {
      const std::size_t dot = path.find('.', start);
      const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (cur.kind == Value::Kind::kUndefined) return cur;
      const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
      cur = digits ? item(cur, Value::integer(std::stoll(part)), line) : item(cur, Value::string(part), line);
      if (dot == std::string::npos) return cur;
      start = dot + 1;
    }
  }

  std::vector<Value> sorted(std::vector<Value> items, bool reverse, bool case_sensitive, const std::string& attr, int line) {
    auto key = [&](const Value& x) {
      Value k = attr.empty() ? x : attr_path(x, attr, line);
      if (!case_sensitive && k.kind == Value::Kind::kString) k = Value::string(lowercase(k.s));
      return k;
    };
    try {
      std::stable_sort(items.begin(), items.end(), [&](const Value& p, const Value& q) {
        return reverse ? compare(key(q), key(p)) < 0 : compare(key(p), key(q)) < 0;
      });
    } catch (const Error& err) {
      raise(line, err.what());
    }
    return items;
  }

  Value apply_filter(const std::string& name, const Value& v, const Args& a, int line) {
    if (name == "safe") return v;
    if (name == "string") return Value::string(to_str(v));
    if (name == "trim") {
      const Value* c = arg(a, 0, "chars");
      const bool have = c != nullptr && c->kind != Value::Kind::kNone;
      std::string chars = have ? to_str(*c) : std::string();
      return Value::string(strip(to_str(v), true, true, have ? &chars : nullptr));
    }
    if (name == "upper") return Value::string(uppercase(to_str(v)));
    if (name == "lower") return Value::string(lowercase(to_str(v)));
    if (name == "capitalize") return Value::string(capitalize(to_str(v)));
    if (name == "title") return Value::string(title_case(to_str(v)));
    if (name == "replace") {
      const Value* from = arg(a, 0, "old");
      const Value* to = arg(a, 1, "new");
      if (!from || !to) raise(line, "replace takes old and new");
      return bounded(replace_all(to_str(v), to_str(*from), to_str(*to), int_arg(a, 2, "count", line, -1)), line);
    }
    if (name == "length" || name == "count") return Value::integer(length_of(v, line));
    if (name == "wordcount") return Value::integer(static_cast<std::int64_t>(split(to_str(v), nullptr, -1, false, line).size()));
    if (name == "default" || name == "d") {
      const Value* dflt = arg(a, 0, "default_value");
      const Value* boolean = arg(a, 1, "boolean");
      const bool use = v.kind == Value::Kind::kUndefined || (boolean && truthy(*boolean) && !truthy(v));
      return use ? (dflt ? *dflt : Value::string("")) : v;
    }
    if (name == "tojson") {
      // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
      const Value* ascii = arg(a, 0, "ensure_ascii");
      const std::int64_t indent = int_arg(a, 1, "indent", line, -1);
      const Value* separators = arg(a, 2, "separators");
      if (separators && separators->kind != Value::Kind::kNone) raise(line, "tojson: separators= is not supported in chat templates");
      const Value* sort = arg(a, 3, "sort_keys");
      try {
        return Value::string(to_json(v, static_cast<int>(std::min<std::int64_t>(indent, 64)), sort && truthy(*sort),
                                     ascii && truthy(*ascii)));
      } catch (const Error& err) {
        raise(line, err.what());
      }
    }
    if (name == "join") {
      const std::string sep = str_arg(a, 0, "d", line);
      const Value* attr = arg(a, 1, "attribute");
      std::string out;
      bool first = true;
      for (const auto& x : iterate(v, line)) {
        out += (first ? "" : sep) + to_str(attr ? attr_path(x, to_str(*attr), line) : x);
        first = false;
        if (out.size() > kMaxOutput) raise(line, "a string longer than 64 MiB");
      }
      return Value::string(std::move(out));
    }
    if (name == "selectattr" || name == "rejectattr") return select(v, a, true, name == "selectattr", line);
    if (name == "select" || name == "reject") return select(v, a, false, name == "select", line);
    if (name == "map") {
      List out;
      const Value* attr = arg(a, 99, "attribute");
      if (attr) {
        const Value* dflt = arg(a, 99, "default");
        for (const auto& x : iterate(v, line)) {
          Value y = attr_path(x, to_str(*attr), line);
          out.push_back(y.kind == Value::Kind::kUndefined && dflt ? *dflt : y);
        }
        return Value::make_list(std::move(out));
      }
      if (a.positional.empty() || a.positional[0].kind != Value::Kind::kString) raise(line, "map takes a filter name or attribute=");
      const std::string f = a.positional[0].s;
      if (!known_filter(f)) raise(line, "unsupported filter '" + f + "'");
      Args rest;
      rest.positional.assign(a.positional.begin() + 1, a.positional.end());
      rest.keyword = a.keyword;
      for (const auto& x : iterate(v, line)) out.push_back(apply_filter(f, x, rest, line));
      return Value::make_list(std::move(out));
    }
    if (name == "items") {
      if (v.kind == Value::Kind::kUndefined) return Value::make_list({});
      if (v.kind != Value::Kind::kDict) raise(line, "items: can only get item pairs from a mapping");
      return method(v, "items", {}, line);
    }
    if (name == "list") return Value::make_list(iterate(v, line));
    if (name == "first" || name == "last") {
      const std::vector<Value> items = iterate(v, line);
      if (items.empty()) return Value::undefined("the " + name + " item of an empty sequence");
      return name == "first" ? items.front() : items.back();
    }
    if (name == "reverse") {
      if (v.kind == Value::Kind::kString) {
        std::u32string u = u32(v.s);
        std::reverse(u.begin(), u.end());
        return Value::string(encode_utf8(u));
      }
      std::vector<Value> items = iterate(v, line);
      std::reverse(items.begin(), items.end());
      return Value::make_list(std::move(items));
    }
    if (name == "sort") {
      const Value* rev = arg(a, 0, "reverse");
      const Value* cs = arg(a, 1, "case_sensitive");
      const Value* attr = arg(a, 2, "attribute");
      return Value::make_list(sorted(iterate(v, line), rev && truthy(*rev), cs && truthy(*cs), attr ? to_str(*attr) : "", line));
    }
    if (name == "unique") {
      const Value* cs = arg(a, 0, "case_sensitive");
      const Value* attr = arg(a, 1, "attribute");
      List out;
      std::vector<Value> seen;
      for (const auto& x : iterate(v, line)) {
        Value k = attr ? attr_path(x, to_str(*attr), line) : x;
        if (!(cs && truthy(*cs)) && k.kind == Value::Kind::kString) k = Value::string(lowercase(k.s));
        if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) continue;
        seen.push_back(k);
        out.push_back(x);
      }
      return Value::make_list(std::move(out));
    }
    if (name == "min" || name == "max") {
      const Value* cs = arg(a, 0, "case_sensitive");
      const Value* attr = arg(a, 1, "attribute");
      std::vector<Value> s = sorted(iterate(v, line), false, cs && truthy(*cs), attr ? to_str(*attr) : "", line);
      if (s.empty()) return Value::undefined("the " + name + " of an empty sequence");
      return name == "min" ? s.front() : s.back();
    }
    if (name == "sum") {
      const Value* attr = arg(a, 0, "attribute");
      const Value* start = arg(a, 1, "start");
      Value acc = start ? *start : Value::integer(0);
      for (const auto& x : iterate(v, line)) {
        const Value y = attr ? attr_path(x, to_str(*attr), line) : x;
        if (!acc.is_number() || !y.is_number()) raise(line, "sum: unsupported operand types");
        if (is_intlike(acc) && is_intlike(y)) {
          acc = Value::integer(checked(kAdd, as_int(acc), as_int(y), line));
        } else {
          acc = Value::real(as_double(acc) + as_double(y));
        }
      }
      return acc;
    }
    if (name == "abs") {
      if (is_intlike(v)) {
        if (as_int(v) == INT64_MIN) raise(line, "integer overflow");
        return Value::integer(std::abs(as_int(v)));
      }
      if (v.kind == Value::Kind::kFloat) return Value::real(std::fabs(v.f));
      raise(line, std::string("bad operand type for abs(): '") + type_name(v) + "'");
    }
    if (name == "round") {
      const std::int64_t precision = int_arg(a, 0, "precision", line, 0);
      const std::string how = str_arg(a, 1, "method", line, "common");
      if (!v.is_number()) raise(line, "round needs a number");
      const double scale = std::pow(10.0, static_cast<double>(precision));
      const double x = as_double(v) * scale;
      double r;
      if (how == "common") {
        r = std::round(x);
      } else if (how == "ceil") {
        r = std::ceil(x);
      } else if (how == "floor") {
        r = std::floor(x);
      } else {
        raise(line, "round: method must be common, ceil or floor");
      }
      return Value::real(r / scale);
    }
    if (name == "int" || name == "float") {
      const Value* dflt = arg(a, 0, "default");
      const Value fallback = dflt ? *dflt : (name == "int" ? Value::integer(0) : Value::real(0));
      if (v.is_number()) return name == "int" ? Value::integer(is_intlike(v) ? as_int(v) : static_cast<std::int64_t>(v.f)) : Value::real(as_double(v));
      if (v.kind == Value::Kind::kString) {
        const std::string t = strip(v.s, true, true);
        char* end = nullptr;
        errno = 0;
        if (name == "int") {
          const long long x = std::strtoll(t.c_str(), &end, 10);
          if (!t.empty() && end == t.c_str() + t.size() && errno == 0) return Value::integer(x);
          const double d = std::strtod(t.c_str(), &end);
          if (!t.empty() && end == t.c_str() + t.size() && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value::integer(static_cast<std::int64_t>(d));
        } else {
          const double d = std::strtod(t.c_str(), &end);
          if (!t.empty() && end == t.c_str() + t.size()) return Value::real(d);
        }
      }
      return fallback;
    }
    raise(line, "unknown filter '" + name + "'");
  }

  const RenderEnv& env_;
  ScopeChain scopes_;
  int depth_ = 0;
  std::int64_t steps_ = 0;
};

}  // namespace

std::string render(const Program& program, const Dict& variables, const RenderEnv& env, const std::string& where) {
  Renderer r(env);
  try {
    return r.run(program, variables);
  } catch (const EvalError& e) {
    if (e.line > 0) fail(where, ":", e.line, ": ", e.message);
    fail(where, ": ", e.message);
  }
}

}  // namespace lethe::text::jinja

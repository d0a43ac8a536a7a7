// Lexer and parser of lethe's Jinja subset, following Jinja2 3.1's grammar and its lexer's
// whitespace rules under transformers' settings (trim_blocks, lstrip_blocks): the rendering of a
// chat template depends on every one of them, byte for byte.
#include <algorithm>
#include <cstring>
#include <set>

#include "lethe/core/error.h"
#include "text/jinja/ast.h"
#include "text/unicode.h"

namespace lethe::text::jinja {

namespace {

constexpr int kMaxDepth = 200;  // nesting of statements and expressions

const std::set<std::string>& filters() {
  static const std::set<std::string> s = {
      "abs",     "capitalize", "count",  "d",          "default", "first",     "float", "int",  "items",
      "join",    "last",       "length", "list",       "lower",   "map",       "max",   "min",  "reject",
      "rejectattr", "replace", "reverse", "round",     "safe",    "select",    "selectattr", "sort",
      "string",  "sum",        "title",  "tojson",     "trim",    "unique",    "upper", "wordcount"};
  return s;
}
const std::set<std::string>& tests() {
  static const std::set<std::string> s = {
      "boolean", "callable", "defined",  "divisibleby", "eq", "equalto", "even", "false", "float",
      "ge",      "gt",       "greaterthan", "in",       "integer", "iterable", "le", "lessthan", "lower",
      "lt",      "mapping",  "ne",       "none",        "number",  "odd",  "sameas", "sequence", "string",
      "true",    "undefined", "upper", "==", "!=", "<", "<=", ">", ">="};
  return s;
}
const std::set<std::string>& methods() {
  static const std::set<std::string> s = {
      // str
      "startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "upper", "lower",
      "title", "capitalize", "replace", "find", "rfind", "count", "isdigit", "isalpha", "isspace", "isupper",
      "islower", "join",
      // dict
      "items", "keys", "values", "get"};
  return s;
}
const std::set<std::string>& functions() {
  static const std::set<std::string> s = {"range", "namespace", "dict", "raise_exception", "strftime_now"};
  return s;
}

// Jinja2 normalises the source's line endings (str.splitlines, joined by "\n"), which also drops
// one trailing newline (keep_trailing_newline is off).
std::string normalize_newlines(const std::string& src) {
  std::string out;
  out.reserve(src.size());
  auto is_break3 = [&](std::size_t i) -> std::size_t {  // UTF-8 line breaks: U+0085, U+2028, U+2029
    const unsigned char c = static_cast<unsigned char>(src[i]);
    if (c == 0xC2 && i + 1 < src.size() && static_cast<unsigned char>(src[i + 1]) == 0x85) return 2;
    if (c == 0xE2 && i + 2 < src.size() && static_cast<unsigned char>(src[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(src[i + 2]) == 0xA8 || static_cast<unsigned char>(src[i + 2]) == 0xA9))
      return 3;
    return 0;
  };
  for (std::size_t i = 0; i < src.size();) {
    const char c = src[i];
    if (c == '\r') {
      out += '\n';
      i += (i + 1 < src.size() && src[i + 1] == '\n') ? 2 : 1;
    } else if (c == '\n' || c == '\v' || c == '\f' || c == '\x1c' || c == '\x1d' || c == '\x1e') {
      out += '\n';
      ++i;
    } else if (const std::size_t n = is_break3(i)) {
      out += '\n';
      i += n;
    } else {
      out += c;
      ++i;
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool all_space(std::string_view s) {
  if (s.empty()) return false;
  for (char32_t c : decode_utf8(s))
    if (!is_space(c)) return false;
  return true;
}

struct Token {
  enum class Type { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };
  Type type;
  std::string text;
  int line = 0;
  std::int64_t i = 0;
  double f = 0;
};

class Lexer {
 public:
  Lexer(const std::string& source, const std::string& where) : src_(normalize_newlines(source)), where_(where) {}

  std::vector<Token> run() {
    bool line_starting = true;
    std::size_t pos = 0;
    while (pos < src_.size()) {
      std::size_t k = pos;
      while (true) {
        k = src_.find('{', k);
        if (k == std::string::npos || k + 1 >= src_.size()) {
          k = std::string::npos;
          break;
        }
        const char o = src_[k + 1];
        if (o == '{' || o == '%' || o == '#') break;
        ++k;
      }
      if (k == std::string::npos) {
        text(src_.substr(pos), pos);
        break;
      }
      std::string data = src_.substr(pos, k - pos);
      const char open = src_[k + 1];
      const char sign = k + 2 < src_.size() && (src_[k + 2] == '-' || src_[k + 2] == '+') ? src_[k + 2] : 0;
      if (sign == '-') {
        data = strip(data, false, true);
      } else if (sign != '+' && open != '{') {  // lstrip_blocks: not for {{ }}
        const std::size_t nl = data.rfind('\n');
        const std::size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && all_space(std::string_view(data).substr(l_pos))) data.resize(l_pos);
      }
      text(data, pos);
      line_ = line_at(k);
      std::size_t p = k + 2 + (sign ? 1 : 0);
      if (open == '#') {
        const std::size_t e = src_.find("#}", p);
        LETHE_CHECK(e != std::string::npos, where_, ":", line_, ": unclosed comment");
        p = e + 2;
        const char end_sign = e > k + 2 && (src_[e - 1] == '-' || src_[e - 1] == '+') ? src_[e - 1] : 0;
        pos = after_end(p, end_sign, /*trim=*/true);
      } else {
        const bool block = open == '%';
        push(block ? Token::Type::kBlockBegin : Token::Type::kVarBegin, block ? "{%" : "{{");
        pos = tag(p, block);
      }
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    line_ = line_at(src_.size());
    push(Token::Type::kEof, "end of template");
    return std::move(tokens_);
  }

 private:
  int line_at(std::size_t p) {
    while (counted_ < p && counted_ < src_.size()) {
      if (src_[counted_] == '\n') ++counted_line_;
      ++counted_;
    }
    return counted_line_;
  }

  void text(const std::string& s, std::size_t at) {
    if (s.empty()) return;
    line_ = line_at(at);
    push(Token::Type::kText, s);
  }

  void push(Token::Type t, std::string s) {
    Token tok;
    tok.type = t;
    tok.text = std::move(s);
    tok.line = line_;
    tokens_.push_back(std::move(tok));
  }

  // After a tag's closing characters at p: "-" strips every following whitespace, otherwise
  // trim_blocks drops one newline after a statement or comment ("+" keeps it).
  std::size_t after_end(std::size_t p, char end_sign, bool trim) {
    if (end_sign == '-') {
      const std::u32string rest = decode_utf8(std::string_view(src_).substr(p));
      std::size_t n = 0;
      while (n < rest.size() && is_space(rest[n])) ++n;
      return p + encode_utf8(std::u32string_view(rest).substr(0, n)).size();
    }
    if (trim && end_sign != '+' && p < src_.size() && src_[p] == '\n') return p + 1;
    return p;
  }

  // Tokens of one {% %} or {{ }} up to its end; returns the position after it.
  std::size_t tag(std::size_t p, bool block) {
    int depth = 0;  // open brackets: an end marker inside them is an operator ("{{ {'a': {}} }}")
    const char* end = block ? "%}" : "}}";
    while (true) {
      while (p < src_.size() && (src_[p] == ' ' || src_[p] == '\t' || src_[p] == '\n' || src_[p] == '\r')) ++p;
      line_ = line_at(p);
      LETHE_CHECK(p < src_.size(), where_, ":", line_, ": unclosed ", block ? "'{%'" : "'{{'");
      if (depth == 0) {
        for (const char s : {'-', '+', '\0'}) {
          if (s == '+' && !block) continue;
          const std::size_t q = s ? p + 1 : p;
          if ((s == 0 || src_[p] == s) && src_.compare(q, 2, end) == 0) {
            push(block ? Token::Type::kBlockEnd : Token::Type::kVarEnd, end);
            return after_end(q + 2, s, block);
          }
        }
      }
      const char c = src_[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        std::size_t q = p;
        while (q < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[q])) || src_[q] == '_')) ++q;
        push(Token::Type::kName, src_.substr(p, q - p));
        p = q;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        p = number(p);
      } else if (c == '\'' || c == '"') {
        p = string_literal(p);
      } else {
        static const char* ops[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                    "=",  ".",  ",",  ":",  "|",  "(",  ")", "[", "]", "{", "}", ";"};
        const char* hit = nullptr;
        for (const char* op : ops)
          if (src_.compare(p, std::strlen(op), op) == 0) {
            hit = op;
            break;
          }
        LETHE_CHECK(hit != nullptr, where_, ":", line_, ": unexpected character '", std::string(1, c), "' in a tag");
        const std::string op = hit;
        if (op == "(" || op == "[" || op == "{") ++depth;
        if (op == ")" || op == "]" || op == "}") {
          LETHE_CHECK(depth > 0, where_, ":", line_, ": unexpected '", op, "'");
          --depth;
        }
        push(Token::Type::kOp, op);
        p += op.size();
      }
    }
  }

  std::size_t number(std::size_t p) {
    std::size_t q = p;
    auto digits = [&] {
      while (q < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[q])) || src_[q] == '_')) ++q;
    };
    digits();
    bool is_float = false;
    if (q + 1 < src_.size() && src_[q] == '.' && std::isdigit(static_cast<unsigned char>(src_[q + 1]))) {
      is_float = true;
      ++q;
      digits();
    }
    if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
      std::size_t r = q + 1;
      if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
      if (r < src_.size() && std::isdigit(static_cast<unsigned char>(src_[r]))) {
        is_float = true;
        q = r;
        digits();
      }
    }
    std::string lit = src_.substr(p, q - p);
    lit.erase(std::remove(lit.begin(), lit.end(), '_'), lit.end());
    Token t;
    t.line = line_;
    t.text = lit;
    if (is_float) {
      t.type = Token::Type::kFloat;
      t.f = std::strtod(lit.c_str(), nullptr);
    } else {
      t.type = Token::Type::kInt;
      errno = 0;
      t.i = std::strtoll(lit.c_str(), nullptr, 10);
      LETHE_CHECK(errno == 0, where_, ":", line_, ": integer ", lit, " is out of range");
    }
    tokens_.push_back(std::move(t));
    return q;
  }

  // A quoted literal with Python's escapes (Jinja decodes them as "unicode-escape").
  std::size_t string_literal(std::size_t p) {
    const char q = src_[p];
    std::string out;
    std::size_t i = p + 1;
    auto hex = [&](std::size_t n) -> char32_t {
      LETHE_CHECK(i + n <= src_.size(), where_, ":", line_, ": truncated escape in a string");
      char32_t v = 0;
      for (std::size_t k = 0; k < n; ++k) {
        const char h = src_[i + k];
        LETHE_CHECK(std::isxdigit(static_cast<unsigned char>(h)), where_, ":", line_, ": bad escape in a string");
        v = v * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
      }
      i += n;
      return v;
    };
    while (true) {
      LETHE_CHECK(i < src_.size(), where_, ":", line_, ": unterminated string");
      const char c = src_[i];
      if (c == q) break;
      if (c != '\\') {
        out += c;
        ++i;
        continue;
      }
      LETHE_CHECK(i + 1 < src_.size(), where_, ":", line_, ": unterminated string");
      const char e = src_[i + 1];
      i += 2;
      switch (e) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': utf8_append(out, hex(2)); break;
        case 'u': utf8_append(out, hex(4)); break;
        case 'U': {
          const char32_t v = hex(8);
          LETHE_CHECK(v <= 0x10FFFF, where_, ":", line_, ": \\U escape out of range");
          utf8_append(out, v);
          break;
        }
        case 'N': fail(where_, ":", line_, ": \\N{...} escapes are not supported in chat templates");
        default:
          if (e >= '0' && e <= '7') {
            char32_t v = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k, ++i) v = v * 8 + static_cast<char32_t>(src_[i] - '0');
            utf8_append(out, v);
          } else {  // Python keeps an unknown escape as written
            out += '\\';
            out += e;
          }
      }
    }
    push(Token::Type::kString, out);
    return i + 1;
  }

  std::string src_;
  const std::string& where_;
  std::vector<Token> tokens_;
  int line_ = 1;
  std::size_t counted_ = 0;
  int counted_line_ = 1;
};

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& where) : t_(std::move(tokens)), where_(where) {}

  Program run() {
    Program p;
    std::string end;
    p.body = subparse({}, &end, 1);
    for (const auto& [name, line] : called_) {
      LETHE_CHECK(known_function(name) || macros_.count(name) || name == "caller", where_, ":", line,
                  ": unknown function '", name, "' (lethe's chat templates know range, namespace, dict, "
                  "raise_exception, strftime_now and the template's own macros)");
    }
    return p;
  }

 private:
  [[noreturn]] void error(const std::string& msg, int line = -1) const {
    fail(where_, ":", line < 0 ? cur().line : line, ": ", msg);
  }
  const Token& cur() const { return t_[pos_]; }
  const Token& peek(std::size_t n = 1) const { return t_[std::min(pos_ + n, t_.size() - 1)]; }
  bool is_op(const char* op) const { return cur().type == Token::Type::kOp && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Token::Type::kName && cur().text == n; }
  void advance() {
    if (pos_ + 1 < t_.size()) ++pos_;
  }
  std::string describe(const Token& t) const {
    switch (t.type) {
      case Token::Type::kEof: return "the end of the template";
      case Token::Type::kString: return "a string";
      case Token::Type::kBlockEnd: return "'%}'";
      case Token::Type::kVarEnd: return "'}}'";
      default: return "'" + t.text + "'";
    }
  }
  void expect_op(const char* op) {
    if (!is_op(op)) error(std::string("expected '") + op + "', found " + describe(cur()));
    advance();
  }
  void expect(Token::Type type, const char* what) {
    if (cur().type != type) error(std::string("expected ") + what + ", found " + describe(cur()));
    advance();
  }
  std::string expect_name() {
    if (cur().type != Token::Type::kName) error("expected a name, found " + describe(cur()));
    std::string n = cur().text;
    advance();
    return n;
  }

  struct DepthGuard {
    int& d;
    DepthGuard(int& depth, const Parser& p) : d(depth) {
      if (++d > kMaxDepth) p.error("the template nests deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    ~DepthGuard() { --d; }
  };

  // Statements until one of `ends` ({% endif %} ...): that name goes to *end, its tag still
  // open (the caller reads the rest of it).
  Body subparse(const std::set<std::string>& ends, std::string* end, int open_line) {
    DepthGuard g(depth_, *this);
    Body body;
    while (true) {
      const Token& tk = cur();
      if (tk.type == Token::Type::kEof) {
        if (!ends.empty()) {
          const auto closing = std::find_if(ends.begin(), ends.end(), [](const std::string& e) { return e.rfind("end", 0) == 0; });
          error("missing '" + (closing == ends.end() ? *ends.begin() : *closing) + "' for the statement opened on line " +
                std::to_string(open_line));
        }
        return body;
      }
      if (tk.type == Token::Type::kText) {
        auto n = node(Node::Kind::kText);
        n->text = tk.text;
        body.push_back(std::move(n));
        advance();
      } else if (tk.type == Token::Type::kVarBegin) {
        advance();
        auto n = node(Node::Kind::kOutput);
        n->expr = parse_tuple();
        expect(Token::Type::kVarEnd, "'}}'");
        body.push_back(std::move(n));
      } else if (tk.type == Token::Type::kBlockBegin) {
        advance();
        if (cur().type != Token::Type::kName) error("expected a statement name after '{%', found " + describe(cur()));
        const std::string name = cur().text;
        if (ends.count(name)) {
          *end = name;
          advance();
          return body;
        }
        body.push_back(statement());
      } else {
        error("unexpected " + describe(tk));
      }
    }
  }

  std::unique_ptr<Node> node(Node::Kind k) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->line = cur().line;
    return n;
  }

  std::unique_ptr<Node> statement() {
    const std::string name = cur().text;
    const int line = cur().line;
    advance();
    std::string end;
    if (name == "if") {
      auto n = node(Node::Kind::kIf);
      n->line = line;
      n->conds.push_back(parse_expression());
      expect(Token::Type::kBlockEnd, "'%}'");
      while (true) {
        n->bodies.push_back(subparse({"elif", "else", "endif"}, &end, line));
        if (end == "elif") {
          n->conds.push_back(parse_expression());
          expect(Token::Type::kBlockEnd, "'%}'");
        } else if (end == "else") {
          expect(Token::Type::kBlockEnd, "'%}'");
          n->else_body = subparse({"endif"}, &end, line);
          break;
        } else {
          break;
        }
      }
      expect(Token::Type::kBlockEnd, "'%}'");
      return n;
    }
    if (name == "for") {
      auto n = node(Node::Kind::kFor);
      n->line = line;
      n->targets = assign_targets();
      if (!is_name("in")) error("expected 'in' in the for statement, found " + describe(cur()));
      advance();
      n->expr = parse_tuple(/*with_cond=*/false);
      if (is_name("if")) {
        advance();
        n->cond = parse_expression();
      }
      if (is_name("recursive")) error("recursive for loops are not supported in chat templates");
      expect(Token::Type::kBlockEnd, "'%}'");
      ++loops_;
      n->body = subparse({"endfor", "else"}, &end, line);
      --loops_;
      if (end == "else") {
        expect(Token::Type::kBlockEnd, "'%}'");
        n->else_body = subparse({"endfor"}, &end, line);
      }
      expect(Token::Type::kBlockEnd, "'%}'");
      return n;
    }
    if (name == "set") {
      auto n = node(Node::Kind::kSet);
      n->line = line;
      std::string first = expect_name();
      if (is_op(".")) {
        advance();
        n->attr = expect_name();
        n->targets = {first};
      } else {
        n->targets = {first};
        while (is_op(",")) {
          advance();
          n->targets.push_back(expect_name());
        }
      }
      if (is_op("=")) {
        advance();
        n->expr = parse_tuple();
        expect(Token::Type::kBlockEnd, "'%}'");
        return n;
      }
      if (n->targets.size() != 1 || !n->attr.empty() || cur().type != Token::Type::kBlockEnd)
        error("expected '=' in the set statement, found " + describe(cur()));
      advance();
      n->kind = Node::Kind::kSetBlock;
      n->body = subparse({"endset"}, &end, line);
      expect(Token::Type::kBlockEnd, "'%}'");
      return n;
    }
    if (name == "macro") {
      auto n = node(Node::Kind::kMacro);
      n->line = line;
      n->name = expect_name();
      macros_.insert(n->name);
      n->params = params();
      expect(Token::Type::kBlockEnd, "'%}'");
      n->body = subparse({"endmacro"}, &end, line);
      if (cur().type == Token::Type::kName) advance();  // {% endmacro name %}
      expect(Token::Type::kBlockEnd, "'%}'");
      return n;
    }
    if (name == "call") {
      auto n = node(Node::Kind::kCallBlock);
      n->line = line;
      if (is_op("(")) n->params = params();
      n->expr = parse_expression();
      if (n->expr->kind != Expr::Kind::kCall) error("the call statement needs a macro call", line);
      expect(Token::Type::kBlockEnd, "'%}'");
      n->body = subparse({"endcall"}, &end, line);
      expect(Token::Type::kBlockEnd, "'%}'");
      return n;
    }
    if (name == "break" || name == "continue") {
      if (loops_ == 0) error("'" + name + "' outside a for loop", line);
      auto n = node(name == "break" ? Node::Kind::kBreak : Node::Kind::kContinue);
      n->line = line;
      expect(Token::Type::kBlockEnd, "'%}'");
      return n;
    }
    if (name == "generation") {
      auto n = node(Node::Kind::kGeneration);
      n->line = line;
      expect(Token::Type::kBlockEnd, "'%}'");
      n->body = subparse({"endgeneration"}, &end, line);
      expect(Token::Type::kBlockEnd, "'%}'");
      return n;
    }
    static const std::set<std::string> unsupported = {"filter", "with",  "include", "import", "from",
                                                      "extends", "block", "raw", "autoescape", "do", "trans"};
    if (unsupported.count(name)) error("the '" + name + "' statement is not supported in chat templates", line);
    if (name.rfind("end", 0) == 0 || name == "elif" || name == "else") error("unexpected '" + name + "'", line);
    error("unknown statement '" + name + "'", line);
  }

  std::vector<std::string> assign_targets() {
    std::vector<std::string> names;
    const bool paren = is_op("(");
    if (paren) advance();
    names.push_back(expect_name());
    while (is_op(",")) {
      advance();
      if (paren && is_op(")")) break;
      names.push_back(expect_name());
    }
    if (paren) expect_op(")");
    return names;
  }

  std::vector<MacroParam> params() {
    std::vector<MacroParam> out;
    expect_op("(");
    while (!is_op(")")) {
      if (!out.empty()) expect_op(",");
      if (is_op(")")) break;
      MacroParam p;
      p.name = expect_name();
      if (is_op("=")) {
        advance();
        p.default_value = parse_expression();
      }
      out.push_back(std::move(p));
    }
    advance();
    return out;
  }

  ExprPtr expr(Expr::Kind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }
  ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b, int line) {
    auto e = expr(Expr::Kind::kBinary, line);
    e->name = op;
    e->items.push_back(std::move(a));
    e->items.push_back(std::move(b));
    return e;
  }

  // a, b, c without brackets is a tuple (a list here); one expression is itself.
  ExprPtr parse_tuple(bool with_cond = true, bool explicit_parens = false) {
    const int line = cur().line;
    std::vector<ExprPtr> items;
    bool comma = false;
    while (true) {
      if (!items.empty()) {
        if (!is_op(",")) break;
        advance();
        comma = true;
      }
      if (cur().type == Token::Type::kVarEnd || cur().type == Token::Type::kBlockEnd || is_op(")") ||
          (!items.empty() && is_name("if")) || (!items.empty() && is_name("in")))
        break;
      items.push_back(with_cond ? parse_expression() : parse_or());
    }
    if (items.empty() && !explicit_parens) error("expected an expression, found " + describe(cur()));
    if (items.size() == 1 && !comma) return std::move(items[0]);
    auto e = expr(Expr::Kind::kList, line);
    e->items = std::move(items);
    return e;
  }

  ExprPtr parse_expression() {
    DepthGuard g(depth_, *this);
    ExprPtr e = parse_or();
    while (is_name("if")) {
      const int line = cur().line;
      advance();
      auto c = expr(Expr::Kind::kCond, line);
      c->items.push_back(parse_or());
      c->items.push_back(std::move(e));
      if (is_name("else")) {
        advance();
        c->items.push_back(parse_expression());
      } else {
        c->items.push_back(nullptr);
      }
      e = std::move(c);
    }
    return e;
  }

  // One left-associative level of the grammar: operands from `next` joined by any of `ops`
  // (operator tokens, or the names "and" / "or").
  template <typename Next>
  ExprPtr left_assoc(Next next, std::initializer_list<const char*> ops) {
    ExprPtr e = next();
    while (true) {
      const char* hit = nullptr;
      for (const char* op : ops)
        if (is_op(op) || is_name(op)) hit = op;
      if (hit == nullptr) return e;
      const int line = cur().line;
      advance();
      e = binary(hit, std::move(e), next(), line);
    }
  }
  ExprPtr parse_or() { return left_assoc([this] { return parse_and(); }, {"or"}); }
  ExprPtr parse_and() { return left_assoc([this] { return parse_not(); }, {"and"}); }
  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard g(depth_, *this);
      auto e = expr(Expr::Kind::kUnary, cur().line);
      advance();
      e->name = "not";
      e->items.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr e = parse_math1();
    while (true) {
      const int line = cur().line;
      std::string op;
      if (cur().type == Token::Type::kOp &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().type == Token::Type::kName && peek().text == "in") {
        op = "not in";
        advance();
        advance();
      } else {
        return e;
      }
      e = binary(op, std::move(e), parse_math1(), line);
    }
  }
  // Jinja's precedence: + - below ~ below * / // % below **.
  ExprPtr parse_math1() { return left_assoc([this] { return parse_concat(); }, {"+", "-"}); }
  ExprPtr parse_concat() { return left_assoc([this] { return parse_math2(); }, {"~"}); }
  ExprPtr parse_math2() { return left_assoc([this] { return parse_pow(); }, {"*", "/", "//", "%"}); }
  ExprPtr parse_pow() { return left_assoc([this] { return parse_unary(true); }, {"**"}); }
  ExprPtr parse_unary(bool with_filter) {
    DepthGuard g(depth_, *this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = expr(Expr::Kind::kUnary, cur().line);
      e->name = cur().text;
      advance();
      e->items.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& tk = cur();
    const int line = tk.line;
    switch (tk.type) {
      case Token::Type::kName: {
        auto e = expr(Expr::Kind::kLiteral, line);
        if (tk.text == "true" || tk.text == "True") {
          e->value = Value::boolean(true);
        } else if (tk.text == "false" || tk.text == "False") {
          e->value = Value::boolean(false);
        } else if (tk.text == "none" || tk.text == "None") {
          e->value = Value::none();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = tk.text;
        }
        advance();
        return e;
      }
      case Token::Type::kString: {
        std::string s;
        while (cur().type == Token::Type::kString) {
          s += cur().text;
          advance();
        }
        auto e = expr(Expr::Kind::kLiteral, line);
        e->value = Value::string(std::move(s));
        return e;
      }
      case Token::Type::kInt:
      case Token::Type::kFloat: {
        auto e = expr(Expr::Kind::kLiteral, line);
        e->value = tk.type == Token::Type::kInt ? Value::integer(tk.i) : Value::real(tk.f);
        advance();
        return e;
      }
      case Token::Type::kOp:
        if (tk.text == "(") {
          advance();
          ExprPtr e = parse_tuple(true, true);
          expect_op(")");
          return e;
        }
        if (tk.text == "[") {
          advance();
          auto e = expr(Expr::Kind::kList, line);
          while (!is_op("]")) {
            if (!e->items.empty()) expect_op(",");
            if (is_op("]")) break;
            e->items.push_back(parse_expression());
          }
          advance();
          return e;
        }
        if (tk.text == "{") {
          advance();
          auto e = expr(Expr::Kind::kDict, line);
          while (!is_op("}")) {
            if (!e->keys.empty()) expect_op(",");
            if (is_op("}")) break;
            e->keys.push_back(parse_expression());
            expect_op(":");
            e->items.push_back(parse_expression());
          }
          advance();
          return e;
        }
        break;
      default: break;
    }
    error("unexpected " + describe(tk));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      const int line = cur().line;
      if (is_op(".")) {
        advance();
        if (cur().type == Token::Type::kInt) {
          auto item = expr(Expr::Kind::kItem, line);
          auto idx = expr(Expr::Kind::kLiteral, line);
          idx->value = Value::integer(cur().i);
          advance();
          item->items.push_back(std::move(e));
          item->items.push_back(std::move(idx));
          e = std::move(item);
          continue;
        }
        auto a = expr(Expr::Kind::kAttr, line);
        a->name = expect_name();
        a->items.push_back(std::move(e));
        e = std::move(a);
      } else if (is_op("[")) {
        advance();
        e = subscript(std::move(e), line);
      } else if (is_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr subscript(ExprPtr target, int line) {
    ExprPtr parts[3];
    bool slice = false;
    int part = 0;
    while (!is_op("]")) {
      if (is_op(":")) {
        slice = true;
        LETHE_CHECK(part < 2, where_, ":", line, ": a slice has at most three parts");
        ++part;
        advance();
        continue;
      }
      if (parts[part]) error("expected ']' or ':', found " + describe(cur()));
      parts[part] = parse_expression();
      if (is_op(",")) error("tuple subscripts are not supported in chat templates");
    }
    advance();
    if (!slice) {
      if (!parts[0]) error("an empty subscript", line);
      auto e = expr(Expr::Kind::kItem, line);
      e->items.push_back(std::move(target));
      e->items.push_back(std::move(parts[0]));
      return e;
    }
    auto e = expr(Expr::Kind::kSlice, line);
    e->items.push_back(std::move(target));
    for (auto& p : parts) e->items.push_back(std::move(p));
    return e;
  }

  void call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (!e.args.empty() || !e.kwargs.empty()) expect_op(",");
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) error("*args and **kwargs are not supported in chat templates");
      if (cur().type == Token::Type::kName && peek().type == Token::Type::kOp && peek().text == "=") {
        std::string k = cur().text;
        advance();
        advance();
        e.kwargs.emplace_back(std::move(k), parse_expression());
      } else {
        if (!e.kwargs.empty()) error("a positional argument after a keyword argument");
        e.args.push_back(parse_expression());
      }
    }
    advance();
  }

  ExprPtr call(ExprPtr callee) {
    auto e = expr(Expr::Kind::kCall, cur().line);
    if (callee->kind == Expr::Kind::kAttr) {
      if (!known_method(callee->name))
        error("unsupported method '" + callee->name + "' (see docs/chat-templates.md for the subset)", callee->line);
    } else if (callee->kind == Expr::Kind::kName) {
      called_.emplace_back(callee->name, callee->line);
    } else {
      error("only functions, macros and methods can be called", callee->line);
    }
    e->items.push_back(std::move(callee));
    call_args(*e);
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      const int line = cur().line;
      if (is_op("|")) {
        advance();
        auto f = expr(Expr::Kind::kFilter, line);
        f->name = expect_name();
        if (!known_filter(f->name)) error("unsupported filter '" + f->name + "' (see docs/chat-templates.md)", line);
        f->items.push_back(std::move(e));
        if (is_op("(")) call_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        advance();
        auto t = expr(Expr::Kind::kTest, line);
        if (is_name("not")) {
          t->negated = true;
          advance();
        }
        if (cur().type == Token::Type::kName) {
          t->name = expect_name();
        } else if (cur().type == Token::Type::kOp) {  // x is == y, x is >= 3
          t->name = cur().text;
          advance();
        } else {
          error("expected a test name after 'is', found " + describe(cur()));
        }
        if (!known_test(t->name)) error("unsupported test '" + t->name + "' (see docs/chat-templates.md)", line);
        t->items.push_back(std::move(e));
        if (is_op("(")) {
          call_args(*t);
        } else if ((cur().type == Token::Type::kName || cur().type == Token::Type::kString ||
                    cur().type == Token::Type::kInt || cur().type == Token::Type::kFloat || is_op("(") ||
                    is_op("[") || is_op("{")) &&
                   !(is_name("else") || is_name("or") || is_name("and"))) {
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else if (is_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  std::vector<Token> t_;
  const std::string& where_;
  std::size_t pos_ = 0;
  int depth_ = 0;
  int loops_ = 0;
  std::set<std::string> macros_;
  std::vector<std::pair<std::string, int>> called_;
};

}  // namespace

bool known_filter(const std::string& name) { return filters().count(name) > 0; }
bool known_test(const std::string& name) { return tests().count(name) > 0; }
bool known_method(const std::string& name) { return methods().count(name) > 0; }
bool known_function(const std::string& name) { return functions().count(name) > 0; }

Program parse(const std::string& source, const std::string& where) {
  Lexer lexer(source, where);
  Parser parser(lexer.run(), where);
  return parser.run();
}

}  // namespace lethe::text::jinja

// The parsed form of a template: expressions and statements of lethe's Jinja subset
// (docs/chat-templates.md lists it). Parsing checks every statement, filter, test, method and
// function name against the subset, so an unsupported construct fails at load, never at render.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "text/jinja/value.h"

namespace lethe::text::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,   // value
    kName,      // name
    kList,      // items
    kDict,      // keys[k] : items[k]
    kAttr,      // items[0] . name
    kItem,      // items[0] [ items[1] ]
    kSlice,     // items[0] [ items[1] : items[2] : items[3] ]  (null parts omitted)
    kCall,      // items[0] ( args, kwargs )
    kFilter,    // items[0] | name ( args, kwargs )
    kTest,      // items[0] is [not] name ( args )
    kUnary,     // op items[0]: "not", "-", "+"
    kBinary,    // items[0] op items[1]
    kCond,      // items[1] if items[0] else items[2] (items[2] null: undefined)
  };
  Kind kind;
  int line = 0;
  std::string name;  // names, attribute, filter/test/function, operator
  bool negated = false;
  Value value;
  std::vector<ExprPtr> items;
  std::vector<ExprPtr> keys;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Node;
using Body = std::vector<std::unique_ptr<Node>>;

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null: required
};

struct Node {
  enum class Kind {
    kText,        // text
    kOutput,      // {{ expr }}
    kIf,          // branches (conds[k] → bodies[k]), else_body
    kFor,         // for targets in expr [if cond]: body [else: else_body]
    kSet,         // set targets = expr  (target "ns.attr": namespace attribute)
    kSetBlock,    // set targets[0]: body captured
    kMacro,       // macro name(params): body
    kCallBlock,   // call(params) expr: body is caller()
    kBreak,
    kContinue,
    kGeneration,  // transformers' {% generation %}: renders its body
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<std::string> targets;
  std::string attr;  // kSet on a namespace: targets[0] . attr
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  Body body, else_body;
  std::string name;
  std::vector<MacroParam> params;
};

struct Program {
  Body body;
};

// Parses `source` with transformers' settings (trim_blocks, lstrip_blocks, loop controls).
// Errors name `where` and the line.
Program parse(const std::string& source, const std::string& where);

// What a rendering may call out to: strftime_now(format) (transformers: the local time now).
struct RenderEnv {
  std::function<std::string(const std::string& format)> strftime_now;
};

// Renders with `variables` as the template's globals. Runtime errors (raise_exception, an
// undefined value used as an object, a type error) name `where` and the line.
std::string render(const Program& program, const Dict& variables, const RenderEnv& env, const std::string& where);

// The names the subset knows, for the parser's checks and for docs.
bool known_filter(const std::string& name);
bool known_test(const std::string& name);
bool known_method(const std::string& name);
bool known_function(const std::string& name);

}  // namespace lethe::text::jinja

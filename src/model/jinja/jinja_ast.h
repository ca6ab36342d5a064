// Syntax tree of a parsed Jinja template: expressions and statements, each with its source position.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/jinja/jinja_lexer.h"
#include "model/jinja/jinja_value.h"

namespace mixserve::jinja {

/// A filter implementation: subject, then the filter's own arguments.
using FilterFn = Value (*)(Interpreter& in, const Value& subject, const CallArgs& args);
/// A test implementation (`x is name(args)`).
using TestFn = bool (*)(Interpreter& in, const Value& subject, const CallArgs& args);

/// Expression node kinds.
enum class ExprKind {
  kLiteral,     ///< `literal`
  kName,        ///< variable `name`
  kList,        ///< [children...]
  kTuple,       ///< (children...)
  kDict,        ///< {children[0]: children[1], ...}
  kGetAttr,     ///< children[0].name
  kGetItem,     ///< children[0][children[1]]
  kSlice,       ///< children[0][children[1]:children[2]:children[3]] (missing parts are null)
  kCall,        ///< children[0](children[1..], kwargs)
  kFilter,      ///< children[0] | name(children[1..], kwargs)
  kTest,        ///< children[0] is [not] name(children[1..], kwargs)
  kUnary,       ///< name ("-", "+", "not") children[0]
  kBinary,      ///< children[0] name children[1]; name is + - * / // % ** ~ and or
  kCompare,     ///< children[0] ops[0] children[1] ops[1] children[2] ... (Python chaining)
  kCondExpr,    ///< children[1] if children[0] else children[2] (null: undefined)
  kBlockValue,  ///< the rendered body of a {% filter %} or {% set x | f %} block
};

struct Expr;
/// Owning pointer to an expression.
using ExprPtr = std::unique_ptr<Expr>;

/// One expression node; which fields are used depends on `kind`.
struct Expr {
  ExprKind kind = ExprKind::kLiteral;                   ///< node kind
  SourcePos pos;                                        ///< where it starts
  Value literal;                                        ///< kLiteral
  std::string name;                                     ///< variable, attribute, operator, filter or test
  std::vector<ExprPtr> children;                        ///< operands (see ExprKind)
  std::vector<std::string> ops;                         ///< kCompare operators
  std::vector<std::pair<std::string, ExprPtr>> kwargs;  ///< keyword arguments of calls, filters, tests
  bool negated = false;                                 ///< kTest: `is not`
  FilterFn filter = nullptr;                            ///< kFilter: resolved at parse time
  TestFn test = nullptr;                                ///< kTest: resolved at parse time
  int depth = 1;                                        ///< height of this subtree (bounded by the parser)
};

/// Statement node kinds.
enum class StmtKind {
  kText,         ///< literal `text`
  kOutput,       ///< {{ exprs[0] }}
  kIf,           ///< if exprs[i]: bodies[i]; bodies[exprs.size()] is the else branch when present
  kFor,          ///< for targets in exprs[0] [if exprs[1]]: bodies[0] else bodies[1]
  kSet,          ///< set targets = exprs[0]
  kSetAttr,      ///< set targets[0].text = exprs[0] (namespace attribute)
  kSetBlock,     ///< set targets[0] [| filters in exprs[0]] %} bodies[0] {% endset
  kMacro,        ///< macro text(targets = exprs defaults): bodies[0]
  kBreak,        ///< break
  kContinue,     ///< continue
  kFilterBlock,  ///< filter exprs[0] %} bodies[0] {% endfilter
  kWith,         ///< with targets = exprs %} bodies[0] {% endwith
  kScope,        ///< bodies[0] rendered as is ({% generation %} of transformers)
};

struct Stmt;
/// Owning pointer to a statement.
using StmtPtr = std::unique_ptr<Stmt>;
/// A sequence of statements.
using Body = std::vector<StmtPtr>;

/// One statement node; which fields are used depends on `kind`.
struct Stmt {
  StmtKind kind = StmtKind::kText;   ///< node kind
  SourcePos pos;                     ///< where it starts
  std::string text;                  ///< kText text, kMacro name, kSetAttr attribute
  std::vector<std::string> targets;  ///< assigned names, or macro parameters
  std::vector<ExprPtr> exprs;        ///< expressions (see StmtKind); null entries allowed for defaults
  std::vector<Body> bodies;          ///< nested statement lists
};

}  // namespace mixserve::jinja

// The parser's class, shared by jinja_parser.cpp (statements) and jinja_parser_expr.cpp (expressions);
// internal to the jinja folder. Grammar and precedence follow jinja2/parser.py.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "model/jinja/jinja_ast.h"
#include "model/jinja/jinja_lexer.h"
#include "model/jinja/jinja_parser.h"

namespace mixserve::jinja {

/// Recursive-descent parser over the tokens of one template.
class Parser {
 public:
  /// Parses `tokens` (which must outlive the parser and end with kEnd).
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  /// The whole template; throws Error "template:L:C: ..." on the first problem.
  Body parse_template();

 private:
  // Counts nesting on entry and leaves on exit; throws beyond kMaxParseDepth.
  class DepthGuard {
   public:
    DepthGuard(Parser& p, const Token& at) : p_(p) {
      if (++p_.depth_ > kMaxParseDepth) p_.error(at, "template nested deeper than ", kMaxParseDepth, " levels");
    }
    ~DepthGuard() { --p_.depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

   private:
    Parser& p_;
  };

  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  void advance() {
    if (i_ + 1 < t_.size()) ++i_;
  }
  bool is_op(std::string_view op) const { return cur().kind == TokenKind::kOperator && cur().text == op; }
  bool is_name(std::string_view name) const { return cur().kind == TokenKind::kName && cur().text == name; }

  template <typename... Args>
  [[noreturn]] void error(const Token& at, const Args&... args) const {
    fail(ErrorCode::kInvalidArgument, "template:", at.pos.line, ":", at.pos.column, ": ", args...);
  }
  template <typename... Args>
  [[noreturn]] void unsupported(const Token& at, const Args&... args) const {
    fail(ErrorCode::kUnimplemented, "template:", at.pos.line, ":", at.pos.column, ": ", args...);
  }

  void expect_op(std::string_view op);
  std::string expect_name();
  void expect_block_end();
  ExprPtr node(ExprKind kind, const Token& at);
  // Computes the height of a finished node from its children and enforces the bound.
  ExprPtr seal(ExprPtr e);

  // ---- statements ----

  // Parses statements until one of `ends` (a block tag name) or the end of the template. On an end tag
  // the cursor is left after its name and *found receives it.
  Body parse_body(std::initializer_list<std::string_view> ends, std::string* found, const Token* opener = nullptr);
  StmtPtr make_stmt(StmtKind kind, const Token& at);
  StmtPtr parse_statement();
  StmtPtr parse_if();
  std::vector<std::string> parse_targets();
  StmtPtr parse_for();
  StmtPtr parse_set();
  StmtPtr parse_macro();
  StmtPtr parse_filter_block();
  StmtPtr parse_with();
  StmtPtr parse_simple_block(StmtKind kind, std::string_view end_name);

  // ---- expressions (jinja2 precedence, loosest first) ----

  bool is_tuple_end() const;
  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parens);
  ExprPtr parse_expression();
  ExprPtr binary(ExprPtr left, const Token& at, std::string op, ExprPtr right);
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();

  template <typename Next>
  ExprPtr parse_left_assoc(std::initializer_list<std::string_view> ops, Next next) {
    ExprPtr left = (this->*next)();
    for (;;) {
      if (cur().kind != TokenKind::kOperator || std::find(ops.begin(), ops.end(), cur().text) == ops.end()) {
        return left;
      }
      const Token& at = cur();
      advance();
      left = binary(std::move(left), at, at.text, (this->*next)());
    }
  }
  ExprPtr parse_math1() { return parse_left_assoc({"+", "-"}, &Parser::parse_concat); }
  ExprPtr parse_concat() { return parse_left_assoc({"~"}, &Parser::parse_math2); }
  ExprPtr parse_math2() { return parse_left_assoc({"*", "/", "//", "%"}, &Parser::parse_pow); }
  ExprPtr parse_pow() { return parse_left_assoc({"**"}, &Parser::parse_unary_filtered); }
  ExprPtr parse_unary_filtered() { return parse_unary(true); }

  ExprPtr parse_unary(bool with_filter);
  ExprPtr literal(const Token& at, Value v);
  ExprPtr parse_primary();

  // [a, b, ...] or {k: v, ...}; trailing commas allowed.
  ExprPtr parse_sequence(ExprKind kind, std::string_view close);
  ExprPtr parse_postfix(ExprPtr e);
  ExprPtr parse_subscript(ExprPtr obj);

  // (args) into e->children[first..] and e->kwargs.
  void parse_call_args(Expr& e);
  ExprPtr parse_call(ExprPtr callee);

  std::string parse_dotted_name();

  // Filters (| name(args)) and tests (is [not] name args) after `e`; `inline_first` parses a first
  // filter without its '|' ({% filter name %}).
  ExprPtr parse_filters(ExprPtr e, bool inline_first);

  const std::vector<Token>& t_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace mixserve::jinja

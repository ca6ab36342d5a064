// Expression half of the parser: jinja2's precedence climbing, loosest first (conditional, or, and,
// not, comparisons, + -, ~, * / // %, **, unary, then postfix, filters and tests).
#include <algorithm>
#include <string_view>

#include "common/error.h"
#include "model/jinja/jinja_builtins.h"
#include "model/jinja/jinja_parser_impl.h"

namespace mixserve::jinja {

bool Parser::is_tuple_end() const {
  return cur().kind == TokenKind::kVarEnd || cur().kind == TokenKind::kBlockEnd || is_op(")") || is_name("recursive");
}

ExprPtr Parser::parse_tuple(bool with_condexpr, bool explicit_parens) {
  const Token& start = cur();
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  for (;;) {
    if (!items.empty()) expect_op(",");
    if (is_tuple_end()) break;
    items.push_back(with_condexpr ? parse_expression() : parse_or());
    if (!is_op(",")) break;
    is_tuple = true;
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (!explicit_parens) error(cur(), "expected an expression, got ", describe(cur()));
  }
  auto e = node(ExprKind::kTuple, start);
  e->children = std::move(items);
  return seal(std::move(e));
}

ExprPtr Parser::parse_expression() {
  DepthGuard guard(*this, cur());
  ExprPtr expr = parse_or();
  while (is_name("if")) {
    const Token& at = cur();
    advance();
    auto e = node(ExprKind::kCondExpr, at);
    e->children.push_back(parse_or());
    e->children.push_back(std::move(expr));
    if (is_name("else")) {
      advance();
      e->children.push_back(parse_expression());
    } else {
      e->children.emplace_back();
    }
    expr = seal(std::move(e));
  }
  return expr;
}

ExprPtr Parser::binary(ExprPtr left, const Token& at, std::string op, ExprPtr right) {
  auto e = node(ExprKind::kBinary, at);
  e->name = std::move(op);
  e->children.push_back(std::move(left));
  e->children.push_back(std::move(right));
  return seal(std::move(e));
}

ExprPtr Parser::parse_or() {
  ExprPtr left = parse_and();
  while (is_name("or")) {
    const Token& at = cur();
    advance();
    left = binary(std::move(left), at, "or", parse_and());
  }
  return left;
}

ExprPtr Parser::parse_and() {
  ExprPtr left = parse_not();
  while (is_name("and")) {
    const Token& at = cur();
    advance();
    left = binary(std::move(left), at, "and", parse_not());
  }
  return left;
}

ExprPtr Parser::parse_not() {
  if (!is_name("not")) return parse_compare();
  DepthGuard guard(*this, cur());
  auto e = node(ExprKind::kUnary, cur());
  e->name = "not";
  advance();
  e->children.push_back(parse_not());
  return seal(std::move(e));
}

ExprPtr Parser::parse_compare() {
  const Token& start = cur();
  ExprPtr left = parse_math1();
  ExprPtr cmp;
  for (;;) {
    std::string op;
    if (cur().kind == TokenKind::kOperator && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                               cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
      op = cur().text;
      advance();
    } else if (is_name("in")) {
      op = "in";
      advance();
    } else if (is_name("not") && peek(1).kind == TokenKind::kName && peek(1).text == "in") {
      op = "not in";
      advance();
      advance();
    } else {
      break;
    }
    if (!cmp) {
      cmp = node(ExprKind::kCompare, start);
      cmp->children.push_back(std::move(left));
    }
    cmp->ops.push_back(op);
    cmp->children.push_back(parse_math1());
  }
  return cmp ? seal(std::move(cmp)) : std::move(left);
}

ExprPtr Parser::parse_unary(bool with_filter) {
  DepthGuard guard(*this, cur());
  ExprPtr e;
  if (is_op("-") || is_op("+")) {
    e = node(ExprKind::kUnary, cur());
    e->name = cur().text;
    advance();
    e->children.push_back(parse_unary(false));
    e = seal(std::move(e));
  } else {
    e = parse_primary();
  }
  e = parse_postfix(std::move(e));
  return with_filter ? parse_filters(std::move(e), false) : std::move(e);
}

ExprPtr Parser::literal(const Token& at, Value v) {
  auto e = node(ExprKind::kLiteral, at);
  e->literal = std::move(v);
  return seal(std::move(e));
}

ExprPtr Parser::parse_primary() {
  const Token& tok = cur();
  switch (tok.kind) {
    case TokenKind::kName: {
      advance();
      if (tok.text == "true" || tok.text == "True") return literal(tok, true);
      if (tok.text == "false" || tok.text == "False") return literal(tok, false);
      if (tok.text == "none" || tok.text == "None") return literal(tok, Value::none());
      auto e = node(ExprKind::kName, tok);
      e->name = tok.text;
      return seal(std::move(e));
    }
    case TokenKind::kString: {
      std::string text;
      while (cur().kind == TokenKind::kString) {  // adjacent literals concatenate
        text += cur().text;
        advance();
      }
      return literal(tok, std::move(text));
    }
    case TokenKind::kInt: advance(); return literal(tok, tok.int_value);
    case TokenKind::kFloat: advance(); return literal(tok, tok.float_value);
    default: break;
  }
  if (is_op("(")) {
    advance();
    ExprPtr e = parse_tuple(true, true);
    expect_op(")");
    return e;
  }
  if (is_op("[")) return parse_sequence(ExprKind::kList, "]");
  if (is_op("{")) return parse_sequence(ExprKind::kDict, "}");
  error(tok, "unexpected ", describe(tok));
}

ExprPtr Parser::parse_sequence(ExprKind kind, std::string_view close) {
  auto e = node(kind, cur());
  advance();
  while (!is_op(close)) {
    if (!e->children.empty()) {
      expect_op(",");
      if (is_op(close)) break;
    }
    e->children.push_back(parse_expression());
    if (kind == ExprKind::kDict) {
      expect_op(":");
      e->children.push_back(parse_expression());
    }
  }
  advance();
  return seal(std::move(e));
}

ExprPtr Parser::parse_postfix(ExprPtr e) {
  for (;;) {
    const Token& at = cur();
    if (is_op(".")) {
      advance();
      if (cur().kind == TokenKind::kName) {
        auto g = node(ExprKind::kGetAttr, at);
        g->name = cur().text;
        g->children.push_back(std::move(e));
        e = seal(std::move(g));
      } else if (cur().kind == TokenKind::kInt) {
        auto g = node(ExprKind::kGetItem, at);
        g->children.push_back(std::move(e));
        g->children.push_back(literal(cur(), cur().int_value));
        e = seal(std::move(g));
      } else {
        error(cur(), "expected an attribute name after '.', got ", describe(cur()));
      }
      advance();
    } else if (is_op("[")) {
      e = parse_subscript(std::move(e));
    } else if (is_op("(")) {
      e = parse_call(std::move(e));
    } else {
      return e;
    }
  }
}

ExprPtr Parser::parse_subscript(ExprPtr obj) {
  const Token& at = cur();
  advance();
  ExprPtr parts[3];
  int colons = 0;
  if (!is_op(":")) parts[0] = parse_expression();
  while (is_op(":") && colons < 2) {
    advance();
    ++colons;
    if (!is_op(":") && !is_op("]")) parts[colons] = parse_expression();
  }
  if (is_op(",")) unsupported(cur(), "tuple subscripts (a[x, y]) are not supported");
  expect_op("]");
  auto e = node(colons ? ExprKind::kSlice : ExprKind::kGetItem, at);
  e->children.push_back(std::move(obj));
  e->children.push_back(std::move(parts[0]));
  if (colons) {
    e->children.push_back(std::move(parts[1]));
    e->children.push_back(std::move(parts[2]));
  }
  return seal(std::move(e));
}

void Parser::parse_call_args(Expr& e) {
  expect_op("(");
  bool first = true;
  while (!is_op(")")) {
    if (!first) {
      expect_op(",");
      if (is_op(")")) break;
    }
    first = false;
    if (is_op("*") || is_op("**")) unsupported(cur(), "*args and **kwargs in calls are not supported");
    if (cur().kind == TokenKind::kName && peek(1).kind == TokenKind::kOperator && peek(1).text == "=") {
      std::string key = cur().text;
      advance();
      advance();
      e.kwargs.emplace_back(std::move(key), parse_expression());
    } else {
      if (!e.kwargs.empty()) error(cur(), "positional argument follows keyword argument");
      e.children.push_back(parse_expression());
    }
  }
  advance();
}

ExprPtr Parser::parse_call(ExprPtr callee) {
  auto e = node(ExprKind::kCall, cur());
  e->children.push_back(std::move(callee));
  parse_call_args(*e);
  return seal(std::move(e));
}

std::string Parser::parse_dotted_name() {
  std::string name = expect_name();
  while (is_op(".")) {
    advance();
    name += "." + expect_name();
  }
  return name;
}

ExprPtr Parser::parse_filters(ExprPtr e, bool inline_first) {
  for (;;) {
    const Token& at = cur();
    if (is_op("|") || inline_first) {
      if (!inline_first) advance();
      inline_first = false;
      const Token& name_tok = cur();
      auto f = node(ExprKind::kFilter, name_tok);
      f->name = parse_dotted_name();
      f->filter = find_filter(f->name);
      if (!f->filter) unsupported(name_tok, "unsupported filter '", f->name, "'");
      f->children.push_back(std::move(e));
      if (is_op("(")) parse_call_args(*f);
      e = seal(std::move(f));
    } else if (is_name("is")) {
      advance();
      auto t = node(ExprKind::kTest, at);
      if (is_name("not")) {
        t->negated = true;
        advance();
      }
      const Token& name_tok = cur();
      t->name = parse_dotted_name();
      t->test = find_test(t->name);
      if (!t->test) unsupported(name_tok, "unsupported test '", t->name, "'");
      t->children.push_back(std::move(e));
      if (is_op("(")) {
        parse_call_args(*t);
      } else if ((cur().kind == TokenKind::kName || cur().kind == TokenKind::kString || cur().kind == TokenKind::kInt ||
                  cur().kind == TokenKind::kFloat || is_op("[") || is_op("{")) &&
                 !is_name("else") && !is_name("or") && !is_name("and")) {
        if (is_name("is")) error(cur(), "tests cannot be chained with 'is'");
        DepthGuard guard(*this, cur());
        t->children.push_back(parse_postfix(parse_primary()));
      }
      e = seal(std::move(t));
    } else if (is_op("(")) {
      e = parse_call(std::move(e));
    } else {
      return e;
    }
  }
}

}  // namespace mixserve::jinja

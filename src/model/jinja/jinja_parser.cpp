// Statement half of the parser (tags, blocks, whitespace-controlled text) and its entry point parse().
#include <algorithm>
#include <string_view>

#include "common/error.h"
#include "model/jinja/jinja_builtins.h"
#include "model/jinja/jinja_parser_impl.h"

namespace mixserve::jinja {
namespace {

// Tags of jinja2 (or its extensions) that this interpreter does not implement.
constexpr std::string_view kUnsupportedTags[] = {"call",       "include", "import", "from",      "extends",  "block",
                                                 "autoescape", "do",      "trans",  "pluralize", "recursive"};
// Height of an expression tree; left-leaning chains such as a+b+c+... grow it without recursion.
constexpr int kMaxExprHeight = 2 * kMaxParseDepth;

}  // namespace

Body Parser::parse_template() {
  Body body = parse_body({}, nullptr);
  if (cur().kind != TokenKind::kEnd) error(cur(), "unexpected ", describe(cur()));
  return body;
}

void Parser::expect_op(std::string_view op) {
  if (!is_op(op)) error(cur(), "expected '", op, "', got ", describe(cur()));
  advance();
}

std::string Parser::expect_name() {
  if (cur().kind != TokenKind::kName) error(cur(), "expected a name, got ", describe(cur()));
  std::string name = cur().text;
  advance();
  return name;
}

void Parser::expect_block_end() {
  if (cur().kind != TokenKind::kBlockEnd) error(cur(), "expected end of statement '%}', got ", describe(cur()));
  advance();
}

ExprPtr Parser::node(ExprKind kind, const Token& at) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->pos = at.pos;
  return e;
}

ExprPtr Parser::seal(ExprPtr e) {
  int h = 0;
  for (const auto& c : e->children) h = std::max(h, c ? c->depth : 0);
  for (const auto& kw : e->kwargs) h = std::max(h, kw.second->depth);
  e->depth = h + 1;
  if (e->depth > kMaxExprHeight) {
    fail(ErrorCode::kInvalidArgument, "template:", e->pos.line, ":", e->pos.column, ": expression nested deeper than ",
         kMaxExprHeight, " levels");
  }
  return e;
}

Body Parser::parse_body(std::initializer_list<std::string_view> ends, std::string* found, const Token* opener) {
  Body body;
  for (;;) {
    const Token& tok = cur();
    if (tok.kind == TokenKind::kEnd) {
      if (ends.size() == 0) return body;
      const Token& at = opener ? *opener : tok;
      const auto close =
          std::find_if(ends.begin(), ends.end(), [](std::string_view e) { return e.starts_with("end"); });
      error(at, "'", at.text, "' block is never closed (expected '{% ", close == ends.end() ? "end" : *close, " %}')");
    }
    if (tok.kind == TokenKind::kText) {
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::kText;
      s->pos = tok.pos;
      s->text = tok.text;
      body.push_back(std::move(s));
      advance();
    } else if (tok.kind == TokenKind::kVarBegin) {
      advance();
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::kOutput;
      s->pos = tok.pos;
      s->exprs.push_back(parse_tuple(true, false));
      if (cur().kind != TokenKind::kVarEnd) error(cur(), "expected end of print statement '}}', got ", describe(cur()));
      advance();
      body.push_back(std::move(s));
    } else if (tok.kind == TokenKind::kBlockBegin) {
      const Token& name = peek(1);
      if (name.kind != TokenKind::kName) error(name, "expected a tag name after '{%', got ", describe(name));
      if (std::find(ends.begin(), ends.end(), name.text) != ends.end()) {
        advance();
        advance();
        *found = name.text;
        return body;
      }
      advance();
      body.push_back(parse_statement());
    } else {
      error(tok, "unexpected ", describe(tok));
    }
  }
}

StmtPtr Parser::make_stmt(StmtKind kind, const Token& at) {
  auto s = std::make_unique<Stmt>();
  s->kind = kind;
  s->pos = at.pos;
  return s;
}

StmtPtr Parser::parse_statement() {
  const Token& tok = cur();
  DepthGuard guard(*this, tok);
  const std::string& name = tok.text;
  if (name == "if") return parse_if();
  if (name == "for") return parse_for();
  if (name == "set") return parse_set();
  if (name == "macro") return parse_macro();
  if (name == "filter") return parse_filter_block();
  if (name == "with") return parse_with();
  if (name == "generation") return parse_simple_block(StmtKind::kScope, "endgeneration");
  if (name == "break" || name == "continue") {
    if (loop_depth_ == 0) error(tok, "'", name, "' outside of a for loop");
    auto s = make_stmt(name == "break" ? StmtKind::kBreak : StmtKind::kContinue, tok);
    advance();
    expect_block_end();
    return s;
  }
  if (std::find(std::begin(kUnsupportedTags), std::end(kUnsupportedTags), name) != std::end(kUnsupportedTags)) {
    unsupported(tok, "the '{% ", name, " %}' tag is not supported");
  }
  error(tok, "unknown tag '", name, "'");
}

StmtPtr Parser::parse_if() {
  const Token& opener = cur();
  auto s = make_stmt(StmtKind::kIf, opener);
  advance();
  s->exprs.push_back(parse_tuple(false, false));
  expect_block_end();
  for (;;) {
    std::string end;
    s->bodies.push_back(parse_body({"elif", "else", "endif"}, &end, &opener));
    if (end == "elif") {
      s->exprs.push_back(parse_tuple(false, false));
      expect_block_end();
      continue;
    }
    expect_block_end();
    if (end == "else") {
      s->bodies.push_back(parse_body({"endif"}, &end, &opener));
      expect_block_end();
    }
    return s;
  }
}

std::vector<std::string> Parser::parse_targets() {
  std::vector<std::string> names;
  const bool parens = is_op("(");
  if (parens) advance();
  names.push_back(expect_name());
  while (is_op(",")) {
    advance();
    if (is_name("in") || is_op("=") || is_op(")")) break;
    names.push_back(expect_name());
  }
  if (parens) expect_op(")");
  return names;
}

StmtPtr Parser::parse_for() {
  const Token& opener = cur();
  auto s = make_stmt(StmtKind::kFor, opener);
  advance();
  s->targets = parse_targets();
  if (!is_name("in")) error(cur(), "expected 'in' in for loop, got ", describe(cur()));
  advance();
  s->exprs.push_back(parse_tuple(false, false));
  if (is_name("if")) {
    advance();
    s->exprs.push_back(parse_expression());
  }
  if (is_name("recursive")) unsupported(cur(), "recursive for loops are not supported");
  expect_block_end();
  std::string end;
  ++loop_depth_;
  s->bodies.push_back(parse_body({"endfor", "else"}, &end, &opener));
  --loop_depth_;
  expect_block_end();
  s->bodies.emplace_back();
  if (end == "else") {
    s->bodies.back() = parse_body({"endfor"}, &end, &opener);
    expect_block_end();
  }
  return s;
}

StmtPtr Parser::parse_set() {
  const Token& opener = cur();
  advance();
  if (cur().kind == TokenKind::kName && peek(1).kind == TokenKind::kOperator && peek(1).text == ".") {
    auto s = make_stmt(StmtKind::kSetAttr, opener);
    s->targets.push_back(expect_name());
    advance();
    s->text = expect_name();
    expect_op("=");
    s->exprs.push_back(parse_tuple(true, false));
    expect_block_end();
    return s;
  }
  std::vector<std::string> targets = parse_targets();
  if (is_op("=")) {
    advance();
    auto s = make_stmt(StmtKind::kSet, opener);
    s->targets = std::move(targets);
    s->exprs.push_back(parse_tuple(true, false));
    expect_block_end();
    return s;
  }
  if (targets.size() != 1) error(cur(), "a {% set %} block assigns exactly one name");
  auto s = make_stmt(StmtKind::kSetBlock, opener);
  s->targets = std::move(targets);
  s->exprs.emplace_back();
  if (is_op("|")) s->exprs.back() = parse_filters(seal(node(ExprKind::kBlockValue, cur())), false);
  expect_block_end();
  std::string end;
  s->bodies.push_back(parse_body({"endset"}, &end, &opener));
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_macro() {
  const Token& opener = cur();
  auto s = make_stmt(StmtKind::kMacro, opener);
  advance();
  s->text = expect_name();
  expect_op("(");
  while (!is_op(")")) {
    if (!s->targets.empty()) expect_op(",");
    if (is_op(")")) break;
    s->targets.push_back(expect_name());
    if (is_op("=")) {
      advance();
      s->exprs.push_back(parse_expression());
    } else {
      if (!s->exprs.empty() && s->exprs.back()) error(cur(), "non-default macro argument follows a default one");
      s->exprs.emplace_back();
    }
  }
  advance();
  expect_block_end();
  const int saved_loops = loop_depth_;
  loop_depth_ = 0;
  std::string end;
  s->bodies.push_back(parse_body({"endmacro"}, &end, &opener));
  loop_depth_ = saved_loops;
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_filter_block() {
  const Token& opener = cur();
  auto s = make_stmt(StmtKind::kFilterBlock, opener);
  advance();
  s->exprs.push_back(parse_filters(seal(node(ExprKind::kBlockValue, opener)), true));
  expect_block_end();
  std::string end;
  s->bodies.push_back(parse_body({"endfilter"}, &end, &opener));
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_with() {
  const Token& opener = cur();
  auto s = make_stmt(StmtKind::kWith, opener);
  advance();
  while (cur().kind != TokenKind::kBlockEnd) {
    if (!s->targets.empty()) expect_op(",");
    s->targets.push_back(expect_name());
    expect_op("=");
    s->exprs.push_back(parse_expression());
  }
  expect_block_end();
  std::string end;
  s->bodies.push_back(parse_body({"endwith"}, &end, &opener));
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_simple_block(StmtKind kind, std::string_view end_name) {
  const Token& opener = cur();
  auto s = make_stmt(kind, opener);
  advance();
  expect_block_end();
  std::string end;
  s->bodies.push_back(parse_body({end_name}, &end, &opener));
  expect_block_end();
  return s;
}

Body parse(const std::vector<Token>& tokens) {
  return Parser(tokens).parse_template();
}

}  // namespace mixserve::jinja

// Recursive-descent parser from Jinja tokens to a syntax tree, following jinja2's grammar and operator
// precedence (jinja2/parser.py). Unknown tags, filters and tests fail at parse time, as in jinja2.
#pragma once

#include <vector>

#include "model/jinja/jinja_ast.h"
#include "model/jinja/jinja_lexer.h"

namespace mixserve::jinja {

/// Deepest nesting of blocks and expressions the parser accepts (bounds the recursion everywhere).
inline constexpr int kMaxParseDepth = 100;

/// Parses a token stream from lex(). Throws Error "template:L:C: ..." with kInvalidArgument for
/// syntax errors and kUnimplemented for valid Jinja this interpreter does not support.
Body parse(const std::vector<Token>& tokens);

}  // namespace mixserve::jinja

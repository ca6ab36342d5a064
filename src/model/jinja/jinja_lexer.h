// Jinja lexer with the settings Hugging Face transformers renders chat templates with
// (jinja2.Environment(trim_blocks=True, lstrip_blocks=True), keep_trailing_newline=False):
// text, {{ }}, {% %}, {# #}, whitespace control (-, +) and {% raw %}.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mixserve::jinja {

/// 1-based line and column of a token in the template source.
struct SourcePos {
  int line = 1;    ///< line number
  int column = 1;  ///< column in bytes
};

/// Token kinds.
enum class TokenKind {
  kText,        ///< literal template text (already whitespace-controlled)
  kVarBegin,    ///< {{
  kVarEnd,      ///< }}
  kBlockBegin,  ///< {%
  kBlockEnd,    ///< %}
  kName,        ///< identifier or keyword
  kString,      ///< string literal; `text` holds the decoded value
  kInt,         ///< integer literal; `int_value`
  kFloat,       ///< float literal; `float_value`
  kOperator,    ///< punctuation such as "==", "(", "|"
  kEnd,         ///< end of the template
};

/// One token.
struct Token {
  TokenKind kind = TokenKind::kEnd;  ///< what it is
  std::string text;                  ///< text, name, decoded string or operator
  int64_t int_value = 0;             ///< for kInt
  double float_value = 0;            ///< for kFloat
  SourcePos pos;                     ///< where it starts
};

/// Splits `source` into tokens ending with kEnd. Throws Error(kInvalidArgument) "line:col: ..."
/// for unterminated tags, comments or strings, stray characters and unbalanced brackets.
std::vector<Token> lex(std::string_view source);

/// Human-readable description of a token for error messages ("'endfor'", "end of template").
std::string describe(const Token& token);

}  // namespace mixserve::jinja

#include "model/jinja/jinja_lexer.h"

#include <algorithm>
#include <charconv>

#include "common/error.h"
#include "model/jinja/jinja_strings.h"

namespace mixserve::jinja {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

bool all_python_space(std::string_view text) {
  if (text.empty()) return false;
  for (char32_t c : decode_utf8(text)) {
    if (!is_python_space(c)) return false;
  }
  return true;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // Jinja normalises newlines to \n and drops one trailing newline (keep_trailing_newline=False).
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_.push_back('\n');
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_.push_back(source[i]);
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<Token> run() {
    const size_t n = src_.size();
    while (pos_ < n) {
      const size_t start = find_tag_start(pos_);
      if (start == std::string::npos) {
        push_text(src_.substr(pos_), pos_);
        break;
      }
      const char kind = src_[start + 1];
      size_t p = start + 2;
      const char sign = (p < n && (src_[p] == '-' || src_[p] == '+')) ? src_[p] : 0;
      if (sign) ++p;
      push_text(strip_before_tag(src_.substr(pos_, start - pos_), sign, kind != '{', pos_), pos_);
      if (kind == '#') {
        lex_comment(start, p);
      } else if (kind == '%' && lex_raw(start, p)) {
        continue;
      } else {
        lex_tag(start, p, kind);
      }
    }
    Token end;
    end.kind = TokenKind::kEnd;
    end.pos = at(src_.size());
    tokens_.push_back(end);
    return std::move(tokens_);
  }

 private:
  SourcePos at(size_t offset) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - 1;
    return {static_cast<int>(it - line_starts_.begin()) + 1, static_cast<int>(offset - *it) + 1};
  }

  template <typename... Args>
  [[noreturn]] void error(size_t offset, const Args&... args) const {
    const SourcePos p = at(offset);
    fail(ErrorCode::kInvalidArgument, "template:", p.line, ":", p.column, ": ", args...);
  }

  size_t find_tag_start(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  // Whitespace control for the text before a tag: "-" strips all whitespace; otherwise lstrip_blocks
  // removes spaces between the start of the line and a block or comment tag.
  std::string strip_before_tag(std::string text, char sign, bool block_or_comment, size_t text_start) const {
    if (sign == '-') return python_strip(text, nullptr, false, true);
    if (sign == '+' || !block_or_comment) return text;
    const size_t nl = text.rfind('\n');
    const size_t line_begin = nl == std::string::npos ? 0 : nl + 1;
    const bool line_starting = text_start == 0 || src_[text_start - 1] == '\n';
    if ((line_begin > 0 || line_starting) && all_python_space(std::string_view(text).substr(line_begin))) {
      text.resize(line_begin);
    }
    return text;
  }

  void push_text(std::string text, size_t offset) {
    if (text.empty()) return;
    Token t;
    t.kind = TokenKind::kText;
    t.text = std::move(text);
    t.pos = at(offset);
    tokens_.push_back(std::move(t));
  }

  void push(TokenKind kind, std::string text, size_t offset) {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    t.pos = at(offset);
    tokens_.push_back(std::move(t));
  }

  size_t skip_whitespace(size_t p) const {
    while (p < src_.size()) {
      size_t q = p;
      if (!is_python_space(next_code_point(src_, q))) break;
      p = q;
    }
    return p;
  }

  // After "%}" or "#}": trim_blocks removes one newline; after "-%}" all whitespace goes.
  size_t after_block_end(size_t end_pos, char end_sign) const {
    if (end_sign == '-') return skip_whitespace(end_pos);
    if (end_sign == '+') return end_pos;
    return (end_pos < src_.size() && src_[end_pos] == '\n') ? end_pos + 1 : end_pos;
  }

  void lex_comment(size_t start, size_t p) {
    const size_t close = src_.find("#}", p);
    if (close == std::string::npos) error(start, "unterminated comment (missing '#}')");
    const char end_sign = (close > p && (src_[close - 1] == '-' || src_[close - 1] == '+')) ? src_[close - 1] : 0;
    pos_ = after_block_end(close + 2, end_sign);
  }

  // Matches "[ws]name[ws](-%}|%})" at p; returns the offset after "%}" (and the sign) or npos.
  size_t match_simple_tag(size_t p, std::string_view name, char* end_sign) const {
    p = skip_whitespace(p);
    if (src_.compare(p, name.size(), name) != 0) return std::string::npos;
    p = skip_whitespace(p + name.size());
    *end_sign = 0;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) *end_sign = src_[p++];
    if (src_.compare(p, 2, "%}") != 0) return std::string::npos;
    return p + 2;
  }

  bool lex_raw(size_t start, size_t p) {
    char end_sign = 0;
    size_t body = match_simple_tag(p, "raw", &end_sign);
    if (body == std::string::npos || end_sign == '+') return false;
    if (end_sign == '-') body = skip_whitespace(body);  // "{% raw %}" itself keeps the newline
    for (size_t tag = src_.find("{%", body); tag != std::string::npos; tag = src_.find("{%", tag + 1)) {
      size_t q = tag + 2;
      const char sign = (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ? src_[q] : 0;
      if (sign) ++q;
      char close_sign = 0;
      const size_t after = match_simple_tag(q, "endraw", &close_sign);
      if (after == std::string::npos) continue;
      push_text(strip_before_tag(src_.substr(body, tag - body), sign, true, body), body);
      pos_ = after_block_end(after, close_sign);
      return true;
    }
    error(start, "missing '{% endraw %}' for this '{% raw %}'");
  }

  void lex_tag(size_t start, size_t p, char kind) {
    push(kind == '{' ? TokenKind::kVarBegin : TokenKind::kBlockBegin, kind == '{' ? "{{" : "{%", start);
    std::string brackets;
    const size_t n = src_.size();
    for (;;) {
      if (p >= n) error(start, "unterminated '", kind == '{' ? "{{" : "{%", "' tag");
      if (brackets.empty()) {
        const std::string_view rest = std::string_view(src_).substr(p);
        if (kind == '{' && (rest.starts_with("-}}") || rest.starts_with("}}"))) {
          const bool strip = rest[0] == '-';
          push(TokenKind::kVarEnd, "}}", p);
          pos_ = strip ? skip_whitespace(p + 3) : p + 2;
          return;
        }
        if (kind == '%' && (rest.starts_with("-%}") || rest.starts_with("+%}") || rest.starts_with("%}"))) {
          const char sign = rest[0] == '%' ? 0 : rest[0];
          push(TokenKind::kBlockEnd, "%}", p);
          pos_ = after_block_end(p + (sign ? 3 : 2), sign);
          return;
        }
      }
      const char c = src_[p];
      if (is_space(c)) {
        ++p;
      } else if (is_digit(c)) {
        p = lex_number(p);
      } else if (is_name_start(c)) {
        size_t e = p;
        while (e < n && is_name_char(src_[e])) ++e;
        push(TokenKind::kName, src_.substr(p, e - p), p);
        p = e;
      } else if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else {
        p = lex_operator(p, brackets);
      }
    }
  }

  size_t lex_operator(size_t p, std::string& brackets) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (std::string_view op : kTwo) {
      if (src_.compare(p, 2, op) == 0) {
        push(TokenKind::kOperator, std::string(op), p);
        return p + 2;
      }
    }
    const char c = src_[p];
    if (std::string_view("+-*/%~[](){}<>=.:|,;").find(c) == std::string_view::npos) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) {
        error(p, "unexpected character (byte 0x", "0123456789abcdef"[(c >> 4) & 15], "0123456789abcdef"[c & 15],
              ") in tag");
      }
      error(p, "unexpected character '", c, "' in tag");
    }
    if (c == '(' || c == '[' || c == '{') brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) error(p, "unexpected '", c, "'");
      if (brackets.back() != c) error(p, "unexpected '", c, "', expected '", brackets.back(), "'");
      brackets.pop_back();
    }
    push(TokenKind::kOperator, std::string(1, c), p);
    return p + 1;
  }

  // Digits with optional '_' separators starting at p; returns the end.
  size_t scan_digits(size_t p, std::string& digits, int base) const {
    while (p < src_.size()) {
      const char c = src_[p];
      if (c == '_' && p + 1 < src_.size() && hex_digit(src_[p + 1]) >= 0 && hex_digit(src_[p + 1]) < base) {
        ++p;
      } else if (hex_digit(c) >= 0 && hex_digit(c) < base && (base == 16 || is_digit(c))) {
        digits.push_back(c);
        ++p;
      } else {
        break;
      }
    }
    return p;
  }

  size_t lex_number(size_t p) {
    const size_t start = p;
    const size_t n = src_.size();
    Token t;
    t.pos = at(start);
    std::string digits;
    int base = 10;
    if (src_[p] == '0' && p + 1 < n && std::string_view("xXoObB").find(src_[p + 1]) != std::string_view::npos) {
      base = (src_[p + 1] == 'x' || src_[p + 1] == 'X') ? 16 : (src_[p + 1] == 'o' || src_[p + 1] == 'O') ? 8 : 2;
      p = scan_digits(p + 2, digits, base);
      if (digits.empty()) error(start, "malformed number literal");
    } else {
      p = scan_digits(p, digits, 10);
    }
    bool is_float = false;
    if (base == 10 && p + 1 < n && src_[p] == '.' && is_digit(src_[p + 1])) {
      is_float = true;
      digits.push_back('.');
      p = scan_digits(p + 1, digits, 10);
    }
    if (base == 10 && p < n && (src_[p] == 'e' || src_[p] == 'E')) {
      size_t q = p + 1;
      std::string exponent = "e";
      if (q < n && (src_[q] == '+' || src_[q] == '-')) exponent.push_back(src_[q++]);
      if (q < n && is_digit(src_[q])) {
        is_float = true;
        p = scan_digits(q, exponent, 10);
        digits += exponent;
      }
    }
    if (is_float) {
      t.kind = TokenKind::kFloat;
      std::from_chars(digits.data(), digits.data() + digits.size(), t.float_value);
    } else {
      t.kind = TokenKind::kInt;
      const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), t.int_value, base);
      if (r.ec != std::errc()) error(start, "integer literal out of the 64-bit range");
    }
    t.text = src_.substr(start, p - start);
    tokens_.push_back(std::move(t));
    return p;
  }

  size_t lex_string(size_t p) {
    const size_t start = p;
    const char quote = src_[p++];
    std::string value;
    const size_t n = src_.size();
    while (true) {
      if (p >= n) error(start, "unterminated string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        value.push_back(c);
        ++p;
        continue;
      }
      if (p + 1 >= n) error(start, "unterminated string literal");
      p = lex_escape(p, value);
    }
    Token t;
    t.kind = TokenKind::kString;
    t.text = std::move(value);
    t.pos = at(start);
    tokens_.push_back(std::move(t));
    return p + 1;
  }

  // Python "unicode-escape" decoding of the escape at src_[p] == '\\'; returns the offset after it.
  size_t lex_escape(size_t p, std::string& value) {
    const char e = src_[p + 1];
    const char* simple = "\\\\''\"\"a\ab\bf\fn\nr\rt\tv\v";
    for (const char* s = simple; *s; s += 2) {
      if (e == s[0]) {
        value.push_back(s[1]);
        return p + 2;
      }
    }
    if (e == '\n') return p + 2;  // line continuation
    if (e >= '0' && e <= '7') {
      unsigned code = 0;
      size_t q = p + 1;
      for (int k = 0; k < 3 && q < src_.size() && src_[q] >= '0' && src_[q] <= '7'; ++k, ++q) {
        code = code * 8 + static_cast<unsigned>(src_[q] - '0');
      }
      append_utf8(value, code);
      return q;
    }
    const int width = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
    if (width == 0) {
      value.push_back('\\');  // unknown escapes stay as written
      return p + 1;
    }
    char32_t code = 0;
    for (int k = 0; k < width; ++k) {
      const size_t q = p + 2 + static_cast<size_t>(k);
      const int d = q < src_.size() ? hex_digit(src_[q]) : -1;
      if (d < 0) error(p, "truncated \\", e, " escape in string literal");
      code = code * 16 + static_cast<char32_t>(d);
    }
    if (code > 0x10FFFF) error(p, "\\U escape out of the Unicode range");
    append_utf8(value, (code >= 0xD800 && code <= 0xDFFF) ? 0xFFFD : code);
    return p + 2 + static_cast<size_t>(width);
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
};

}  // namespace

std::vector<Token> lex(std::string_view source) {
  return Lexer(source).run();
}

std::string describe(const Token& token) {
  switch (token.kind) {
    case TokenKind::kText: return "template text";
    case TokenKind::kVarBegin: return "'{{'";
    case TokenKind::kVarEnd: return "'}}'";
    case TokenKind::kBlockBegin: return "'{%'";
    case TokenKind::kBlockEnd: return "'%}'";
    case TokenKind::kString: return "string literal";
    case TokenKind::kInt:
    case TokenKind::kFloat: return "number " + token.text;
    case TokenKind::kEnd: return "end of template";
    default: return "'" + token.text + "'";
  }
}

}  // namespace mixserve::jinja

#include "model/jinja/jinja_strings.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "common/error.h"

namespace mixserve::jinja {
// Invalid or truncated sequences yield U+DC00 + the first byte and advance one byte.
char32_t next_code_point(std::string_view text, size_t& i) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int len = 0;
  char32_t c = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, c = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, c = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, c = b0 & 0x07;
  }
  if (len == 0 || i + len > text.size()) {
    ++i;
    return 0xDC00 + b0;
  }
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) {
      ++i;
      return 0xDC00 + b0;
    }
    c = (c << 6) | (b & 0x3F);
  }
  // Overlong forms, surrogates and values above U+10FFFF are not valid UTF-8.
  const bool overlong = (len == 3 && c < 0x800) || (len == 4 && c < 0x10000);
  if (overlong || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) {
    ++i;
    return 0xDC00 + b0;
  }
  i += len;
  return c;
}

namespace {

bool is_ascii(std::string_view text) {
  for (char ch : text) {
    if (static_cast<unsigned char>(ch) >= 0x80) return false;
  }
  return true;
}

bool is_ascii_letter(char32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
// Letters that Python treats as cased but whose case this build does not map (Latin-1 to Cyrillic).
bool is_unmapped_cased(char32_t c) {
  return (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7) || (c >= 0x370 && c <= 0x52F);
}
char32_t to_upper(char32_t c) {
  return (c >= 'a' && c <= 'z') ? c - 32 : c;
}
char32_t to_lower(char32_t c) {
  return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

bool contains(const std::vector<char32_t>& set, char32_t c) {
  for (char32_t s : set) {
    if (s == c) return true;
  }
  return false;
}

}  // namespace

std::vector<char32_t> decode_utf8(std::string_view text) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) out.push_back(next_code_point(text, i));
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c >= 0xDC80 && c <= 0xDCFF) {
    out.push_back(static_cast<char>(c - 0xDC00));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode_utf8(const char32_t* begin, const char32_t* end) {
  std::string out;
  out.reserve(static_cast<size_t>(end - begin));
  for (const char32_t* p = begin; p != end; ++p) append_utf8(out, *p);
  return out;
}

int64_t code_point_length(std::string_view text) {
  if (is_ascii(text)) return static_cast<int64_t>(text.size());
  int64_t n = 0;
  for (size_t i = 0; i < text.size(); ++n) next_code_point(text, i);
  return n;
}

bool is_python_space(char32_t c) {
  // The code points for which Python's str.isspace() is true (bidirectional class WS, B or S, or
  // category Zs), per the Python documentation of str.isspace and the Unicode character database.
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string python_strip(std::string_view text, const std::string* chars, bool left, bool right) {
  const std::vector<char32_t> cps = decode_utf8(text);
  const std::vector<char32_t> set = chars ? decode_utf8(*chars) : std::vector<char32_t>{};
  auto strip = [&](char32_t c) { return chars ? contains(set, c) : is_python_space(c); };
  size_t b = 0;
  size_t e = cps.size();
  if (left) {
    while (b < e && strip(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip(cps[e - 1])) --e;
  }
  return encode_utf8(cps.data() + b, cps.data() + e);
}

std::vector<std::string> python_split(std::string_view text, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> parts;
  if (maxsplit < 0) maxsplit = INT64_MAX;
  if (sep) {
    if (sep->empty()) fail(ErrorCode::kInvalidArgument, "split(): empty separator");
    size_t start = 0;
    while (maxsplit-- > 0) {
      const size_t hit = text.find(*sep, start);
      if (hit == std::string_view::npos) break;
      parts.emplace_back(text.substr(start, hit - start));
      start = hit + sep->size();
    }
    parts.emplace_back(text.substr(start));
    return parts;
  }
  const std::vector<char32_t> cps = decode_utf8(text);
  const size_t n = cps.size();
  size_t i = 0;
  while (maxsplit-- > 0) {
    while (i < n && is_python_space(cps[i])) ++i;
    if (i == n) break;
    const size_t j = i;
    while (i < n && !is_python_space(cps[i])) ++i;
    parts.push_back(encode_utf8(cps.data() + j, cps.data() + i));
  }
  while (i < n && is_python_space(cps[i])) ++i;
  if (i < n) parts.push_back(encode_utf8(cps.data() + i, cps.data() + n));
  return parts;
}

std::vector<std::string> python_splitlines(std::string_view text) {
  std::vector<std::string> lines;
  std::string line;
  const std::vector<char32_t> cps = decode_utf8(text);
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    if (c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 || c == 0x2028 ||
        c == 0x2029) {
      if (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
      lines.push_back(std::move(line));
      line.clear();
    } else {
      append_utf8(line, c);
    }
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

std::string python_replace(std::string_view text, std::string_view from, std::string_view to, int64_t count) {
  if (count < 0) count = INT64_MAX;
  std::string out;
  if (from.empty()) {
    // Python inserts `to` before every code point and at the end.
    const std::vector<char32_t> cps = decode_utf8(text);
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count > 0) {
        out.append(to);
        --count;
      }
      if (i < cps.size()) append_utf8(out, cps[i]);
    }
    return out;
  }
  size_t start = 0;
  while (count-- > 0) {
    const size_t hit = text.find(from, start);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(start, hit - start));
    out.append(to);
    start = hit + from.size();
  }
  out.append(text.substr(start));
  return out;
}

std::string ascii_upper(std::string_view text) {
  std::string out(text);
  for (char& ch : out) ch = static_cast<char>(to_upper(static_cast<unsigned char>(ch)));
  return out;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& ch : out) ch = static_cast<char>(to_lower(static_cast<unsigned char>(ch)));
  return out;
}

std::string python_title(std::string_view text) {
  std::string out;
  bool previous_cased = false;
  for (char32_t c : decode_utf8(text)) {
    if (is_ascii_letter(c)) {
      append_utf8(out, previous_cased ? to_lower(c) : to_upper(c));
      previous_cased = true;
    } else {
      append_utf8(out, c);
      previous_cased = is_unmapped_cased(c);
    }
  }
  return out;
}

std::string python_capitalize(std::string_view text) {
  std::string out;
  bool first = true;
  for (char32_t c : decode_utf8(text)) {
    append_utf8(out, first ? to_upper(c) : to_lower(c));
    first = false;
  }
  return out;
}

std::string python_string_repr(std::string_view text) {
  const bool has_single = text.find('\'') != std::string_view::npos;
  const bool has_double = text.find('"') != std::string_view::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  char buf[16];
  for (char32_t c : decode_utf8(text)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else if ((c >= 0x2028 && c <= 0x2029) || (c >= 0x200B && c <= 0x200F) || c == 0xFEFF ||
               (c >= 0xD800 && c <= 0xDFFF)) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      append_utf8(out, c);
    }
  }
  out.push_back(quote);
  return out;
}

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  // Shortest round-trip digits (what Python's repr uses), then Python's layout rule: scientific
  // notation when the decimal exponent is below -4 or at least 16.
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  std::string out;
  size_t i = 0;
  if (sci[0] == '-') {
    out.push_back('-');
    i = 1;
  }
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (size_t k = i; k < e_pos; ++k) {
    if (sci[k] != '.') digits.push_back(sci[k]);
  }
  int exp10 = 0;
  std::from_chars(sci.data() + e_pos + (sci[e_pos + 1] == '+' ? 2 : 1), sci.data() + sci.size(), exp10);
  const int n = static_cast<int>(digits.size());
  if (exp10 < -4 || exp10 >= 16) {
    out += digits.substr(0, 1);
    if (n > 1) out += "." + digits.substr(1);
    std::snprintf(buf, sizeof buf, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    out += buf;
  } else if (exp10 < 0) {
    out += "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
  } else if (exp10 + 1 >= n) {
    out += digits + std::string(static_cast<size_t>(exp10 + 1 - n), '0') + ".0";
  } else {
    out += digits.substr(0, static_cast<size_t>(exp10 + 1)) + "." + digits.substr(static_cast<size_t>(exp10 + 1));
  }
  return out;
}

void append_json_string(std::string& out, std::string_view text, bool ensure_ascii) {
  // Escapes of Python's json encoder (json/encoder.py): the short forms, else \u00XX, lowercase hex.
  char buf[16];
  out.push_back('"');
  auto escape_unit = [&](unsigned unit) {
    std::snprintf(buf, sizeof buf, "\\u%04x", unit);
    out += buf;
  };
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    const char32_t c = next_code_point(text, i);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20 || (ensure_ascii && c == 0x7F)) {
      escape_unit(c);
    } else if (ensure_ascii && c >= 0x80) {
      if (c >= 0x10000) {
        const char32_t v = c - 0x10000;
        escape_unit(0xD800 + (v >> 10));
        escape_unit(0xDC00 + (v & 0x3FF));
      } else {
        escape_unit(c);
      }
    } else {
      out.append(text.substr(start, i - start));
    }
  }
  out.push_back('"');
}

}  // namespace mixserve::jinja

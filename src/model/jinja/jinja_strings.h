// Python-style string helpers for the Jinja interpreter: strings are UTF-8 bytes, but Python counts,
// indexes, slices and strips them by code point. Invalid UTF-8 bytes map to U+DC80..U+DCFF
// ("surrogateescape") so that every byte string round-trips exactly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mixserve::jinja {

/// Decodes the code point at text[i] (i < size) and advances i past it.
char32_t next_code_point(std::string_view text, size_t& i);
/// Code points of `text` (invalid bytes become U+DC00 + byte).
std::vector<char32_t> decode_utf8(std::string_view text);
/// Appends code point `c` as UTF-8 (U+DC80..U+DCFF back to the single raw byte).
void append_utf8(std::string& out, char32_t c);
/// UTF-8 text of a code point range.
std::string encode_utf8(const char32_t* begin, const char32_t* end);
/// Number of code points (Python len()).
int64_t code_point_length(std::string_view text);

/// Python str.isspace() for one code point.
bool is_python_space(char32_t c);
/// Python str.strip/lstrip/rstrip: `chars` null = whitespace, else the set of code points in *chars.
std::string python_strip(std::string_view text, const std::string* chars, bool left, bool right);
/// Python str.split(sep, maxsplit); `sep` null splits on whitespace runs and drops empty parts.
/// Throws kInvalidArgument for an empty separator.
std::vector<std::string> python_split(std::string_view text, const std::string* sep, int64_t maxsplit);
/// Python str.splitlines() (line boundaries \n, \r\n, \r, \v, \f, \x1c-\x1e, U+0085, U+2028, U+2029).
std::vector<std::string> python_splitlines(std::string_view text);
/// Python str.replace(old, new, count) (count < 0 = all).
std::string python_replace(std::string_view text, std::string_view from, std::string_view to, int64_t count);

/// ASCII upper case (other code points unchanged).
std::string ascii_upper(std::string_view text);
/// ASCII lower case (other code points unchanged).
std::string ascii_lower(std::string_view text);
/// Python str.title() (ASCII letters; a letter after a non-letter is upper-cased).
std::string python_title(std::string_view text);
/// Python str.capitalize(): first character upper, the rest lower.
std::string python_capitalize(std::string_view text);

/// Python repr() of a string: quotes chosen like Python, control characters escaped.
std::string python_string_repr(std::string_view text);
/// Python repr() of a float ("1.0", "1e+16", "inf", "nan").
std::string python_float_repr(double value);
/// JSON string literal like Python's json.dumps (ensure_ascii escapes non-ASCII as \uXXXX pairs).
void append_json_string(std::string& out, std::string_view text, bool ensure_ascii);

}  // namespace mixserve::jinja

// Small text helpers shared by the inventory parsers (internal to src/fleet/inventory*.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mixserve::fleet::text {

/// `s` without leading and trailing ASCII whitespace.
std::string_view trim(std::string_view s);
/// Lines of `s` split on '\n' (a trailing '\r' is removed from each).
std::vector<std::string_view> lines(std::string_view s);
/// Pieces of `s` split on `sep`, each trimmed; empty pieces are kept.
std::vector<std::string_view> split(std::string_view s, char sep);
/// Whitespace-separated tokens of `s`.
std::vector<std::string_view> tokens(std::string_view s);
/// Non-negative decimal integer (digits only, no sign) without overflow; nullopt otherwise.
std::optional<uint64_t> parse_uint(std::string_view s);
/// `value * unit` in bytes, or nullopt on overflow.
std::optional<uint64_t> scale(uint64_t value, uint64_t unit);
/// ASCII lower-case copy.
std::string lower(std::string_view s);
/// Whether `s` starts with `prefix`, ignoring ASCII case.
bool starts_with_nocase(std::string_view s, std::string_view prefix);
/// Whether `line` is a box-drawing rule ("+---+", "|===|", "+===+===+") made only of + | - = and spaces.
bool is_rule(std::string_view line);
/// Whether `line` is a rule drawn with '=' (the line under a table header).
bool is_double_rule(std::string_view line);
/// Cells of a box-drawn table row "| a | b |" (trimmed, outer bars dropped); nullopt if not a row.
std::optional<std::vector<std::string_view>> table_cells(std::string_view line);
/// The last "used / total" pair in `cell`: the tokens just before and just after the last '/'.
std::optional<std::pair<std::string_view, std::string_view>> last_ratio(std::string_view cell);
/// The first non-blank line of `s`, trimmed and cut to 200 bytes ("no output" when there is none).
std::string first_line(std::string_view s);

}  // namespace mixserve::fleet::text

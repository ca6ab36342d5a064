// Text helpers for the inventory parsers.
#include "fleet/inventory_text.h"

#include <limits>

namespace mixserve::fleet::text {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

}  // namespace

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> lines(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const size_t nl = s.find('\n');
    std::string_view line = s.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.push_back(line);
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    out.push_back(trim(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start)));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

std::vector<std::string_view> tokens(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    const size_t start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

std::optional<uint64_t> parse_uint(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::optional<uint64_t> scale(uint64_t value, uint64_t unit) {
  if (unit != 0 && value > std::numeric_limits<uint64_t>::max() / unit) return std::nullopt;
  return value * unit;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && lower(s.substr(0, prefix.size())) == lower(prefix);
}

bool is_rule(std::string_view line) {
  line = trim(line);
  if (line.empty()) return false;
  bool dash = false;
  for (char c : line) {
    if (c == '-' || c == '=') {
      dash = true;
    } else if (c != '+' && c != '|' && c != ' ') {
      return false;
    }
  }
  return dash;
}

bool is_double_rule(std::string_view line) { return is_rule(line) && line.find('=') != std::string_view::npos; }

std::optional<std::vector<std::string_view>> table_cells(std::string_view line) {
  line = trim(line);
  if (line.size() < 2 || line.front() != '|' || line.back() != '|') return std::nullopt;
  return split(line.substr(1, line.size() - 2), '|');
}

std::optional<std::pair<std::string_view, std::string_view>> last_ratio(std::string_view cell) {
  const size_t slash = cell.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const auto before = tokens(cell.substr(0, slash));
  const auto after = tokens(cell.substr(slash + 1));
  if (before.empty() || after.empty()) return std::nullopt;
  return std::make_pair(before.back(), after.front());
}

std::string first_line(std::string_view s) {
  for (auto line : lines(s)) {
    line = trim(line);
    if (!line.empty()) return std::string(line.substr(0, 200));
  }
  return "no output";
}

}  // namespace mixserve::fleet::text

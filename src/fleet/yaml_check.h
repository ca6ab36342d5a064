// Helpers that read YAML configuration with validation: every error names the file, the line, the
// entry (chip, node, rule) and the key, as the style guide asks of configuration files.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace mixserve::fleet::yaml {

/// Largest configuration file read (bytes); larger files are refused rather than loaded.
inline constexpr std::uintmax_t kMaxFileBytes = 64ull << 20;

/// Where a value sits: the file (or a name for in-memory text) and the entry being read.
struct Where {
  std::string origin;  ///< file path, or a label such as "<builtin>"
  std::string entry;   ///< e.g. "chip 'nvidia-h100'", "node 'sh-a01'"; empty at top level
};

/// Reads a whole text file; throws kNotFound when it cannot be opened, kInvalidArgument when too big.
std::string read_file(const std::string& path);
/// Parses YAML text; syntax errors become kInvalidArgument naming origin and line.
YAML::Node parse(const std::string& text, const std::string& origin);

/// Throws kInvalidArgument "<origin>:<line>: <entry>: key '<key>': <problem>".
[[noreturn]] void fail_at(const Where& where, const YAML::Node& node, std::string_view key, std::string_view problem);

/// Fails when `map` is not a map or holds a key outside `allowed` (names the unknown key).
void check_keys(const Where& where, const YAML::Node& map, std::initializer_list<std::string_view> allowed);
/// The string under `key`; fails when missing and `required`, or when not a non-empty scalar.
std::string get_string(const Where& where, const YAML::Node& map, std::string_view key, bool required,
                       const std::string& fallback = "");
/// A finite number under `key`, >= 0 unless `allow_negative`; fails when missing and required.
double get_number(const Where& where, const YAML::Node& map, std::string_view key, bool required, double fallback = 0,
                  bool allow_negative = false);
/// A non-negative integer under `key`, at most `max_value`; fails when missing and required.
std::int64_t get_count(const Where& where, const YAML::Node& map, std::string_view key, bool required,
                       std::int64_t fallback, std::int64_t max_value);
/// A boolean under `key` (true/false); fails on other values.
bool get_bool(const Where& where, const YAML::Node& map, std::string_view key, bool fallback);
/// The sequence under `key` (an empty node when absent and not required); fails when not a list.
YAML::Node get_list(const Where& where, const YAML::Node& map, std::string_view key, bool required);

}  // namespace mixserve::fleet::yaml

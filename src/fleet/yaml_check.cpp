#include "fleet/yaml_check.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace mixserve::fleet::yaml {

std::string read_file(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) fail(ErrorCode::kNotFound, path, ": cannot read file: ", ec.message());
  if (size > kMaxFileBytes) {
    fail(ErrorCode::kInvalidArgument, path, ": file is ", size, " bytes, over the limit of ", kMaxFileBytes);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kNotFound, path, ": cannot open file");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

YAML::Node parse(const std::string& text, const std::string& origin) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(ErrorCode::kInvalidArgument, origin, ":", e.mark.line + 1, ": YAML syntax error: ", e.msg);
  }
}

void fail_at(const Where& where, const YAML::Node& node, std::string_view key, std::string_view problem) {
  std::ostringstream msg;
  msg << where.origin;
  if (node.IsDefined() && !node.Mark().is_null()) msg << ":" << node.Mark().line + 1;
  msg << ": ";
  if (!where.entry.empty()) msg << where.entry << ": ";
  if (!key.empty()) msg << "key '" << key << "': ";
  msg << problem;
  throw Error(ErrorCode::kInvalidArgument, msg.str());
}

void check_keys(const Where& where, const YAML::Node& map, std::initializer_list<std::string_view> allowed) {
  if (!map.IsMap()) fail_at(where, map, "", "expected a mapping of keys to values");
  for (const auto& item : map) {
    if (!item.first.IsScalar()) fail_at(where, item.first, "", "keys must be plain strings");
    const auto key = item.first.as<std::string>();
    bool known = false;
    for (auto a : allowed) known = known || a == key;
    if (!known) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      fail_at(where, item.first, key, "unknown key (allowed: " + list + ")");
    }
  }
}

namespace {

YAML::Node child(const YAML::Node& map, std::string_view key) {
  return map[std::string(key)];
}

}  // namespace

std::string get_string(const Where& where, const YAML::Node& map, std::string_view key, bool required,
                       const std::string& fallback) {
  const auto node = child(map, key);
  if (!node.IsDefined() || node.IsNull()) {
    if (required) fail_at(where, map, key, "required key is missing");
    return fallback;
  }
  if (!node.IsScalar()) fail_at(where, node, key, "expected a string");
  auto value = node.as<std::string>();
  if (value.empty()) fail_at(where, node, key, "must not be empty");
  return value;
}

double get_number(const Where& where, const YAML::Node& map, std::string_view key, bool required, double fallback,
                  bool allow_negative) {
  const auto node = child(map, key);
  if (!node.IsDefined() || node.IsNull()) {
    if (required) fail_at(where, map, key, "required key is missing");
    return fallback;
  }
  if (!node.IsScalar()) fail_at(where, node, key, "expected a number");
  double value = 0;
  try {
    value = node.as<double>();
  } catch (const YAML::Exception&) {
    fail_at(where, node, key, "expected a number, got '" + node.as<std::string>() + "'");
  }
  if (!std::isfinite(value)) fail_at(where, node, key, "must be a finite number");
  if (!allow_negative && value < 0) fail_at(where, node, key, "must not be negative, got " + node.as<std::string>());
  return value;
}

std::int64_t get_count(const Where& where, const YAML::Node& map, std::string_view key, bool required,
                       std::int64_t fallback, std::int64_t max_value) {
  const auto node = child(map, key);
  if (!node.IsDefined() || node.IsNull()) {
    if (required) fail_at(where, map, key, "required key is missing");
    return fallback;
  }
  if (!node.IsScalar()) fail_at(where, node, key, "expected a whole number");
  const auto text = node.as<std::string>();
  std::int64_t value = 0;
  try {
    value = node.as<std::int64_t>();
  } catch (const YAML::Exception&) {
    fail_at(where, node, key, "expected a whole number, got '" + text + "'");
  }
  if (value < 0) fail_at(where, node, key, "must not be negative, got " + text);
  if (value > max_value) fail_at(where, node, key, "is " + text + ", over the limit of " + std::to_string(max_value));
  return value;
}

bool get_bool(const Where& where, const YAML::Node& map, std::string_view key, bool fallback) {
  const auto node = child(map, key);
  if (!node.IsDefined() || node.IsNull()) return fallback;
  const auto text = node.IsScalar() ? node.as<std::string>() : std::string();
  if (text == "true") return true;
  if (text == "false") return false;
  fail_at(where, node, key, "expected true or false, got '" + text + "'");
}

YAML::Node get_list(const Where& where, const YAML::Node& map, std::string_view key, bool required) {
  const auto node = child(map, key);
  if (!node.IsDefined() || node.IsNull()) {
    if (required) fail_at(where, map, key, "required key is missing");
    return YAML::Node(YAML::NodeType::Sequence);
  }
  if (!node.IsSequence()) fail_at(where, node, key, "expected a list");
  return node;
}

}  // namespace mixserve::fleet::yaml

#include "policy/policy.h"

#include <algorithm>
#include <set>

#include "common/error.h"
#include "fleet/yaml_check.h"

namespace mixserve::policy {

namespace yaml = fleet::yaml;

std::string_view basis_name(Basis basis) {
  switch (basis) {
    case Basis::kDeviceCount: return "device_count";
    case Basis::kPeakFp16Tflops: return "peak_fp16_tflops";
    case Basis::kMemoryGib: return "memory_gib";
    case Basis::kDeviceHours: return "device_hours";
    case Basis::kServedTokens: return "served_tokens";
  }
  return "?";
}

bool basis_uses_usage(Basis basis) {
  return basis == Basis::kDeviceHours || basis == Basis::kServedTokens;
}

std::string Scope::to_string() const {
  switch (kind) {
    case Kind::kCenter: return "center";
    case Kind::kPool: return "pool:" + name;
    case Kind::kProject: return "project:" + name;
  }
  return "?";
}

bool Scope::contains(const fleet::Node& node) const {
  switch (kind) {
    case Kind::kCenter: return true;
    case Kind::kPool: return node.pool == name;
    case Kind::kProject: return node.project == name;
  }
  return false;
}

bool Rule::counts_state(fleet::NodeState state) const {
  if (state == fleet::NodeState::kRetired) return false;
  return std::find(count_states.begin(), count_states.end(), state) != count_states.end();
}

namespace {

Scope parse_scope(const yaml::Where& where, const YAML::Node& node, const std::string& text) {
  Scope scope;
  if (text == "center" || text == "centre") return scope;
  const auto colon = text.find(':');
  const auto kind = text.substr(0, colon);
  const auto name = colon == std::string::npos ? std::string() : text.substr(colon + 1);
  if ((kind == "pool" || kind == "project") && colon != std::string::npos) {
    if (name.empty()) yaml::fail_at(where, node, "scope", "'" + text + "' names no " + kind);
    scope.kind = kind == "pool" ? Scope::Kind::kPool : Scope::Kind::kProject;
    scope.name = name;
    return scope;
  }
  yaml::fail_at(where, node, "scope", "unknown scope '" + text + "' (allowed: center, pool:<name>, project:<name>)");
}

Rule parse_rule(const yaml::Where& top, const YAML::Node& node, std::size_t index) {
  yaml::Where where{top.origin, "rule #" + std::to_string(index)};
  if (!node.IsMap()) yaml::fail_at(where, node, "", "expected a mapping");
  Rule rule;
  rule.name = yaml::get_string(where, node, "name", true);
  where.entry = "rule '" + rule.name + "'";
  yaml::check_keys(where, node,
                   {"name", "min_domestic_share", "strict", "basis", "scope", "mode", "count_states", "description"});
  rule.min_domestic_share = yaml::get_number(where, node, "min_domestic_share", false, 0.5);
  if (rule.min_domestic_share > 1.0) {
    yaml::fail_at(where, node["min_domestic_share"], "min_domestic_share",
                  "must lie in [0, 1] (a share, not a percentage)");
  }
  rule.strict = yaml::get_bool(where, node, "strict", false);
  if (rule.strict && rule.min_domestic_share >= 1.0) {
    yaml::fail_at(where, node["strict"], "strict",
                  "a share can never be strictly above 1.0; use strict: false for domestic-only");
  }
  const auto basis = yaml::get_string(where, node, "basis", false, "device_count");
  bool found = false;
  for (auto b :
       {Basis::kDeviceCount, Basis::kPeakFp16Tflops, Basis::kMemoryGib, Basis::kDeviceHours, Basis::kServedTokens}) {
    if (basis_name(b) == basis) {
      rule.basis = b;
      found = true;
    }
  }
  if (!found) {
    yaml::fail_at(where, node["basis"], "basis",
                  "unknown basis '" + basis +
                      "' (allowed: device_count, peak_fp16_tflops, memory_gib, device_hours, served_tokens)");
  }
  rule.scope = parse_scope(where, node["scope"], yaml::get_string(where, node, "scope", false, "center"));
  const auto mode = yaml::get_string(where, node, "mode", false, "enforce");
  if (mode == "enforce") {
    rule.mode = Mode::kEnforce;
  } else if (mode == "audit") {
    rule.mode = Mode::kAudit;
  } else {
    yaml::fail_at(where, node["mode"], "mode", "unknown mode '" + mode + "' (allowed: enforce, audit)");
  }
  const auto states = node["count_states"];
  if (states.IsDefined()) {
    if (!states.IsSequence() || states.size() == 0) {
      yaml::fail_at(where, states, "count_states", "expected a non-empty list of active, idle, drained");
    }
    rule.count_states.clear();
    for (const auto& s : states) {
      const auto text = s.IsScalar() ? s.as<std::string>() : std::string();
      const auto parsed = fleet::parse_node_state(text);
      if (!parsed || *parsed == fleet::NodeState::kRetired) {
        yaml::fail_at(where, s, "count_states",
                      "'" + text + "' is not a countable state (allowed: active, idle, drained)");
      }
      rule.count_states.push_back(*parsed);
    }
  }
  return rule;
}

}  // namespace

Policy parse_policy(const std::string& text, const std::string& origin) {
  const auto root = yaml::parse(text, origin);
  const yaml::Where top{origin, ""};
  if (root.IsNull()) yaml::fail_at(top, root, "rules", "the file is empty; expected a 'rules' list");
  yaml::check_keys(top, root, {"rules", "name", "description"});
  const auto rules = yaml::get_list(top, root, "rules", true);
  if (rules.size() == 0) yaml::fail_at(top, rules, "rules", "the policy has no rules");
  Policy policy;
  std::set<std::string> names;
  std::size_t index = 0;
  for (const auto& r : rules) {
    auto rule = parse_rule(top, r, ++index);
    if (!names.insert(rule.name).second) {
      yaml::fail_at({origin, "rule '" + rule.name + "'"}, r["name"], "name", "duplicate rule name");
    }
    policy.rules.push_back(std::move(rule));
  }
  return policy;
}

Policy load_policy(const std::string& path) {
  return parse_policy(yaml::read_file(path), path);
}

}  // namespace mixserve::policy

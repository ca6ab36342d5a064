// Domestic-share rules (policy.yaml): threshold, strictness, basis, scope and mode. Schema and the
// counting rules: docs/policy.md.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fleet/fleet.h"

namespace mixserve::policy {

/// What a rule measures.
enum class Basis {
  kDeviceCount,     ///< number of accelerators
  kPeakFp16Tflops,  ///< sum of dense FP16 peaks (catalogue fp16_tflops)
  kMemoryGib,       ///< sum of device memory (catalogue memory_gib)
  kDeviceHours,     ///< device-hours from usage data
  kServedTokens,    ///< tokens served, from usage data
};

/// "device_count", "peak_fp16_tflops", ...
std::string_view basis_name(Basis basis);
/// Whether the basis needs usage data (device_hours, served_tokens).
bool basis_uses_usage(Basis basis);

/// Which part of the fleet a rule looks at.
struct Scope {
  enum class Kind { kCenter, kPool, kProject };
  Kind kind = Kind::kCenter;  ///< whole centre, one pool or one project
  std::string name;           ///< pool or project name; empty for the centre
  /// "center", "pool:<name>" or "project:<name>".
  std::string to_string() const;
  /// Whether `node` lies in this scope.
  bool contains(const fleet::Node& node) const;
};

/// enforce: a violation fails the check; audit: it is reported only.
enum class Mode { kEnforce, kAudit };

/// One rule.
struct Rule {
  std::string name;                 ///< unique within the policy
  double min_domestic_share = 0.5;  ///< threshold in [0, 1]
  bool strict = false;              ///< true: the share must be strictly above the threshold
  Basis basis = Basis::kDeviceCount;
  Scope scope;
  Mode mode = Mode::kEnforce;
  /// Node states whose devices count on capacity bases (device_count, peak_fp16_tflops, memory_gib).
  /// Default active, idle, drained: installed capacity counts; retired never does.
  std::vector<fleet::NodeState> count_states = {fleet::NodeState::kActive, fleet::NodeState::kIdle,
                                                fleet::NodeState::kDrained};
  /// Whether devices of a node in `state` count on capacity bases.
  bool counts_state(fleet::NodeState state) const;
};

/// A set of rules evaluated together.
struct Policy {
  std::vector<Rule> rules;  ///< in file order, at least one
};

/// Parses policy YAML text; throws kInvalidArgument naming `origin`, the rule and the key.
Policy parse_policy(const std::string& text, const std::string& origin);
/// Reads and parses a policy file.
Policy load_policy(const std::string& path);

}  // namespace mixserve::policy

// Evaluates a policy against a fleet (and optional usage): per rule the verdict, the share with its
// numerator and denominator, the margin, a plain-language explanation and the what-if.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "policy/policy.h"
#include "policy/usage.h"
#include "policy/what_if.h"

namespace mixserve::policy {

/// Verdict of one rule.
enum class Outcome {
  kCompliant,       ///< the share meets the threshold
  kViolation,       ///< it does not, and the rule is enforced
  kAuditViolation,  ///< it does not, but the rule is audit-only: reported, never fails the check
  kNotApplicable,   ///< nothing counted in scope (denominator 0): vacuously holds
};

/// "compliant", "violation", "audit-violation", "not-applicable".
std::string_view outcome_name(Outcome outcome);

/// Result of one rule.
struct RuleResult {
  Rule rule;  ///< the rule evaluated (copy)
  Outcome outcome = Outcome::kCompliant;
  bool compliant = true;               ///< share meets the threshold (true for not-applicable)
  double numerator = 0;                ///< domestic amount in the basis unit
  double denominator = 0;              ///< domestic + foreign amount
  std::optional<double> share;         ///< numerator / denominator; nullopt when the denominator is 0
  std::optional<double> margin;        ///< share - threshold; nullopt when share is
  std::int64_t domestic_devices = 0;   ///< counted domestic devices (capacity bases)
  std::int64_t foreign_devices = 0;    ///< counted foreign devices, unknown chips included
  std::int64_t unweighed_devices = 0;  ///< devices of unknown chips a weighted basis cannot weigh
  std::vector<ChipTally> tallies;      ///< per chip in scope, ordered by chip id
  WhatIf what_if;                      ///< smallest fixes when violated
  std::string explanation;             ///< one plain-language sentence
};

/// Result of a whole policy.
struct Evaluation {
  std::vector<RuleResult> results;  ///< one per rule, in policy order
  /// 0 when every enforced rule holds, 1 when an enforced rule is violated.
  int exit_code() const;
};

/// Evaluates `policy`. Usage-based rules need `usage` (else kInvalidArgument). Retired nodes and
/// non-accelerators (CPUs) never count; see docs/policy.md for the counting rules.
Evaluation evaluate(const Policy& policy, const fleet::Fleet& fleet, const fleet::Catalogue& catalogue,
                    const Usage* usage = nullptr);

}  // namespace mixserve::policy

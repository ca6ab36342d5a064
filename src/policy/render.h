// Presentation of an evaluation: JSON (one object per rule) and a human-readable table.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "policy/evaluate.h"

namespace mixserve::policy {

/// One rule result as JSON: rule, compliant, outcome, mode, basis, scope, share, numerator,
/// denominator, threshold, strict, margin, explanation, devices, what_if (null when not needed).
nlohmann::json rule_result_json(const RuleResult& result);
/// The whole evaluation: {"exit_code": n, "rules": [...]}.
nlohmann::json evaluation_json(const Evaluation& evaluation);
/// A fixed-width table (one row per rule) followed by each rule's explanation.
std::string evaluation_table(const Evaluation& evaluation);

}  // namespace mixserve::policy

// Domestic share of every basis in every scope of a fleet (centre, each pool, each project), not only
// the bases a policy's rules name: `policy check --ledger` records these so reports can chart them.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "policy/policy.h"
#include "policy/usage.h"

namespace mixserve::policy {

/// The domestic share of one basis in one scope, counted exactly as a rule would count it.
struct Measurement {
  Scope scope;                         ///< center, pool:<name> or project:<name>
  Basis basis = Basis::kDeviceCount;   ///< what is counted
  std::optional<double> share;         ///< numerator / denominator; nullopt when the denominator is 0
  double numerator = 0;                ///< domestic amount in the basis unit
  double denominator = 0;              ///< domestic + foreign amount
  std::int64_t unweighed_devices = 0;  ///< devices of unknown chips a weighted basis cannot weigh
};

/// Measures every scope (center, then pools, then projects, each sorted by name; every pool and project
/// a node of `fleet` names, in any state) x every basis: device_count, peak_fp16_tflops and memory_gib
/// always, device_hours and served_tokens only when `usage` is given. Counting rules as for a rule with
/// the default count_states (docs/policy.md); computed by evaluate() itself.
std::vector<Measurement> measure(const fleet::Fleet& fleet, const fleet::Catalogue& catalogue,
                                 const Usage* usage = nullptr);

/// [{"scope", "basis", "share" (null when nothing counted), "numerator", "denominator", "unweighed"}].
nlohmann::json measurements_json(const std::vector<Measurement>& measurements);

}  // namespace mixserve::policy

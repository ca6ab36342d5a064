// Replica placement (`mixserve place`): how many replicas of each model run on which node's devices,
// maximising served tokens/s under device memory, engine stack support, per-model demand and hard
// requirements, and the enforced domestic-share rules. Solved as an integer linear program (GLPK)
// over classes of interchangeable device groups, then mapped onto concrete nodes. docs/placement.md.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "gateway/demand.h"
#include "policy/policy.h"

namespace mixserve::gateway {

/// Knobs of one placement run.
struct PlacementOptions {
  /// Node states whose devices may receive replicas. Default active and idle; drained and retired never.
  std::vector<fleet::NodeState> states = {fleet::NodeState::kActive, fleet::NodeState::kIdle};
  /// true: aggregate identical device groups into classes (exact, see docs). false: one ILP column per
  /// concrete device group (tests compare both).
  bool aggregate = true;
  /// Wall-clock guard on one ILP solve, seconds; a plan found by then is reported as not proven optimal.
  double time_limit_s = 30;
};

/// Why a model gets less than its demand (or why a hard requirement cannot be met).
enum class Limit {
  kNone,      ///< demand fully served
  kStack,     ///< no eligible device runs a stack the model's engine supports
  kMemory,    ///< supported devices exist but no group holds one replica
  kCapacity,  ///< the devices that can host it are used up (by it or by other models)
  kShare,     ///< groups with room exist, but an enforced domestic-share rule forbids using them
};

/// "none", "stack", "memory", "capacity", "share".
std::string limit_name(Limit limit);

/// Replicas of one model on one device group of one node.
struct Assignment {
  std::string node;           ///< node name
  std::size_t group = 0;      ///< index into the node's devices list
  std::string chip;           ///< catalogue id
  std::int64_t replicas = 0;  ///< > 0
  std::int64_t devices_per_replica = 0;
  std::vector<std::int64_t> first_device;  ///< per replica, the index of its first device within the group
  double tokens_per_s_per_replica = 0;     ///< capacity of one replica
  double planned_tokens_per_s = 0;         ///< traffic planned onto these replicas (<= capacity)
  bool estimate = true;                    ///< throughput from the bandwidth estimate (not measured)
};

/// The plan of one model.
struct ModelPlan {
  std::string name;
  double demand_tokens_per_s = 0;
  double planned_tokens_per_s = 0;   ///< traffic served: min(demand, capacity), within share limits
  double capacity_tokens_per_s = 0;  ///< sum of its replicas' throughput
  std::int64_t replicas = 0;
  std::int64_t devices = 0;
  double min_tokens_per_s = 0;             ///< hard requirement (0: none)
  std::int64_t min_replicas = 0;           ///< hard requirement (0: none)
  Limit limit = Limit::kNone;              ///< why planned < demand
  std::vector<std::string> binding_rules;  ///< for kShare: rules one more replica (where there is room) would break
  std::string reason;                      ///< one plain-language sentence
  std::vector<Assignment> assignments;     ///< ordered by node order in the fleet, then group
};

/// The domestic share of the plan under one policy rule.
struct RuleShare {
  policy::Rule rule;            ///< copy
  bool constraint = false;      ///< true for enforce-mode rules (constraints of the ILP)
  double numerator = 0;         ///< domestic amount of the plan in scope (basis unit)
  double denominator = 0;       ///< domestic + foreign amount
  std::optional<double> share;  ///< nullopt when the plan uses nothing the rule counts in its scope
  bool holds = true;            ///< share meets the threshold (> when strict); true when share is null
  std::string explanation;      ///< one sentence
};

/// Why a set of hard requirements cannot be met.
struct Infeasibility {
  Limit limit = Limit::kCapacity;   ///< the binding constraint family
  std::vector<std::string> models;  ///< models whose hard requirements are involved
  std::vector<std::string> rules;   ///< for kShare: rules whose removal makes the demand feasible
  std::string explanation;          ///< plain language, names the numbers
};

/// Result of place().
struct PlacementResult {
  bool feasible = true;                      ///< false: hard requirements cannot all be met (no plan)
  bool optimal = true;                       ///< planned throughput proven within the MIP gap (0.1%) of optimal
  bool devices_minimal = true;               ///< the device count (tie-break) proven minimal at that throughput
  double bound_tokens_per_s = 0;             ///< upper bound on servable tokens/s (LP relaxation)
  double gap = 0;                            ///< (bound - planned) / bound
  std::vector<ModelPlan> models;             ///< in demand order (empty when infeasible)
  std::vector<RuleShare> rules;              ///< in policy order (empty when infeasible)
  std::vector<Infeasibility> infeasibility;  ///< when !feasible: one entry per binding cause
  double demand_tokens_per_s = 0;            ///< sum over models
  double planned_tokens_per_s = 0;           ///< sum over models
  std::int64_t eligible_nodes = 0;           ///< nodes in an allowed state with devices
  std::int64_t eligible_devices = 0;
  std::int64_t devices_used = 0;
  std::size_t classes = 0;         ///< device-group classes in the ILP
  std::size_t solves = 0;          ///< ILP solves run (explanations included)
  std::vector<std::string> notes;  ///< estimates used, states considered, ...
  /// 0 plan found, 1 infeasible.
  int exit_code() const { return feasible ? 0 : 1; }
};

/// Plans replicas for `demand` on `fleet` under `policy` (nullptr: no rules). Throws kInvalidArgument
/// when a fleet chip is missing from `catalogue`, kUnavailable when the solver fails or finds no plan
/// in its time limit.
PlacementResult place(const fleet::Fleet& fleet, const fleet::Catalogue& catalogue, const Demand& demand,
                      const policy::Policy* policy, const PlacementOptions& options = {});

/// The result as JSON (schema in docs/placement.md).
nlohmann::json placement_json(const PlacementResult& result);
/// The result as a human-readable table with reasons.
std::string placement_table(const PlacementResult& result);

}  // namespace mixserve::gateway

// Internal to placement: the aggregated problem (classes of interchangeable device groups) and the
// ILP over it. Not part of the public interface; tests reach it only through place().
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "gateway/demand.h"
#include "gateway/placement.h"
#include "policy/policy.h"

namespace mixserve::gateway::detail {

/// How a chip counts in domestic-share rules.
enum class Origin { kDomestic, kForeign, kUncounted };

/// One concrete device group: fleet.nodes[node].devices[group].
struct Member {
  std::size_t node = 0;
  std::size_t group = 0;
};

/// A chip present in the eligible fleet.
struct Chip {
  fleet::ChipSpec spec;  ///< catalogue entry (copy)
  Origin origin = Origin::kForeign;
};

/// Device groups of one chip and size whose nodes lie in the same enforced-rule scopes: replicas
/// placed on any of them count identically in every constraint, so the ILP sees only their number.
struct GroupClass {
  std::size_t chip = 0;         ///< index into Problem::chips
  std::int64_t size = 0;        ///< devices per group
  std::vector<bool> in_scope;   ///< per enforced rule: the nodes lie in its scope
  std::vector<Member> members;  ///< concrete groups, active nodes first, then fleet order
  /// true: one capacity row sum(devices x replicas) <= members x size is exact (one member, or the
  /// replica sizes form a divisibility chain dividing `size`). false: per-node packing patterns.
  bool knapsack = true;
  std::vector<std::int64_t> sizes;                  ///< distinct devices-per-replica of fitting models, descending
  std::vector<std::vector<std::int64_t>> patterns;  ///< maximal packings of one group: count per `sizes` entry
  std::size_t served_key = 0;                       ///< index into Problem::served_keys
};

/// Replicas whose served tokens count alike in every enforced served_tokens rule.
struct ServedKey {
  Origin origin = Origin::kForeign;
  std::vector<bool> in_scope;  ///< per enforced rule (only served_tokens rules set)
};

/// An enforced rule as a linear constraint.
struct RuleRow {
  std::size_t policy_index = 0;  ///< index into the policy's rules
  policy::Basis basis = policy::Basis::kDeviceCount;
  double threshold = 0;  ///< effective threshold (strict rules: + kStrictMargin)
};

/// Strict rules are enforced as share >= threshold + kStrictMargin (docs/placement.md).
inline constexpr double kStrictMargin = 1e-6;

/// The aggregated placement problem.
struct Problem {
  const Demand* demand = nullptr;
  std::vector<Chip> chips;
  std::vector<std::vector<std::optional<ReplicaShape>>> shape;  ///< [model][chip]; nullopt: stack unsupported
  std::vector<GroupClass> classes;
  std::vector<ServedKey> served_keys;
  std::vector<RuleRow> rules;  ///< enforced rules, in policy order
  std::int64_t eligible_nodes = 0;
  std::int64_t eligible_devices = 0;

  /// Whether model `m` can run on class `c` (stack supported and one replica fits a group).
  bool fits(std::size_t m, std::size_t c) const {
    const auto& s = shape[m][classes[c].chip];
    return s && s->devices <= classes[c].size;
  }
};

/// Most packing patterns one class may have; past it the class is split into single groups (exact,
/// larger ILP).
inline constexpr std::size_t kMaxPatterns = 2000;

/// Builds the problem: eligible groups, their classes and packing patterns. Throws kInvalidArgument
/// for a chip missing from the catalogue.
Problem build_problem(const fleet::Fleet& fleet, const fleet::Catalogue& catalogue, const Demand& demand,
                      const policy::Policy* policy, const PlacementOptions& options);

/// What one ILP solve optimises.
enum class Goal {
  kThroughput,     ///< max served tokens/s (tiny tie-break on devices)
  kDevices,        ///< min devices used, with served tokens/s >= SolveSpec::min_total (integral objective)
  kModelTokens,    ///< max served tokens/s of SolveSpec::model
  kModelReplicas,  ///< max replicas of SolveSpec::model
};

/// One ILP solve: the goal and which constraint families are switched on.
struct SolveSpec {
  Goal goal = Goal::kThroughput;
  std::size_t model = 0;      ///< for kModelTokens / kModelReplicas
  std::vector<bool> rule_on;  ///< per Problem::rules entry
  std::vector<bool> hard_on;  ///< per model: min_tokens_per_s / min_replicas enforced
  double min_total = 0;       ///< for kDevices
  double time_limit_s = 30;
  /// When set ([model][class]), replica counts are fixed to these values: kThroughput then only
  /// routes traffic onto a given plan (an LP).
  const std::vector<std::vector<std::int64_t>>* fixed_replicas = nullptr;
  /// A plan feasible for this spec (Solution::cols of a solve over the same problem), used as the
  /// first incumbent; nullptr: none.
  const std::vector<double>* warm_start = nullptr;
};

/// Outcome of one ILP solve.
struct Solution {
  /// kOptimal: optimal within kMipGap; kLimit: a plan, search stopped by a node or time limit;
  /// kInfeasible: proven; kUnknown: no plan found within the limits, infeasibility not proven.
  enum class Status { kOptimal, kLimit, kInfeasible, kUnknown };
  Status status = Status::kInfeasible;
  std::vector<double> cols;  ///< raw column values (1-based), for SolveSpec::warm_start
  double bound = 0;          ///< kThroughput: upper bound on served tokens/s from the LP relaxation
  std::vector<std::vector<std::int64_t>> replicas;       ///< [model][class]
  std::vector<std::vector<std::int64_t>> pattern_nodes;  ///< [class][pattern]: groups packed that way
  std::vector<std::vector<double>> served;               ///< [model][served key]: tokens/s
  double objective = 0;

  bool found() const { return status == Status::kOptimal || status == Status::kLimit; }
  /// Served tokens/s of model `m` (sum over keys).
  double served_total(std::size_t m) const;
  /// Served tokens/s of all models.
  double served_total() const;
  /// Replicas of model `m`.
  std::int64_t replicas_of(std::size_t m) const;
};

/// Relative optimality gap at which branch and bound stops (GLPK mip_gap): see docs/placement.md.
inline constexpr double kMipGap = 1e-3;
/// Branch-and-bound work one solve may do, in nodes x columns; past it the best plan so far is kept
/// (kLimit). Deterministic, unlike a time limit: small problems get thousands of nodes, the
/// 10,000-node benchmark a few dozen.
inline constexpr double kNodeColumnBudget = 2e5;

/// Solves one ILP with GLPK. Throws kUnavailable when GLPK fails outright; a search that ends
/// without a plan and without proof of infeasibility returns status kUnknown.
Solution solve(const Problem& problem, const SolveSpec& spec);

/// What the eligible fleet offers one model on its own, ignoring the other models and the rules.
struct Reach {
  bool stack = false;             ///< some eligible device runs a stack the engine supports
  bool memory = false;            ///< some supported group holds one replica
  std::int64_t max_replicas = 0;  ///< replicas if the model had every supported group to itself
  double max_tokens = 0;          ///< min(demand, throughput of those replicas)
  std::string hosts;              ///< "16 x nvidia-h20 (1 per replica, 812 tok/s each*), ..."
  std::string no_stack;           ///< why stack is false (empty otherwise)
  std::string no_memory;          ///< why memory is false (empty otherwise)
};

/// Reach of every model.
std::vector<Reach> reach(const Problem& problem, const PlacementOptions& options);

/// Static checks of the hard requirements, no solve: a model whose engine runs on no eligible chip
/// (stack), whose replica fits no supported group (memory) or whose requirement exceeds what all its
/// supported devices give (capacity alone). Adds result.infeasibility entries and clears feasible.
void check_reach(const Problem& problem, const std::vector<Reach>& reach, PlacementResult& result);

/// For a full ILP proven infeasible: re-solves with one constraint family relaxed at a time (all
/// share rules; each rule; each model's hard requirements) and fills result.infeasibility.
void explain_infeasible(const Problem& problem, const std::vector<Reach>& reach, const policy::Policy* policy,
                        const PlacementOptions& options, PlacementResult& result);

/// Concrete replicas of each model ([model]), keyed by (node index, group index): fleet order.
using Placed = std::vector<std::map<std::pair<std::size_t, std::size_t>, Assignment>>;

/// Whether a share numerator / denominator meets `rule` (strict: above); true when nothing counts.
/// Relative tolerance 1e-9 for the solver's floating point.
bool share_holds(double numerator, double denominator, const policy::Rule& rule);

/// Adds replicas for models below their demand on groups with room where no enforced rule breaks
/// (Assignment::planned_tokens_per_s must be set).
void fill(const Problem& problem, const fleet::Fleet& fleet, const policy::Policy* policy, Placed& placed);
/// Adds one replica of model `m` on member `member` of class `c`, its first device at `offset` (placement.cpp).
void record_replica(const Problem& p, const fleet::Fleet& fleet, Placed& placed, std::size_t m, std::size_t c,
                    std::size_t member, std::int64_t offset);

/// Sets limit, reason and binding_rules of every model plan in `result` from the concrete plan.
void explain_plan(const Problem& problem, const fleet::Fleet& fleet, const policy::Policy* policy,
                  const std::vector<Reach>& reach, const Placed& placed, PlacementResult& result);

/// "1,234.5" style number with thousands separators and `decimals` decimals.
std::string format_number(double value, int decimals);
/// Human list "a, b and c".
std::string join_list(const std::vector<std::string>& items);

/// A spec with every rule and every hard requirement on.
SolveSpec full_spec(const Problem& problem, Goal goal, double time_limit_s);

}  // namespace mixserve::gateway::detail

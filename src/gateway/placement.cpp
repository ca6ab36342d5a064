// place(): builds the class problem, solves it in phases (max served tokens/s; fewest devices at
// that throughput; routing onto the chosen replicas), maps class counts onto concrete device groups,
// tops up where room is left, measures the plan against every policy rule and explains shortfalls.
#include "gateway/placement.h"

#include <algorithm>
#include <map>

#include "common/error.h"
#include "gateway/placement_problem.h"

namespace mixserve::gateway {

std::string limit_name(Limit limit) {
  switch (limit) {
    case Limit::kNone: return "none";
    case Limit::kStack: return "stack";
    case Limit::kMemory: return "memory";
    case Limit::kCapacity: return "capacity";
    case Limit::kShare: return "share";
  }
  return "?";
}

namespace detail {

void record_replica(const Problem& p, const fleet::Fleet& fleet, Placed& placed, std::size_t m, std::size_t c,
                    std::size_t member, std::int64_t offset) {
  const auto& cls = p.classes[c];
  const auto& mem = cls.members.at(member);
  auto& a = placed[m][{mem.node, mem.group}];
  if (a.replicas == 0) {
    const auto& shape = *p.shape[m][cls.chip];
    a.node = fleet.nodes[mem.node].name;
    a.group = mem.group;
    a.chip = p.chips[cls.chip].spec.id;
    a.devices_per_replica = shape.devices;
    a.tokens_per_s_per_replica = shape.tokens_per_s;
    a.estimate = shape.estimate;
  }
  ++a.replicas;
  a.first_device.push_back(offset);
}

}  // namespace detail

namespace {

using detail::Placed;
using detail::Problem;
using detail::Solution;


// Class counts onto concrete groups; exact for both packing kinds (docs/placement.md, "Aggregation").
Placed disaggregate(const Problem& p, const fleet::Fleet& fleet, const Solution& sol) {
  const std::size_t nm = p.shape.size();
  Placed placed(nm);
  for (std::size_t c = 0; c < p.classes.size(); ++c) {
    const auto& cls = p.classes[c];
    if (cls.knapsack) {
      // Largest replicas first, each group filled before the next: with divisible sizes (or a single
      // group) a group skipped for lack of room is full, so the cursor never moves back.
      std::vector<std::pair<std::int64_t, std::size_t>> order;
      for (std::size_t m = 0; m < nm; ++m) {
        if (sol.replicas[m][c] > 0) order.push_back({p.shape[m][cls.chip]->devices, m});
      }
      std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
      std::size_t cursor = 0;
      std::int64_t used = 0;
      for (const auto& [d, m] : order) {
        for (std::int64_t r = 0; r < sol.replicas[m][c]; ++r) {
          while (cursor < cls.members.size() && cls.size - used < d) {
            ++cursor;
            used = 0;
          }
          MIXSERVE_CHECK(cursor < cls.members.size(), "class capacity exceeded while placing replicas");
          detail::record_replica(p, fleet, placed, m, c, cursor, used);
          used += d;
        }
      }
      continue;
    }
    // Packing patterns: the first z_0 groups take pattern 0, the next z_1 pattern 1, ...; then each
    // replica size's slots are handed to the models of that size in demand order.
    std::vector<std::vector<std::pair<std::size_t, std::int64_t>>> slots(cls.sizes.size());
    std::size_t member = 0;
    for (std::size_t q = 0; q < cls.patterns.size(); ++q) {
      for (std::int64_t z = 0; z < sol.pattern_nodes[c][q]; ++z, ++member) {
        std::int64_t offset = 0;
        for (std::size_t s = 0; s < cls.sizes.size(); ++s) {
          for (std::int64_t a = 0; a < cls.patterns[q][s]; ++a, offset += cls.sizes[s]) {
            slots[s].push_back({member, offset});
          }
        }
      }
    }
    MIXSERVE_CHECK(member <= cls.members.size(), "more packed groups than the class holds");
    for (std::size_t s = 0; s < cls.sizes.size(); ++s) {
      std::size_t next = 0;
      for (std::size_t m = 0; m < nm; ++m) {
        if (sol.replicas[m][c] == 0 || p.shape[m][cls.chip]->devices != cls.sizes[s]) continue;
        for (std::int64_t r = 0; r < sol.replicas[m][c]; ++r) {
          MIXSERVE_CHECK(next < slots[s].size(), "more replicas than packing slots");
          detail::record_replica(p, fleet, placed, m, c, slots[s][next].first, slots[s][next].second);
          ++next;
        }
      }
    }
  }
  return placed;
}

// Served traffic of each (model, served key) spread over its replicas in proportion to their throughput.
void spread_served(const Problem& p, const Solution& sol, Placed& placed) {
  std::map<std::pair<std::size_t, std::size_t>, std::size_t> class_of;  // (node, group) -> class
  for (std::size_t c = 0; c < p.classes.size(); ++c) {
    for (const auto& mem : p.classes[c].members) class_of[{mem.node, mem.group}] = c;
  }
  for (std::size_t m = 0; m < placed.size(); ++m) {
    std::vector<double> capacity(p.served_keys.size(), 0.0);
    for (const auto& [key, a] : placed[m]) {
      capacity[p.classes[class_of.at(key)].served_key] += a.tokens_per_s_per_replica * static_cast<double>(a.replicas);
    }
    for (auto& [key, a] : placed[m]) {
      const auto k = p.classes[class_of.at(key)].served_key;
      const double served = std::min(sol.served[m][k], capacity[k]);
      a.planned_tokens_per_s =
          capacity[k] > 0 ? served * a.tokens_per_s_per_replica * static_cast<double>(a.replicas) / capacity[k] : 0.0;
    }
  }
}

// Per-model totals and assignment lists of the concrete plan.
void summarize(Placed& placed, std::vector<ModelPlan>& plans) {
  for (std::size_t m = 0; m < placed.size(); ++m) {
    auto& plan = plans[m];
    for (auto& [key, a] : placed[m]) {
      std::sort(a.first_device.begin(), a.first_device.end());
      plan.planned_tokens_per_s += a.planned_tokens_per_s;
      plan.capacity_tokens_per_s += a.tokens_per_s_per_replica * static_cast<double>(a.replicas);
      plan.replicas += a.replicas;
      plan.devices += a.replicas * a.devices_per_replica;
      plan.assignments.push_back(a);
    }
    plan.planned_tokens_per_s = std::min(plan.planned_tokens_per_s, plan.demand_tokens_per_s);
  }
}

std::string basis_unit(policy::Basis basis) {
  switch (basis) {
    case policy::Basis::kDeviceCount:
    case policy::Basis::kDeviceHours: return "devices";
    case policy::Basis::kPeakFp16Tflops: return "TFLOPS FP16";
    case policy::Basis::kMemoryGib: return "GiB";
    case policy::Basis::kServedTokens: return "tokens/s";
  }
  return "";
}

// The plan's share under every rule, counted from the concrete assignments.
std::vector<RuleShare> measure_rules(const Problem& p, const fleet::Fleet& fleet, const policy::Policy* policy,
                                     const Placed& placed) {
  std::vector<RuleShare> out;
  if (policy == nullptr) return out;
  std::map<std::string, const detail::Chip*> chips;
  for (const auto& chip : p.chips) chips[chip.spec.id] = &chip;
  for (const auto& rule : policy->rules) {
    RuleShare rs;
    rs.rule = rule;
    rs.constraint = rule.mode == policy::Mode::kEnforce;
    for (const auto& per_model : placed) {
      for (const auto& [key, a] : per_model) {
        if (!rule.scope.contains(fleet.nodes[key.first])) continue;
        const auto* chip = chips.at(a.chip);
        if (chip->origin == detail::Origin::kUncounted) continue;
        const double devices = static_cast<double>(a.replicas * a.devices_per_replica);
        double amount = devices;
        if (rule.basis == policy::Basis::kPeakFp16Tflops) amount = devices * chip->spec.fp16_tflops.value;
        if (rule.basis == policy::Basis::kMemoryGib) amount = devices * chip->spec.memory_gib.value;
        if (rule.basis == policy::Basis::kServedTokens) amount = a.planned_tokens_per_s;
        rs.denominator += amount;
        if (chip->origin == detail::Origin::kDomestic) rs.numerator += amount;
      }
    }
    const auto unit = basis_unit(rule.basis);
    const int decimals = unit == "devices" ? 0 : 1;
    const auto required =
        std::string(rule.strict ? ">" : ">=") + " " + detail::format_number(rule.min_domestic_share * 100, 1) + "%";
    const auto how = rs.constraint ? "enforced: a constraint of the plan" : "audit: reported, not a constraint";
    if (rs.denominator <= 0) {
      rs.explanation =
          "the plan uses nothing this rule counts in " + rule.scope.to_string() + ": holds vacuously (" + how + ")";
    } else {
      rs.share = rs.numerator / rs.denominator;
      rs.holds = detail::share_holds(rs.numerator, rs.denominator, rule);
      rs.explanation = "domestic " + detail::format_number(rs.numerator, decimals) + " of " +
                       detail::format_number(rs.denominator, decimals) + " " + unit + " (" +
                       detail::format_number(*rs.share * 100, 1) + "%) in " + rule.scope.to_string() + "; required " +
                       required + (rs.holds ? ": holds" : ": below") + " (" + how + ")";
    }
    out.push_back(std::move(rs));
  }
  return out;
}

}  // namespace

PlacementResult place(const fleet::Fleet& fleet, const fleet::Catalogue& catalogue, const Demand& demand,
                      const policy::Policy* policy, const PlacementOptions& options) {
  const auto problem = detail::build_problem(fleet, catalogue, demand, policy, options);
  const auto reach = detail::reach(problem, options);
  PlacementResult result;
  result.eligible_nodes = problem.eligible_nodes;
  result.eligible_devices = problem.eligible_devices;
  result.classes = problem.classes.size();
  for (const auto& m : demand.models) result.demand_tokens_per_s += m.demand_tokens_per_s;
  std::string states;
  for (auto s : options.states) states += (states.empty() ? "" : ", ") + std::string(fleet::node_state_name(s));
  result.notes.push_back("devices of nodes in state " + states + " may receive replicas");

  detail::check_reach(problem, reach, result);
  if (!result.feasible) return result;
  auto spec = detail::full_spec(problem, detail::Goal::kThroughput, options.time_limit_s);
  auto best = detail::solve(problem, spec);
  ++result.solves;
  if (best.status == Solution::Status::kUnknown) {
    fail(ErrorCode::kUnavailable, "placement: the solver found no plan within its limits (", options.time_limit_s,
         " s per solve, ", problem.classes.size(),
         " device-group classes); raise --time-limit or relax the hard "
         "requirements");
  }
  if (!best.found()) {
    result.feasible = false;
    detail::explain_infeasible(problem, reach, policy, options, result);
    return result;
  }
  // Phase 2: the fewest devices that keep the throughput (to a relative 1e-6). Its objective is a
  // whole number of devices, which lets GLPK round bounds and prune; phase 3 then routes the most
  // traffic onto the replicas chosen (an LP: counts fixed).
  const double throughput = best.served_total();
  auto devices_spec = detail::full_spec(problem, detail::Goal::kDevices, options.time_limit_s);
  devices_spec.min_total = throughput - 1e-6 * std::max(1.0, throughput);
  devices_spec.warm_start = &best.cols;
  auto lean = detail::solve(problem, devices_spec);
  ++result.solves;
  result.optimal = best.status == Solution::Status::kOptimal;
  result.bound_tokens_per_s = std::max(throughput, best.bound);
  result.devices_minimal = lean.status == Solution::Status::kOptimal;
  if (lean.found()) {
    auto route_spec = detail::full_spec(problem, detail::Goal::kThroughput, options.time_limit_s);
    route_spec.fixed_replicas = &lean.replicas;
    auto routed = detail::solve(problem, route_spec);
    ++result.solves;
    if (routed.found()) best = std::move(routed);
  }

  auto placed = disaggregate(problem, fleet, best);
  spread_served(problem, best, placed);
  detail::fill(problem, fleet, policy, placed);
  for (const auto& m : demand.models) {
    ModelPlan plan;
    plan.name = m.name;
    plan.demand_tokens_per_s = m.demand_tokens_per_s;
    plan.min_tokens_per_s = m.min_tokens_per_s;
    plan.min_replicas = m.min_replicas;
    result.models.push_back(std::move(plan));
  }
  summarize(placed, result.models);
  for (const auto& plan : result.models) {
    result.planned_tokens_per_s += plan.planned_tokens_per_s;
    result.devices_used += plan.devices;
  }
  result.bound_tokens_per_s = std::max(result.bound_tokens_per_s, result.planned_tokens_per_s);
  result.gap = result.bound_tokens_per_s > 0
                   ? (result.bound_tokens_per_s - result.planned_tokens_per_s) / result.bound_tokens_per_s
                   : 0.0;
  result.rules = measure_rules(problem, fleet, policy, placed);
  for (const auto& r : result.rules) {
    if (r.constraint && !r.holds) {
      result.notes.push_back("rule '" + r.rule.name + "' misses its threshold by less than the solver's tolerance");
    }
  }
  detail::explain_plan(problem, fleet, policy, reach, placed, result);
  if (!result.optimal) {
    result.notes.push_back(
        "the solver stopped at its search limit before proving the throughput optimal: it is within " +
        detail::format_number(100 * result.gap, 3) + "% of the upper bound " +
        detail::format_number(result.bound_tokens_per_s, 1) + " tokens/s");
  }
  if (!result.devices_minimal) {
    result.notes.push_back("the device count is the best found within the search limit, not proven minimal");
  }
  bool estimated = false;
  for (const auto& plan : result.models) {
    for (const auto& a : plan.assignments) estimated = estimated || a.estimate;
  }
  if (estimated) {
    result.notes.push_back(
        "replica throughput marked * is an estimate: efficiency x devices x memory bandwidth / bytes per token "
        "(bytes per token = replica memory / batch); give measured figures with tokens_per_s in demand.yaml");
  }
  return result;
}

}  // namespace mixserve::gateway

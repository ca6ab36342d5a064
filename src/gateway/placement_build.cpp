// Builds the aggregated placement problem: eligible device groups grouped into classes, packing
// patterns where the aggregate capacity row alone would not be exact. Why this is exact:
// docs/placement.md, "Aggregation".
#include <algorithm>
#include <map>
#include <tuple>

#include "common/error.h"
#include "gateway/placement_problem.h"

namespace mixserve::gateway::detail {
namespace {

// Every maximal multiset of replica sizes (descending `sizes`) that fits `size` devices: no further
// replica of any size fits in what is left. Stops once `limit` is exceeded.
void enumerate_patterns(const std::vector<std::int64_t>& sizes, std::size_t index, std::int64_t left,
                        std::vector<std::int64_t>& current, std::vector<std::vector<std::int64_t>>& out,
                        std::size_t limit) {
  if (out.size() > limit) return;
  if (index == sizes.size()) {
    if (left < sizes.back()) out.push_back(current);
    return;
  }
  for (std::int64_t n = left / sizes[index]; n >= 0; --n) {
    current[index] = n;
    enumerate_patterns(sizes, index + 1, left - n * sizes[index], current, out, limit);
    if (out.size() > limit) break;
  }
  current[index] = 0;
}

// Divisible item sizes (each divides the next larger one and the group size) pack perfectly: first
// fit in decreasing size order fills every group before opening the next, so any replica mix whose
// devices sum to at most members x size fits (Coffman, Garey and Johnson, "Bin packing with divisible
// item sizes", J. Complexity 3, 1987).
bool divisible_chain(const std::vector<std::int64_t>& sizes, std::int64_t size) {
  if (sizes.empty()) return true;
  if (size % sizes.front() != 0) return false;
  for (std::size_t i = 1; i < sizes.size(); ++i) {
    if (sizes[i - 1] % sizes[i] != 0) return false;
  }
  return true;
}

void set_packing(const Problem& p, GroupClass& cls) {
  cls.sizes.clear();
  cls.patterns.clear();
  for (std::size_t m = 0; m < p.shape.size(); ++m) {
    const auto& s = p.shape[m][cls.chip];
    if (s && s->devices <= cls.size) cls.sizes.push_back(s->devices);
  }
  std::sort(cls.sizes.begin(), cls.sizes.end(), std::greater<>());
  cls.sizes.erase(std::unique(cls.sizes.begin(), cls.sizes.end()), cls.sizes.end());
  cls.knapsack = cls.members.size() == 1 || divisible_chain(cls.sizes, cls.size);
  if (cls.knapsack) return;
  std::vector<std::int64_t> current(cls.sizes.size(), 0);
  enumerate_patterns(cls.sizes, 0, cls.size, current, cls.patterns, kMaxPatterns);
}

}  // namespace

Problem build_problem(const fleet::Fleet& fleet, const fleet::Catalogue& catalogue, const Demand& demand,
                      const policy::Policy* policy, const PlacementOptions& options) {
  Problem p;
  p.demand = &demand;
  bool served_rules = false;
  if (policy != nullptr) {
    for (std::size_t i = 0; i < policy->rules.size(); ++i) {
      const auto& rule = policy->rules[i];
      if (rule.mode != policy::Mode::kEnforce) continue;
      p.rules.push_back({i, rule.basis, rule.min_domestic_share + (rule.strict ? kStrictMargin : 0.0)});
      served_rules = served_rules || rule.basis == policy::Basis::kServedTokens;
    }
  }
  std::map<std::string, std::size_t> chip_index;
  std::map<std::tuple<std::size_t, std::int64_t, std::vector<bool>>, std::size_t> class_index;
  std::vector<GroupClass> classes;
  for (std::size_t n = 0; n < fleet.nodes.size(); ++n) {
    const auto& node = fleet.nodes[n];
    if (std::find(options.states.begin(), options.states.end(), node.state) == options.states.end()) continue;
    if (node.state == fleet::NodeState::kRetired) continue;
    bool counted = false;
    for (std::size_t g = 0; g < node.devices.size(); ++g) {
      const auto& group = node.devices[g];
      if (group.count <= 0) continue;
      auto it = chip_index.find(group.chip);
      if (it == chip_index.end()) {
        auto spec = catalogue.find(group.chip);
        if (!spec) {
          fail(ErrorCode::kInvalidArgument, "node '", node.name, "': chip '", group.chip,
               "' is not in the catalogue; placement needs its memory and bandwidth (add it with --catalogue)");
        }
        Chip chip;
        chip.origin = !spec->accelerator                                    ? Origin::kUncounted
                      : catalogue.is_domestic(spec->id, fleet.home_country) ? Origin::kDomestic
                                                                            : Origin::kForeign;
        chip.spec = std::move(*spec);
        it = chip_index.emplace(group.chip, p.chips.size()).first;
        p.chips.push_back(std::move(chip));
      }
      std::vector<bool> in_scope(p.rules.size());
      for (std::size_t r = 0; r < p.rules.size(); ++r) {
        in_scope[r] = policy->rules[p.rules[r].policy_index].scope.contains(node);
      }
      auto key = std::make_tuple(it->second, group.count, in_scope);
      std::size_t c = classes.size();
      if (options.aggregate) {
        const auto [pos, inserted] = class_index.emplace(std::move(key), classes.size());
        c = pos->second;
        if (!inserted) {
          classes[c].members.push_back({n, g});
          counted = true;
          p.eligible_devices += group.count;
          continue;
        }
      }
      GroupClass cls;
      cls.chip = it->second;
      cls.size = group.count;
      cls.in_scope = std::move(in_scope);
      cls.members.push_back({n, g});
      classes.push_back(std::move(cls));
      counted = true;
      p.eligible_devices += group.count;
    }
    if (counted) ++p.eligible_nodes;
  }

  p.shape.assign(demand.models.size(), std::vector<std::optional<ReplicaShape>>(p.chips.size()));
  for (std::size_t m = 0; m < demand.models.size(); ++m) {
    for (std::size_t k = 0; k < p.chips.size(); ++k) {
      p.shape[m][k] = replica_shape(demand.models[m], p.chips[k].spec, demand.defaults);
    }
  }

  std::map<std::pair<int, std::vector<bool>>, std::size_t> key_index;
  for (auto& cls : classes) {
    // Active nodes first: an idle node is used only when active ones do not suffice.
    std::stable_partition(cls.members.begin(), cls.members.end(),
                          [&](const Member& mem) { return fleet.nodes[mem.node].state == fleet::NodeState::kActive; });
    set_packing(p, cls);
    if (!cls.knapsack && cls.patterns.size() > kMaxPatterns) {
      // Too many packings to list: one class per group, where the capacity row is exact.
      for (const auto& mem : cls.members) {
        GroupClass single = cls;
        single.members = {mem};
        single.knapsack = true;
        single.patterns.clear();
        p.classes.push_back(std::move(single));
      }
      continue;
    }
    p.classes.push_back(std::move(cls));
  }
  for (auto& cls : p.classes) {
    std::vector<bool> served_scope(p.rules.size());
    for (std::size_t r = 0; r < p.rules.size(); ++r) {
      served_scope[r] = p.rules[r].basis == policy::Basis::kServedTokens && cls.in_scope[r];
    }
    const int origin = served_rules ? static_cast<int>(p.chips[cls.chip].origin) : 0;
    const auto [pos, inserted] = key_index.emplace(std::make_pair(origin, served_scope), p.served_keys.size());
    if (inserted) p.served_keys.push_back({static_cast<Origin>(origin), served_scope});
    cls.served_key = pos->second;
  }
  return p;
}

SolveSpec full_spec(const Problem& problem, Goal goal, double time_limit_s) {
  SolveSpec spec;
  spec.goal = goal;
  spec.rule_on.assign(problem.rules.size(), true);
  spec.hard_on.assign(problem.shape.size(), true);
  spec.time_limit_s = time_limit_s;
  return spec;
}

}  // namespace mixserve::gateway::detail

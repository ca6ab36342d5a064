// After the ILP: adds a replica for a model below its demand wherever a device group still has room
// and no enforced rule would break (it recovers what the solver's optimality gap may leave), then
// explains each remaining shortfall from the concrete plan: stack, memory, capacity (no group that
// can host it has room) or share (the groups with room would break a named rule).
#include <algorithm>
#include <map>
#include <set>

#include "common/error.h"
#include "gateway/placement_problem.h"

namespace mixserve::gateway::detail {
namespace {

double weight(const fleet::ChipSpec& chip, policy::Basis basis) {
  if (basis == policy::Basis::kPeakFp16Tflops) return chip.fp16_tflops.value;
  if (basis == policy::Basis::kMemoryGib) return chip.memory_gib.value;
  return 1;
}

std::string rule_label(const policy::Rule& r) {
  return "'" + r.name + "' (" + std::string(policy::basis_name(r.basis)) + " " + (r.strict ? ">" : ">=") + " " +
         format_number(r.min_domestic_share * 100, 1) + "%, " + r.scope.to_string() + ")";
}

// The concrete plan's device use per group and its standing under every enforced rule.
class PlanState {
 public:
  PlanState(const Problem& p, const fleet::Fleet& fleet, const policy::Policy* policy, const Placed& placed)
      : p_(p), fleet_(fleet) {
    for (const auto& chip : p.chips) chip_of_[chip.spec.id] = &chip;
    for (const auto& cls : p.classes) {
      for (const auto& mem : cls.members)
        taken_[{mem.node, mem.group}].assign(static_cast<std::size_t>(cls.size), false);
    }
    if (policy != nullptr) {
      for (const auto& r : policy->rules) {
        if (r.mode == policy::Mode::kEnforce) rules_.push_back({&r, 0, 0});
      }
    }
    for (const auto& per_model : placed) {
      for (const auto& [key, a] : per_model) {
        auto& taken = taken_.at(key);
        for (auto first : a.first_device) {
          for (auto i = first; i < first + a.devices_per_replica; ++i) taken[static_cast<std::size_t>(i)] = true;
        }
        count(key.first, *chip_of_.at(a.chip), a.replicas * a.devices_per_replica, a.planned_tokens_per_s);
      }
    }
  }

  // First index of `d` free devices in a row in the group, or -1.
  std::int64_t free_run(const Member& mem, std::int64_t d) const {
    const auto& taken = taken_.at({mem.node, mem.group});
    std::int64_t run = 0;
    for (std::size_t i = 0; i < taken.size(); ++i) {
      run = taken[i] ? 0 : run + 1;
      if (run == d) return static_cast<std::int64_t>(i) + 1 - d;
    }
    return -1;
  }
  std::int64_t free_count(const Member& mem) const {
    const auto& taken = taken_.at({mem.node, mem.group});
    return static_cast<std::int64_t>(std::count(taken.begin(), taken.end(), false));
  }
  // The enforced rules that one more replica (devices, served tokens/s) on the group would break.
  std::vector<const policy::Rule*> broken(const Member& mem, std::size_t chip, std::int64_t devices,
                                          double served) const {
    std::vector<const policy::Rule*> out;
    const auto& node = fleet_.nodes[mem.node];
    const auto& c = p_.chips[chip];
    for (const auto& rs : rules_) {
      if (!rs.rule->scope.contains(node)) continue;
      const double x = amount(*rs.rule, c, devices, served);
      if (!share_holds(rs.numerator + (c.origin == Origin::kDomestic ? x : 0.0), rs.denominator + x, *rs.rule)) {
        out.push_back(rs.rule);
      }
    }
    return out;
  }
  void take(const Member& mem, std::size_t chip, std::int64_t first, std::int64_t devices, double served) {
    auto& taken = taken_.at({mem.node, mem.group});
    for (auto i = first; i < first + devices; ++i) taken[static_cast<std::size_t>(i)] = true;
    count(mem.node, p_.chips[chip], devices, served);
  }

 private:
  struct RuleState {
    const policy::Rule* rule;
    double numerator;
    double denominator;
  };
  static double amount(const policy::Rule& rule, const Chip& chip, std::int64_t devices, double served) {
    if (chip.origin == Origin::kUncounted) return 0.0;
    if (rule.basis == policy::Basis::kServedTokens) return served;
    return static_cast<double>(devices) * weight(chip.spec, rule.basis);
  }
  void count(std::size_t node, const Chip& chip, std::int64_t devices, double served) {
    for (auto& rs : rules_) {
      if (!rs.rule->scope.contains(fleet_.nodes[node])) continue;
      const double x = amount(*rs.rule, chip, devices, served);
      rs.denominator += x;
      if (chip.origin == Origin::kDomestic) rs.numerator += x;
    }
  }

  const Problem& p_;
  const fleet::Fleet& fleet_;
  std::map<std::string, const Chip*> chip_of_;
  std::map<std::pair<std::size_t, std::size_t>, std::vector<bool>> taken_;
  std::vector<RuleState> rules_;
};

bool short_of(double planned, double demand) {
  return planned < demand - 1e-6 * std::max(1.0, demand);
}

// Classes that can host model m, best throughput per device first.
std::vector<std::size_t> hosts_of(const Problem& p, std::size_t m) {
  std::vector<std::size_t> hosts;
  for (std::size_t c = 0; c < p.classes.size(); ++c) {
    if (p.fits(m, c)) hosts.push_back(c);
  }
  auto per_device = [&](std::size_t c) {
    const auto& s = *p.shape[m][p.classes[c].chip];
    return s.tokens_per_s / static_cast<double>(s.devices);
  };
  std::stable_sort(hosts.begin(), hosts.end(),
                   [&](std::size_t a, std::size_t b) { return per_device(a) > per_device(b); });
  return hosts;
}

}  // namespace

bool share_holds(double numerator, double denominator, const policy::Rule& rule) {
  if (denominator <= 0) return true;
  const double share = numerator / denominator;
  // Relative tolerance for the solver's floating point (served traffic is continuous).
  return rule.strict ? share > rule.min_domestic_share + 1e-9 : share >= rule.min_domestic_share - 1e-9;
}

void fill(const Problem& p, const fleet::Fleet& fleet, const policy::Policy* policy, Placed& placed) {
  const auto& models = p.demand->models;
  PlanState state(p, fleet, policy, placed);
  for (std::size_t m = 0; m < models.size(); ++m) {
    const double demand = models[m].demand_tokens_per_s;
    double served = 0;
    for (const auto& [key, a] : placed[m]) served += a.planned_tokens_per_s;
    if (!short_of(served, demand)) continue;
    const auto hosts = hosts_of(p, m);
    bool added = true;
    while (added && short_of(served, demand)) {
      added = false;
      for (std::size_t i = 0; i < hosts.size() && !added; ++i) {
        const auto& cls = p.classes[hosts[i]];
        const auto& shape = *p.shape[m][cls.chip];
        const double gain = std::min(shape.tokens_per_s, demand - served);
        for (std::size_t k = 0; k < cls.members.size(); ++k) {
          const auto& mem = cls.members[k];
          const auto first = state.free_run(mem, shape.devices);
          if (first < 0 || !state.broken(mem, cls.chip, shape.devices, gain).empty()) continue;
          state.take(mem, cls.chip, first, shape.devices, gain);
          record_replica(p, fleet, placed, m, hosts[i], k, first);
          auto& a = placed[m][{mem.node, mem.group}];
          std::sort(a.first_device.begin(), a.first_device.end());
          a.planned_tokens_per_s += gain;
          served += gain;
          added = true;
          break;
        }
      }
    }
  }
}

void explain_plan(const Problem& p, const fleet::Fleet& fleet, const policy::Policy* policy,
                  const std::vector<Reach>& reach, const Placed& placed, PlacementResult& result) {
  const PlanState state(p, fleet, policy, placed);
  for (std::size_t m = 0; m < p.demand->models.size(); ++m) {
    auto& plan = result.models[m];
    if (!short_of(plan.planned_tokens_per_s, plan.demand_tokens_per_s)) {
      plan.reason = plan.demand_tokens_per_s > 0 ? "demand met" : "no demand";
      continue;
    }
    if (!reach[m].stack) {
      plan.limit = Limit::kStack;
      plan.reason = "stack: no eligible device runs its engine: " + reach[m].no_stack;
      continue;
    }
    if (!reach[m].memory) {
      plan.limit = Limit::kMemory;
      plan.reason = "memory: no supported device group holds one replica: " + reach[m].no_memory;
      continue;
    }
    std::int64_t total = 0, own = 0, free = 0;
    std::map<std::string, std::int64_t> room;  // chip with room for a replica -> such groups
    std::set<std::string> rule_names;
    std::vector<std::string> rule_labels;
    const double gain = plan.demand_tokens_per_s - plan.planned_tokens_per_s;
    for (auto c : hosts_of(p, m)) {
      const auto& cls = p.classes[c];
      const auto& shape = *p.shape[m][cls.chip];
      for (const auto& mem : cls.members) {
        total += cls.size;
        free += state.free_count(mem);
        const auto it = placed[m].find({mem.node, mem.group});
        if (it != placed[m].end()) own += it->second.replicas * it->second.devices_per_replica;
        if (state.free_run(mem, shape.devices) < 0) continue;
        ++room[p.chips[cls.chip].spec.id];
        for (const auto* r : state.broken(mem, cls.chip, shape.devices, std::min(gain, shape.tokens_per_s))) {
          if (rule_names.insert(r->name).second) rule_labels.push_back(rule_label(*r));
        }
      }
    }
    if (!room.empty() && !rule_labels.empty()) {
      plan.limit = Limit::kShare;
      plan.binding_rules.assign(rule_names.begin(), rule_names.end());
      std::vector<std::string> chips;
      for (const auto& [chip, groups] : room)
        chips.push_back(chip + " (" + std::to_string(groups) + (groups == 1 ? " group)" : " groups)"));
      plan.reason = "share: the groups with room for another replica, on " + join_list(chips) +
                    ", would break the enforced rule" + (rule_labels.size() > 1 ? "s " : " ") + join_list(rule_labels);
      continue;
    }
    plan.limit = Limit::kCapacity;
    plan.reason = "capacity: the " + std::to_string(total) + " devices that can host it (" + reach[m].hosts +
                  ") are used: " + std::to_string(own) + " by it, " + std::to_string(total - own - free) +
                  " by other models";
    if (free > 0) {
      plan.reason +=
          "; the " + std::to_string(free) + " free ones lie in groups with too little room left for a replica";
    }
  }
}

}  // namespace mixserve::gateway::detail

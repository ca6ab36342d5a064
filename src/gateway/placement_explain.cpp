// Why hard requirements cannot be met: static checks of what the fleet offers each model, then
// re-solves with one constraint family relaxed at a time. Also the shared text helpers.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "common/error.h"
#include "gateway/placement_problem.h"

namespace mixserve::gateway::detail {
namespace {

// Served tokens/s within this of a target count as meeting it (the LP works in floating point).
double tolerance(double target) {
  return 1e-6 * std::max(1.0, std::abs(target));
}

bool has_hard(const ModelDemand& m) {
  return m.min_tokens_per_s > 0 || m.min_replicas > 0;
}

std::string quoted(const std::string& s) {
  return "'" + s + "'";
}

std::string requirement(const ModelDemand& m) {
  std::vector<std::string> parts;
  if (m.min_tokens_per_s > 0) parts.push_back("min_tokens_per_s " + format_number(m.min_tokens_per_s, 1));
  if (m.min_replicas > 0) parts.push_back("min_replicas " + std::to_string(m.min_replicas));
  return join_list(parts);
}

std::string rule_text(const policy::Policy& policy, const Problem& p, std::size_t r) {
  const auto& rule = policy.rules[p.rules[r].policy_index];
  return "rule " + quoted(rule.name) + " (" + std::string(policy::basis_name(rule.basis)) + " " +
         (rule.strict ? ">" : ">=") + " " + format_number(rule.min_domestic_share * 100, 1) + "%, " +
         rule.scope.to_string() + ")";
}

class Resolver {
 public:
  Resolver(const Problem& p, const PlacementOptions& options, PlacementResult& result)
      : p_(p), options_(options), result_(result) {}

  SolveSpec spec(Goal goal, bool rules_on, std::size_t rule_off = SIZE_MAX, std::size_t model_off = SIZE_MAX) const {
    auto s = full_spec(p_, goal, options_.time_limit_s);
    for (std::size_t r = 0; r < s.rule_on.size(); ++r) s.rule_on[r] = rules_on && r != rule_off;
    if (model_off < s.hard_on.size()) s.hard_on[model_off] = false;
    s.model = model_off;
    return s;
  }
  Solution run(const SolveSpec& s) {
    ++result_.solves;
    return solve(p_, s);
  }
  // Whether the hard requirements can be met with the given rules and model relaxed. The throughput
  // goal (not a bare feasibility search) gives the LP rounding a structured optimum to start from.
  enum class Check { kYes, kNo, kUnknown };
  Check feasible(bool rules_on, std::size_t rule_off = SIZE_MAX, std::size_t model_off = SIZE_MAX) {
    const auto s = run(spec(Goal::kThroughput, rules_on, rule_off, model_off));
    if (s.found()) return Check::kYes;
    return s.status == Solution::Status::kInfeasible ? Check::kNo : Check::kUnknown;
  }
  // What model m gets at most while every other hard requirement holds.
  std::string best_for(std::size_t m, bool rules_on) {
    const auto& model = p_.demand->models[m];
    std::vector<std::string> parts;
    for (const auto goal : {Goal::kModelTokens, Goal::kModelReplicas}) {
      const bool tokens = goal == Goal::kModelTokens;
      if (tokens ? model.min_tokens_per_s <= 0 : model.min_replicas <= 0) continue;
      const auto s = run(spec(goal, rules_on, SIZE_MAX, m));
      if (!s.found()) {
        return s.status == Solution::Status::kInfeasible
                   ? "the other models' requirements cannot be met even without " + quoted(model.name) + "'s"
                   : "no plan meeting the other models' requirements was found within the search limit";
      }
      parts.push_back(tokens ? format_number(s.served_total(m), 1) + " of the required " +
                                   format_number(model.min_tokens_per_s, 1) + " tokens/s"
                             : std::to_string(s.replicas_of(m)) + " of the required " +
                                   std::to_string(model.min_replicas) + " replicas");
    }
    return quoted(model.name) + " gets at most " + join_list(parts);
  }

 private:
  const Problem& p_;
  const PlacementOptions& options_;
  PlacementResult& result_;
};

}  // namespace

std::string format_number(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, std::abs(value));
  std::string digits(buf);
  const auto dot = digits.find('.');
  std::string whole = digits.substr(0, dot);
  const std::string frac = dot == std::string::npos ? "" : digits.substr(dot);
  for (int i = static_cast<int>(whole.size()) - 3; i > 0; i -= 3) whole.insert(static_cast<std::size_t>(i), ",");
  const bool negative = value < 0 && std::stod(digits) != 0;
  return (negative ? "-" : "") + whole + frac;
}

std::string join_list(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " and " : ", ";
    out += items[i];
  }
  return out;
}

std::vector<Reach> reach(const Problem& p, const PlacementOptions& options) {
  std::vector<Reach> out(p.demand->models.size());
  std::string states;
  for (auto s : options.states) states += (states.empty() ? "" : "/") + std::string(fleet::node_state_name(s));
  for (std::size_t m = 0; m < out.size(); ++m) {
    const auto& model = p.demand->models[m];
    auto& r = out[m];
    double capacity = 0;
    std::map<std::size_t, std::int64_t> host_devices;  // chip -> devices in groups that fit
    std::map<std::size_t, std::int64_t> largest;       // supported chip -> largest group
    std::set<std::string> present;
    for (const auto& cls : p.classes) {
      const auto& chip = p.chips[cls.chip].spec;
      present.insert(chip.stack + " (" + chip.id + ")");
      const auto& shape = p.shape[m][cls.chip];
      if (!shape) continue;
      r.stack = true;
      largest[cls.chip] = std::max(largest[cls.chip], cls.size);
      if (shape->devices > cls.size) continue;
      r.memory = true;
      const auto groups = static_cast<std::int64_t>(cls.members.size());
      const auto per_group = cls.size / shape->devices;
      r.max_replicas += groups * per_group;
      capacity += static_cast<double>(groups * per_group) * shape->tokens_per_s;
      host_devices[cls.chip] += groups * cls.size;
    }
    r.max_tokens = std::min(model.demand_tokens_per_s, capacity);
    std::vector<std::string> hosts;
    for (const auto& [k, devices] : host_devices) {
      const auto& shape = *p.shape[m][k];
      hosts.push_back(std::to_string(devices) + " x " + p.chips[k].spec.id + " (" + std::to_string(shape.devices) +
                      " per replica, " + format_number(shape.tokens_per_s, 1) + " tokens/s each" +
                      (shape.estimate ? "*" : "") + ")");
    }
    r.hosts = join_list(hosts);
    if (!r.stack) {
      std::string stacks;
      for (const auto& s : model.stacks) stacks += (stacks.empty() ? "" : ", ") + s;
      std::vector<std::string> list(present.begin(), present.end());
      r.no_stack = "its engine supports " + stacks + "; " +
                   (list.empty() ? "there are no eligible (" + states + ") devices"
                                 : "the eligible (" + states + ") devices run " + join_list(list));
    } else if (!r.memory) {
      std::vector<std::string> parts;
      for (const auto& [k, size] : largest) {
        const auto& chip = p.chips[k].spec;
        const double usable = chip.memory_gib.value * p.demand->defaults.memory_fraction;
        parts.push_back(std::to_string(p.shape[m][k]->devices) + " x " + chip.id + " (" + format_number(usable, 1) +
                        " GiB usable each) but its largest group has " + std::to_string(size));
      }
      r.no_memory = "one replica needs " + format_number(model.memory_gib(), 1) + " GiB, i.e. " + join_list(parts);
    }
  }
  return out;
}

void check_reach(const Problem& p, const std::vector<Reach>& reach, PlacementResult& result) {
  for (std::size_t m = 0; m < reach.size(); ++m) {
    const auto& model = p.demand->models[m];
    if (!has_hard(model)) continue;
    const auto& r = reach[m];
    const auto head = quoted(model.name) + " requires " + requirement(model) + ", but ";
    Infeasibility inf;
    inf.models = {model.name};
    if (!r.stack) {
      inf.limit = Limit::kStack;
      inf.explanation = head + "no eligible device runs its engine: " + r.no_stack;
    } else if (!r.memory) {
      inf.limit = Limit::kMemory;
      inf.explanation = head + "no supported device group holds one replica: " + r.no_memory;
    } else if (r.max_replicas < model.min_replicas ||
               r.max_tokens < model.min_tokens_per_s - tolerance(model.min_tokens_per_s)) {
      inf.limit = Limit::kCapacity;
      inf.explanation = head + "even with every device that can host it to itself it reaches " +
                        format_number(r.max_tokens, 1) + " tokens/s with " + std::to_string(r.max_replicas) +
                        " replicas (on " + r.hosts + ")";
    } else {
      continue;
    }
    result.feasible = false;
    result.infeasibility.push_back(std::move(inf));
  }
}

void explain_infeasible(const Problem& p, const std::vector<Reach>& reach, const policy::Policy* policy,
                        const PlacementOptions& options, PlacementResult& result) {
  result.feasible = false;
  const auto& models = p.demand->models;
  std::vector<std::size_t> hard;
  for (std::size_t m = 0; m < models.size(); ++m) {
    if (has_hard(models[m])) hard.push_back(m);
  }
  Resolver solver(p, options, result);
  using Check = Resolver::Check;
  std::vector<std::string> undecided;
  auto yes = [&](Check c, std::string what) {
    if (c == Check::kUnknown) undecided.push_back(std::move(what));
    return c == Check::kYes;
  };
  const bool share = !p.rules.empty() && yes(solver.feasible(false), "the demand without the rules");
  Infeasibility inf;
  inf.limit = share ? Limit::kShare : Limit::kCapacity;
  std::vector<std::size_t> involved;
  for (auto m : hard) {
    if (yes(solver.feasible(share, SIZE_MAX, m), "without " + quoted(models[m].name) + "'s requirements")) {
      involved.push_back(m);
    }
  }
  const bool jointly = involved.empty();
  if (jointly) involved = hard;
  std::vector<std::string> involved_names;
  for (auto m : involved) {
    inf.models.push_back(models[m].name);
    involved_names.push_back(quoted(models[m].name) + " (" + requirement(models[m]) + ")");
  }
  const auto requirements = "the hard requirements of " + join_list(involved_names);
  std::string text;
  if (share) {
    std::vector<std::size_t> binding;
    for (std::size_t r = 0; r < p.rules.size(); ++r) {
      const auto& name = policy->rules[p.rules[r].policy_index].name;
      if (yes(solver.feasible(true, r), "without rule " + quoted(name))) binding.push_back(r);
    }
    const bool rules_jointly = binding.empty();
    if (rules_jointly) {
      for (std::size_t r = 0; r < p.rules.size(); ++r) binding.push_back(r);
    }
    std::vector<std::string> labels;
    for (auto r : binding) {
      labels.push_back(rule_text(*policy, p, r));
      inf.rules.push_back(policy->rules[p.rules[r].policy_index].name);
    }
    if (labels.size() == 1) {
      text = "share: the enforced domestic-share " + labels[0] + " keeps " + requirements +
             " from being met; without it they can be met";
    } else if (rules_jointly) {
      text = "share: the enforced domestic-share rules " + join_list(labels) + " together keep " + requirements +
             " from being met; without them they can be met (relaxing any one alone does not help)";
    } else {
      text = "share: each of the enforced domestic-share rules " + join_list(labels) + " keeps " + requirements +
             " from being met; without any one of them they can be met";
    }
  } else {
    text = std::string("capacity: ") + (p.rules.empty() ? "" : "even without the domestic-share rules, ") +
           "the eligible devices cannot meet " + requirements + (involved.size() > 1 ? " together" : "");
  }
  if (jointly && involved.size() > 1) text += " (relaxing any one model's requirements alone does not help)";
  for (auto m : involved) {
    text += "; with the other requirements met" + std::string(share ? " and the rules in force, " : ", ") +
            solver.best_for(m, share) + " (devices that can host it: " + reach[m].hosts + ")";
  }
  if (!undecided.empty()) {
    text += " (not decided within the solver's search limit, counted as infeasible: " + join_list(undecided) + ")";
  }
  inf.explanation = text;
  result.infeasibility.push_back(std::move(inf));
}

}  // namespace mixserve::gateway::detail

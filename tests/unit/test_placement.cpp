// Replica placement: the ILP (aggregated and per group) against brute force on small random fleets,
// the packing of replicas whose sizes do not divide a group, infeasibility explanations naming the
// binding constraint, shortfall reasons, and demand.yaml parse errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <random>

#include "common/error.h"
#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "gateway/demand.h"
#include "gateway/placement.h"
#include "policy/policy.h"

namespace {

using namespace mixserve;
using gateway::Limit;
using policy::Basis;

const fleet::Catalogue& catalogue() {
  static const auto cat = fleet::Catalogue::builtin();
  return cat;
}

// Test chips: domestic cann (64 GiB) and bang (48), foreign cuda (96 and 48), a CPU that never counts.
const std::vector<std::string> kChips = {"huawei-ascend-910b", "cambricon-mlu370", "nvidia-h20", "nvidia-l20",
                                         "cpu-x86"};

fleet::Node node(const std::string& name, std::vector<fleet::DeviceGroup> groups, const std::string& pool = "",
                 fleet::NodeState state = fleet::NodeState::kActive) {
  fleet::Node n;
  n.name = name;
  n.pool = pool;
  n.state = state;
  n.devices = std::move(groups);
  return n;
}

gateway::ModelDemand model(const std::string& name, double gib, std::vector<std::string> stacks, double demand,
                           std::map<std::string, double> tps = {}) {
  gateway::ModelDemand m;
  m.name = name;
  m.weights_gib = gib;
  m.stacks = std::move(stacks);
  m.demand_tokens_per_s = demand;
  m.tokens_per_s = std::move(tps);
  return m;
}

gateway::Demand demand_of(std::vector<gateway::ModelDemand> models) {
  gateway::Demand d;
  d.defaults.memory_fraction = 1.0;
  d.models = std::move(models);
  return d;
}

policy::Rule rule(const std::string& name, double share, Basis basis = Basis::kDeviceCount, bool strict = false,
                  const std::string& pool = "", policy::Mode mode = policy::Mode::kEnforce) {
  policy::Rule r;
  r.name = name;
  r.min_domestic_share = share;
  r.basis = basis;
  r.strict = strict;
  r.mode = mode;
  if (!pool.empty()) {
    r.scope.kind = policy::Scope::Kind::kPool;
    r.scope.name = pool;
  }
  return r;
}

bool eligible(const fleet::Node& n) {
  return n.state == fleet::NodeState::kActive || n.state == fleet::NodeState::kIdle;
}

// ---------------------------------------------------------------- brute force
struct Best {
  bool feasible = false;
  double served = -1;
  std::int64_t devices = 0;
};

struct Group {
  const fleet::Node* node;
  fleet::ChipSpec chip;
  std::int64_t count;
  std::vector<std::int64_t> d;  // devices per replica per model, 0: cannot host
  std::vector<double> t;
};

double weight(const fleet::ChipSpec& chip, Basis basis) {
  if (basis == Basis::kPeakFp16Tflops) return chip.fp16_tflops.value;
  if (basis == Basis::kMemoryGib) return chip.memory_gib.value;
  return 1;
}

bool share_ok(double num, double den, const policy::Rule& r) {
  if (den <= 0) return true;
  return r.strict ? num / den > r.min_domestic_share : num / den >= r.min_domestic_share - 1e-9;
}

// Every assignment of replica counts to every eligible group. Served traffic: min(demand, capacity);
// with an enforced served_tokens rule (center scope only here) domestic and CPU capacity serve first
// and foreign traffic is capped by the rule, which is optimal for the total.
Best brute_force(const fleet::Fleet& fl, const gateway::Demand& demand, const policy::Policy& pol) {
  const auto nm = demand.models.size();
  std::vector<Group> groups;
  for (const auto& n : fl.nodes) {
    if (!eligible(n)) continue;
    for (const auto& g : n.devices) {
      Group gr{&n, *catalogue().find(g.chip), g.count, {}, {}};
      for (const auto& m : demand.models) {
        const auto s = gateway::replica_shape(m, gr.chip, demand.defaults);
        const bool fits = s && s->devices <= g.count;
        gr.d.push_back(fits ? s->devices : 0);
        gr.t.push_back(fits ? s->tokens_per_s : 0);
      }
      groups.push_back(std::move(gr));
    }
  }
  std::vector<std::vector<std::vector<std::int64_t>>> options(groups.size());
  for (std::size_t g = 0; g < groups.size(); ++g) {
    std::vector<std::int64_t> a(nm, 0);
    std::function<void(std::size_t, std::int64_t)> rec = [&](std::size_t m, std::int64_t left) {
      if (m == nm) {
        options[g].push_back(a);
        return;
      }
      const auto d = groups[g].d[m];
      for (std::int64_t n = 0; d > 0 ? n * d <= left : n == 0; ++n) {
        a[m] = n;
        rec(m + 1, left - n * d);
      }
      a[m] = 0;
    };
    rec(0, groups[g].count);
  }
  const policy::Rule* served_rule = nullptr;
  for (const auto& r : pol.rules) {
    if (r.mode == policy::Mode::kEnforce && r.basis == Basis::kServedTokens) served_rule = &r;
  }
  Best best;
  std::vector<std::size_t> pick(groups.size(), 0);
  std::function<void(std::size_t)> leaf_or_recurse = [&](std::size_t g) {
    if (g < groups.size()) {
      for (pick[g] = 0; pick[g] < options[g].size(); ++pick[g]) leaf_or_recurse(g + 1);
      return;
    }
    std::vector<double> dom(nm, 0), cpu(nm, 0), foreign(nm, 0);
    std::vector<std::int64_t> reps(nm, 0);
    std::int64_t devices = 0;
    for (std::size_t i = 0; i < groups.size(); ++i) {
      const auto& a = options[i][pick[i]];
      for (std::size_t m = 0; m < nm; ++m) {
        reps[m] += a[m];
        devices += a[m] * groups[i].d[m];
        const double cap = static_cast<double>(a[m]) * groups[i].t[m];
        const auto& chip = groups[i].chip;
        (!chip.accelerator ? cpu : catalogue().is_domestic(chip.id) ? dom : foreign)[m] += cap;
      }
    }
    for (const auto& r : pol.rules) {
      if (r.mode != policy::Mode::kEnforce || r.basis == Basis::kServedTokens) continue;
      double num = 0, den = 0;
      for (std::size_t i = 0; i < groups.size(); ++i) {
        if (!r.scope.contains(*groups[i].node) || !groups[i].chip.accelerator) continue;
        std::int64_t used = 0;
        for (std::size_t m = 0; m < nm; ++m) used += options[i][pick[i]][m] * groups[i].d[m];
        const double amount = static_cast<double>(used) * weight(groups[i].chip, r.basis);
        den += amount;
        if (catalogue().is_domestic(groups[i].chip.id)) num += amount;
      }
      if (!share_ok(num, den, r)) return;
    }
    double served = 0, dom_served = 0, foreign_room = 0;
    std::vector<double> per_model(nm, 0);
    for (std::size_t m = 0; m < nm; ++m) {
      const auto& md = demand.models[m];
      if (reps[m] < md.min_replicas) return;
      const double d = std::min(md.demand_tokens_per_s, dom[m]);
      const double c = std::min(md.demand_tokens_per_s - d, cpu[m]);
      const double f = std::min(md.demand_tokens_per_s - d - c, foreign[m]);
      dom_served += d;
      served += d + c;
      foreign_room += f;
      per_model[m] = d + c + f;
    }
    if (served_rule != nullptr) {
      const double theta = served_rule->min_domestic_share + (served_rule->strict ? 1e-6 : 0.0);
      served += theta > 0 ? std::min(foreign_room, dom_served * (1 - theta) / theta) : foreign_room;
    } else {
      served += foreign_room;
      for (std::size_t m = 0; m < nm; ++m) {
        if (per_model[m] < demand.models[m].min_tokens_per_s - 1e-9) return;
      }
    }
    const double tol = 1e-7 * std::max(1.0, served);
    if (!best.feasible || served > best.served + tol || (served > best.served - tol && devices < best.devices)) {
      best = {true, served, devices};
    }
  };
  leaf_or_recurse(0);
  return best;
}

// The plan itself must be valid whatever the optimum: group capacity, eligibility, stacks, rules.
void expect_valid(const gateway::PlacementResult& r, const fleet::Fleet& fl, const gateway::Demand& demand) {
  std::map<std::pair<std::string, std::size_t>, std::vector<bool>> used;
  for (std::size_t m = 0; m < r.models.size(); ++m) {
    const auto& plan = r.models[m];
    const auto& md = demand.models[m];
    EXPECT_LE(plan.planned_tokens_per_s, std::min(plan.demand_tokens_per_s, plan.capacity_tokens_per_s) + 1e-6);
    EXPECT_GE(plan.replicas, md.min_replicas) << plan.name;
    EXPECT_GE(plan.planned_tokens_per_s, md.min_tokens_per_s - 1e-6) << plan.name;
    for (const auto& a : plan.assignments) {
      const auto* n = fl.find(a.node);
      ASSERT_NE(n, nullptr);
      EXPECT_TRUE(eligible(*n)) << a.node;
      const auto& g = n->devices.at(a.group);
      EXPECT_EQ(g.chip, a.chip);
      EXPECT_TRUE(md.supports(catalogue().find(a.chip)->stack));
      auto& slots = used[{a.node, a.group}];
      slots.resize(static_cast<std::size_t>(g.count), false);
      ASSERT_EQ(a.first_device.size(), static_cast<std::size_t>(a.replicas));
      for (auto first : a.first_device) {
        for (auto dev = first; dev < first + a.devices_per_replica; ++dev) {
          ASSERT_LT(dev, g.count) << a.node << " group " << a.group;
          EXPECT_FALSE(slots[static_cast<std::size_t>(dev)]) << "device used twice on " << a.node;
          slots[static_cast<std::size_t>(dev)] = true;
        }
      }
    }
  }
  for (const auto& s : r.rules) {
    if (s.constraint) {
      EXPECT_TRUE(s.holds) << s.explanation;
    }
  }
}

// A random small fleet: a few node types, each repeated (so classes hold several groups), random
// pools and states; models of 1-3 devices per replica with integer throughputs; random rules.
struct Instance {
  fleet::Fleet fleet;
  gateway::Demand demand;
  policy::Policy policy;
};

Instance random_instance(std::mt19937& rng) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Instance in;
  int groups = 0;
  const int types = pick(1, 3);
  for (int t = 0; t < types && groups < 4; ++t) {
    std::vector<fleet::DeviceGroup> devs;
    const int ng = pick(1, 2);
    for (int g = 0; g < ng; ++g) devs.push_back({kChips[static_cast<std::size_t>(pick(0, 4))], pick(1, 4)});
    const auto pool = pick(0, 1) ? "a" : "b";
    const int copies = pick(1, 3);
    for (int c = 0; c < copies && groups + ng <= 4; ++c, groups += ng) {
      const auto state = pick(0, 5) == 0   ? fleet::NodeState::kDrained
                         : pick(0, 4) == 0 ? fleet::NodeState::kIdle
                                           : fleet::NodeState::kActive;
      in.fleet.nodes.push_back(node("n" + std::to_string(in.fleet.nodes.size()), devs, pool, state));
    }
  }
  const std::vector<std::vector<std::string>> stack_sets = {
      {"cann", "cuda"}, {"cuda"}, {"cann", "bang"}, {"cuda", "cpu"}, {"cann", "bang", "cuda", "cpu"}};
  const double sizes[] = {20, 40, 60, 100, 130};
  const int nm = pick(1, 3);
  for (int m = 0; m < nm; ++m) {
    std::map<std::string, double> tps;
    for (const auto& c : kChips) tps[c] = pick(1, 20) * 10;
    auto md = model("m" + std::to_string(m), sizes[pick(0, 4)], stack_sets[static_cast<std::size_t>(pick(0, 4))],
                    pick(1, 40) * 10, tps);
    if (pick(0, 5) == 0) md.min_replicas = pick(1, 2);
    if (pick(0, 5) == 0) md.min_tokens_per_s = std::min(md.demand_tokens_per_s, 10.0 * pick(1, 10));
    in.demand.models.push_back(md);
  }
  in.demand.defaults.memory_fraction = 1.0;
  const Basis bases[] = {Basis::kDeviceCount, Basis::kPeakFp16Tflops, Basis::kMemoryGib, Basis::kServedTokens};
  const int nr = pick(0, 2);
  bool served = false;
  for (int r = 0; r < nr; ++r) {
    auto basis = bases[pick(0, 3)];
    if (basis == Basis::kServedTokens && served) basis = Basis::kDeviceCount;
    const bool center = basis == Basis::kServedTokens || pick(0, 1);
    const double shares[] = {0.25, 0.5, 0.6, 1.0};
    const double share = shares[pick(0, 3)];
    auto ru = rule("r" + std::to_string(r), share, basis, share < 1 && pick(0, 1), center ? "" : "a",
                   pick(0, 4) == 0 ? policy::Mode::kAudit : policy::Mode::kEnforce);
    if (basis == Basis::kServedTokens && ru.mode == policy::Mode::kEnforce) served = true;
    in.policy.rules.push_back(ru);
  }
  if (served) {
    for (auto& m : in.demand.models) m.min_tokens_per_s = 0;  // brute force's served model has no per-model floor
  }
  return in;
}

TEST(ReplicaPlacement, IlpMatchesBruteForceOnRandomSmallFleets) {
  std::mt19937 rng(20240607);
  int feasible = 0, infeasible = 0, shared = 0;
  for (int trial = 0; trial < 250; ++trial) {
    auto in = random_instance(rng);
    SCOPED_TRACE("trial " + std::to_string(trial));
    const auto brute = brute_force(in.fleet, in.demand, in.policy);
    for (bool aggregate : {true, false}) {
      gateway::PlacementOptions opt;
      opt.aggregate = aggregate;
      const auto r = gateway::place(in.fleet, catalogue(), in.demand, &in.policy, opt);
      ASSERT_EQ(r.feasible, brute.feasible) << "aggregate=" << aggregate;
      if (!r.feasible) {
        EXPECT_FALSE(r.infeasibility.empty());
        continue;
      }
      EXPECT_NEAR(r.planned_tokens_per_s, brute.served, 1e-5 * std::max(1.0, brute.served))
          << "aggregate=" << aggregate;
      EXPECT_EQ(r.devices_used, brute.devices) << "aggregate=" << aggregate;
      expect_valid(r, in.fleet, in.demand);
    }
    (brute.feasible ? feasible : infeasible)++;
    for (const auto& ru : in.policy.rules) shared += ru.mode == policy::Mode::kEnforce;
  }
  // The generator must exercise both outcomes and the rules, or the comparison proves little.
  EXPECT_GT(feasible, 100);
  EXPECT_GT(infeasible, 5);
  EXPECT_GT(shared, 100);
}

TEST(ReplicaPlacement, PackingRespectsGroupsWhenReplicaSizeDoesNotDivideThem) {
  // 3 devices per replica on 8-device groups: 2 per node (6 in all), not 24 / 3 = 8.
  fleet::Fleet fl;
  for (int i = 0; i < 3; ++i) fl.nodes.push_back(node("a" + std::to_string(i), {{"huawei-ascend-910b", 8}}));
  auto d = demand_of({model("big", 150, {"cann"}, 1e6, {{"huawei-ascend-910b", 100}})});
  for (bool aggregate : {true, false}) {
    gateway::PlacementOptions opt;
    opt.aggregate = aggregate;
    const auto r = gateway::place(fl, catalogue(), d, nullptr, opt);
    ASSERT_TRUE(r.feasible);
    EXPECT_EQ(r.models[0].replicas, 6);
    EXPECT_EQ(r.classes, aggregate ? 1u : 3u);
    expect_valid(r, fl, d);
    EXPECT_EQ(r.models[0].limit, Limit::kCapacity);
    EXPECT_NE(r.models[0].reason.find("too little room"), std::string::npos) << r.models[0].reason;
  }
  // Mixed sizes 3 and 2 on 8 devices: both patterns {3,3,2} and {2,2,2,2} are needed for the optimum.
  auto mixed = demand_of({model("three", 150, {"cann"}, 300, {{"huawei-ascend-910b", 100}}),
                          model("two", 100, {"cann"}, 1e6, {{"huawei-ascend-910b", 10}})});
  const auto r = gateway::place(fl, catalogue(), mixed, nullptr);
  ASSERT_TRUE(r.feasible);
  EXPECT_EQ(r.models[0].replicas, 3);
  EXPECT_EQ(r.models[1].replicas, 7);  // groups packed {3,3,2}, {3,2,2}, {2,2,2,2}: 7 two-device slots
  expect_valid(r, fl, mixed);
}

TEST(ReplicaPlacement, AggregatedAndPerGroupIlpAgreeOnLargerFleets) {
  std::mt19937 rng(7);
  fleet::Fleet fl;
  for (int i = 0; i < 24; ++i) {
    const auto& chip = kChips[static_cast<std::size_t>(i % 4)];
    fl.nodes.push_back(node("n" + std::to_string(i), {{chip, i % 3 == 0 ? 4 : 8}}, i % 2 ? "a" : "b"));
  }
  auto d = demand_of({model("x", 150, {"cann", "cuda"}, 3000, {{"huawei-ascend-910b", 90}, {"nvidia-h20", 150}}),
                      model("y", 40, {"bang", "cuda"}, 4000, {{"cambricon-mlu370", 30}, {"nvidia-l20", 40}}),
                      model("z", 60, {"cann", "bang", "cuda"}, 2500)});
  policy::Policy pol;
  pol.rules = {rule("half", 0.5, Basis::kDeviceCount, true), rule("pool-a", 0.6, Basis::kPeakFp16Tflops, false, "a")};
  gateway::PlacementOptions per_group;
  per_group.aggregate = false;
  const auto agg = gateway::place(fl, catalogue(), d, &pol);
  const auto flat = gateway::place(fl, catalogue(), d, &pol, per_group);
  ASSERT_TRUE(agg.feasible && flat.feasible);
  EXPECT_TRUE(agg.optimal);
  EXPECT_TRUE(flat.optimal);
  EXPECT_LT(agg.classes, 20u);
  EXPECT_EQ(flat.classes, 24u);
  EXPECT_NEAR(agg.planned_tokens_per_s, flat.planned_tokens_per_s, 1e-6 * agg.planned_tokens_per_s);
  EXPECT_EQ(agg.devices_used, flat.devices_used);
  expect_valid(agg, fl, d);
  expect_valid(flat, fl, d);
}

// ---------------------------------------------------------------- explanations
fleet::Fleet mixed_fleet() {
  fleet::Fleet fl;
  fl.nodes.push_back(node("dom", {{"huawei-ascend-910b", 4}}));
  fl.nodes.push_back(node("for", {{"nvidia-h20", 4}}));
  fl.nodes.push_back(node("old", {{"nvidia-h20", 8}}, "", fleet::NodeState::kRetired));
  fl.nodes.push_back(node("off", {{"cambricon-mlu370", 8}}, "", fleet::NodeState::kDrained));
  return fl;
}

const gateway::Infeasibility& only_cause(const gateway::PlacementResult& r) {
  EXPECT_FALSE(r.feasible);
  EXPECT_EQ(r.exit_code(), 1);
  EXPECT_EQ(r.infeasibility.size(), 1u);
  return r.infeasibility.at(0);
}

TEST(ReplicaPlacementExplain, StackMemoryAndCapacityAloneNeedNoSolve) {
  const auto fl = mixed_fleet();
  auto stack = demand_of({model("mlu", 20, {"bang"}, 100)});
  stack.models[0].min_replicas = 1;
  auto r = gateway::place(fl, catalogue(), stack, nullptr);
  EXPECT_EQ(only_cause(r).limit, Limit::kStack);
  EXPECT_NE(only_cause(r).explanation.find("bang"), std::string::npos) << only_cause(r).explanation;
  EXPECT_EQ(r.solves, 0u);

  auto memory = demand_of({model("huge", 500, {"cann", "cuda"}, 100)});
  memory.models[0].min_tokens_per_s = 1;
  r = gateway::place(fl, catalogue(), memory, nullptr);
  EXPECT_EQ(only_cause(r).limit, Limit::kMemory);
  EXPECT_NE(only_cause(r).explanation.find("500.0 GiB"), std::string::npos) << only_cause(r).explanation;

  auto capacity = demand_of({model("m", 20, {"cann"}, 1000, {{"huawei-ascend-910b", 100}})});
  capacity.models[0].min_tokens_per_s = 500;  // 4 replicas x 100 = 400 at most
  r = gateway::place(fl, catalogue(), capacity, nullptr);
  EXPECT_EQ(only_cause(r).limit, Limit::kCapacity);
  EXPECT_NE(only_cause(r).explanation.find("400.0 tokens/s with 4 replicas"), std::string::npos)
      << only_cause(r).explanation;
}

TEST(ReplicaPlacementExplain, ModelsCompetingForDevicesAreNamed) {
  const auto fl = mixed_fleet();
  auto d = demand_of({model("a", 20, {"cann", "cuda"}, 1000, {{"huawei-ascend-910b", 100}, {"nvidia-h20", 100}}),
                      model("b", 20, {"cuda"}, 1000, {{"nvidia-h20", 100}}), model("c", 20, {"cann"}, 10)});
  d.models[0].min_replicas = 6;
  d.models[1].min_replicas = 3;  // a needs 6 of 8 devices, b 3 of the 4 cuda ones
  const auto r = gateway::place(fl, catalogue(), d, nullptr);
  const auto& cause = only_cause(r);
  EXPECT_EQ(cause.limit, Limit::kCapacity);
  EXPECT_EQ(cause.models, (std::vector<std::string>{"a", "b"}));
  EXPECT_NE(cause.explanation.find("'a' gets at most 5 of the required 6 replicas"), std::string::npos)
      << cause.explanation;
  EXPECT_NE(cause.explanation.find("'b' gets at most 2 of the required 3 replicas"), std::string::npos)
      << cause.explanation;
}

TEST(ReplicaPlacementExplain, BindingShareRuleIsNamedAndOthersAreNot) {
  const auto fl = mixed_fleet();
  auto d = demand_of({model("a", 20, {"cann", "cuda"}, 1000, {{"huawei-ascend-910b", 100}, {"nvidia-h20", 100}})});
  d.models[0].min_tokens_per_s = 700;  // needs 7 replicas: 4 domestic + 3 foreign = 57% domestic
  policy::Policy pol;
  pol.rules = {rule("lenient", 0.5), rule("two-thirds", 2.0 / 3.0, Basis::kDeviceCount),
               rule("audit", 1.0, Basis::kDeviceCount, false, "", policy::Mode::kAudit)};
  const auto r = gateway::place(fl, catalogue(), d, &pol);
  const auto& cause = only_cause(r);
  EXPECT_EQ(cause.limit, Limit::kShare);
  EXPECT_EQ(cause.rules, std::vector<std::string>{"two-thirds"});
  EXPECT_NE(cause.explanation.find("'a' gets at most 600.0 of the required 700.0 tokens/s"), std::string::npos)
      << cause.explanation;
  pol.rules.erase(pol.rules.begin() + 1);
  const auto ok = gateway::place(fl, catalogue(), d, &pol);
  ASSERT_TRUE(ok.feasible);
  EXPECT_EQ(ok.models[0].replicas, 8);  // 4 + 4: exactly the lenient 50%
  EXPECT_FALSE(ok.rules.at(1).holds) << "the audit rule is reported, not enforced";
  EXPECT_FALSE(ok.rules.at(1).constraint);
}

TEST(ReplicaPlacementExplain, ShortfallReasonsPerModel) {
  const auto fl = mixed_fleet();
  auto d = demand_of({model("shared", 20, {"cann", "cuda"}, 2000, {{"huawei-ascend-910b", 100}, {"nvidia-h20", 100}}),
                      model("mlu", 20, {"bang"}, 100), model("huge", 500, {"cann"}, 100),
                      model("full", 20, {"cann"}, 100, {{"huawei-ascend-910b", 10}})});
  policy::Policy pol;
  pol.rules = {rule("strict-half", 0.5, Basis::kDeviceCount, true)};
  const auto r = gateway::place(fl, catalogue(), d, &pol);
  ASSERT_TRUE(r.feasible);
  expect_valid(r, fl, d);
  EXPECT_EQ(r.models[0].limit, Limit::kShare) << r.models[0].reason;
  EXPECT_EQ(r.models[0].binding_rules, std::vector<std::string>{"strict-half"});
  EXPECT_EQ(r.models[1].limit, Limit::kStack);
  EXPECT_EQ(r.models[2].limit, Limit::kMemory);
  // 'full' earns least per device: the domestic devices go to 'shared', with or without the rule.
  EXPECT_EQ(r.models[3].limit, Limit::kCapacity) << r.models[3].reason;
  EXPECT_NE(r.models[3].reason.find("0 by it, 4 by other models"), std::string::npos) << r.models[3].reason;
  // Strict 50%: 4 domestic devices allow at most 3 foreign ones.
  ASSERT_TRUE(r.rules.at(0).share.has_value());
  EXPECT_GT(*r.rules[0].share, 0.5);
  EXPECT_EQ(r.devices_used, 7);
  for (const auto& m : r.models) {
    for (const auto& a : m.assignments) {
      EXPECT_TRUE(a.node == "dom" || a.node == "for") << a.node;
    }
  }
}

TEST(ReplicaPlacementExplain, EstimateFollowsBandwidthFormula) {
  gateway::ModelDemand m = model("m", 60, {"cuda"}, 1);
  m.kv_gib = 4;
  m.batch = 16;
  m.efficiency = 0.5;
  gateway::EstimateDefaults defaults;
  const auto h20 = *catalogue().find("nvidia-h20");
  const auto shape = gateway::replica_shape(m, h20, defaults);
  ASSERT_TRUE(shape);
  EXPECT_EQ(shape->devices, 1);
  EXPECT_TRUE(shape->estimate);
  const double bytes_per_token = 64.0 * 1024 * 1024 * 1024 / 16;
  EXPECT_NEAR(shape->tokens_per_s, 0.5 * h20.memory_bandwidth_gbs.value * 1e9 / bytes_per_token, 1e-9);
  m.weights_gib = 100;  // 104 GiB > 0.9 x 96: two devices, twice the bandwidth
  EXPECT_EQ(gateway::replica_shape(m, h20, defaults)->devices, 2);
  EXPECT_FALSE(gateway::replica_shape(m, *catalogue().find("huawei-ascend-910b"), defaults));
}

// ---------------------------------------------------------------- demand.yaml
std::string parse_error(const std::string& text) {
  try {
    gateway::parse_demand(text, "demand.yaml", catalogue());
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "expected an error for:\n" << text;
  return "";
}

TEST(DemandParse, ReadsDefaultsAndOverrides) {
  const auto d = gateway::parse_demand(R"(defaults: {batch: 8, efficiency: 0.4, memory_fraction: 0.8}
models:
  - name: qwen
    weights_gib: 140
    kv_gib: 20
    stacks: [cuda, cann]
    demand_tokens_per_s: 20000
    min_tokens_per_s: 5000
    min_replicas: 2
    tokens_per_s: {nvidia-h20: 900}
  - {name: small, weights_gib: 8, stacks: [cpu], demand_tokens_per_s: 10, batch: 4}
)",
                                       "demand.yaml", catalogue());
  ASSERT_EQ(d.models.size(), 2u);
  EXPECT_DOUBLE_EQ(d.defaults.memory_fraction, 0.8);
  EXPECT_DOUBLE_EQ(d.models[0].memory_gib(), 160);
  EXPECT_DOUBLE_EQ(d.models[0].batch, 8);
  EXPECT_DOUBLE_EQ(d.models[0].efficiency, 0.4);
  EXPECT_EQ(d.models[0].min_replicas, 2);
  EXPECT_DOUBLE_EQ(d.models[0].tokens_per_s.at("nvidia-h20"), 900);
  EXPECT_DOUBLE_EQ(d.models[1].batch, 4);
}

TEST(DemandParse, ErrorsNameFileModelAndKey) {
  const std::string head = "models:\n  - {name: m, weights_gib: 10, stacks: [cuda], demand_tokens_per_s: 100";
  auto err = parse_error(head + ", colour: red}\n");
  EXPECT_NE(err.find("demand.yaml:2: model 'm': key 'colour': unknown key"), std::string::npos) << err;
  err = parse_error(head + ", tokens_per_s: {nvidia-h2O: 5}}\n");
  EXPECT_NE(err.find("unknown chip 'nvidia-h2O'"), std::string::npos) << err;
  err = parse_error(head + ", tokens_per_s: {huawei-ascend-910b: 5}}\n");
  EXPECT_NE(err.find("runs stack 'cann'"), std::string::npos) << err;
  err = parse_error("models:\n  - {name: m, weights_gib: 10, stacks: [cdua], demand_tokens_per_s: 1}\n");
  EXPECT_NE(err.find("unknown stack 'cdua'"), std::string::npos) << err;
  err = parse_error(head + ", min_tokens_per_s: 200}\n");
  EXPECT_NE(err.find("key 'min_tokens_per_s': is above demand_tokens_per_s"), std::string::npos) << err;
  err = parse_error(head + "}\n" + "  - {name: m, weights_gib: 1, stacks: [cpu], demand_tokens_per_s: 1}\n");
  EXPECT_NE(err.find("duplicate model name"), std::string::npos) << err;
  err = parse_error("models:\n  - {name: m, stacks: [cuda], demand_tokens_per_s: 1}\n");
  EXPECT_NE(err.find("key 'weights_gib': required key is missing"), std::string::npos) << err;
  err = parse_error("defaults: {efficiency: 1.5}\nmodels: []\n");
  EXPECT_NE(err.find("defaults: key 'efficiency': must lie in (0, 1]"), std::string::npos) << err;
  err = parse_error("models: []\n");
  EXPECT_NE(err.find("lists no models"), std::string::npos) << err;
}

TEST(ReplicaPlacement, UnknownFleetChipIsBadInput) {
  fleet::Fleet fl;
  fl.nodes.push_back(node("x", {{"acme-npu", 2}}));
  try {
    gateway::place(fl, catalogue(), demand_of({model("m", 10, {"cuda"}, 1)}), nullptr);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("acme-npu"), std::string::npos) << e.what();
  }
}

}  // namespace

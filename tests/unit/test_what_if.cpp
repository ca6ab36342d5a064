// What-if: the suggested change, applied to the fleet and evaluated again, makes the rule hold, and
// one device (or unit) fewer does not. Device-count verdicts and counts are also checked against an
// exact integer brute force with rational thresholds.
#include <gtest/gtest.h>

#include <random>

#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "policy/evaluate.h"
#include "policy/policy.h"

namespace {

using namespace mixserve;
using fleet::NodeState;

struct Fraction {
  std::int64_t p, q;
};

fleet::Node make_node(const std::string& name, const std::string& pool, NodeState state,
                      std::vector<fleet::DeviceGroup> devices) {
  fleet::Node n;
  n.name = name;
  n.pool = pool;
  n.state = state;
  n.devices = std::move(devices);
  return n;
}

policy::Rule make_rule(double t, bool strict, policy::Basis basis) {
  policy::Rule r;
  r.name = "r";
  r.min_domestic_share = t;
  r.strict = strict;
  r.basis = basis;
  return r;
}

const policy::RuleResult eval_one(const policy::Rule& rule, const fleet::Fleet& f, const fleet::Catalogue& cat,
                                  const policy::Usage* usage = nullptr) {
  policy::Policy p;
  p.rules = {rule};
  return policy::evaluate(p, f, cat, usage).results.at(0);
}

// Exact: domestic / total meets p/q.
bool exact_holds(std::int64_t d, std::int64_t total, Fraction t, bool strict) {
  return strict ? d * t.q > t.p * total : d * t.q >= t.p * total;
}

TEST(WhatIf, DeviceCountAgreesWithExactBruteForce) {
  const auto cat = fleet::Catalogue::builtin();
  const Fraction thresholds[] = {{1, 2}, {51, 100}, {2, 3}, {7, 10}, {9, 10}, {1, 1}, {3, 10}, {0, 1}, {1, 3}};
  std::mt19937 rng(1234);
  int violations = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    const auto t = thresholds[rng() % std::size(thresholds)];
    const bool strict = t.p < t.q && rng() % 2;
    const std::int64_t d = rng() % 40;
    const std::int64_t f = rng() % 40;
    if (d + f == 0) continue;
    fleet::Fleet fl;
    fl.nodes.push_back(make_node("d", "", NodeState::kActive, {{"huawei-ascend-910b", d}}));
    fl.nodes.push_back(make_node("f", "", NodeState::kActive, {{"nvidia-h20", f}}));
    const auto rule = make_rule(static_cast<double>(t.p) / t.q, strict, policy::Basis::kDeviceCount);
    const auto r = eval_one(rule, fl, cat);
    SCOPED_TRACE(testing::Message() << d << " domestic, " << f << " foreign, t=" << t.p << "/" << t.q
                                    << (strict ? " strict" : "") << ": " << r.explanation);
    ASSERT_EQ(r.compliant, exact_holds(d, d + f, t, strict));
    if (r.compliant) continue;
    ++violations;
    // Brute-force smallest k domestic to add and smallest x foreign to remove.
    std::optional<std::int64_t> k_min, x_min;
    for (std::int64_t k = 0; k < 100000 && !k_min; ++k) {
      if (exact_holds(d + k, d + f + k, t, strict)) k_min = k;
    }
    for (std::int64_t x = 0; x <= f && !x_min; ++x) {
      if (d + f - x > 0 && exact_holds(d, d + f - x, t, strict)) x_min = x;
    }
    ASSERT_EQ(r.what_if.add.has_value(), k_min.has_value());
    if (k_min) {
      EXPECT_EQ(r.what_if.add->count, *k_min);
    }
    if (x_min) {
      EXPECT_EQ(r.what_if.remove_devices, *x_min);
    } else {
      EXPECT_EQ(r.what_if.remove_devices, 0);
    }
  }
  EXPECT_GT(violations, 300) << "the random cases must exercise the what-if";
}

// Takes `count` devices of `chip` out of the counted, in-scope nodes.
void shed(fleet::Fleet& f, const policy::Rule& rule, const std::string& chip, std::int64_t count) {
  for (auto& node : f.nodes) {
    if (!rule.counts_state(node.state) || !rule.scope.contains(node)) continue;
    for (auto& g : node.devices) {
      if (g.chip != chip) continue;
      const auto take = std::min(count, g.count);
      g.count -= take;
      count -= take;
    }
  }
  ASSERT_EQ(count, 0) << "the suggestion removes more " << chip << " than the scope holds";
}

TEST(WhatIf, SuggestionsAppliedRestoreComplianceAndOneFewerDoesNot) {
  const auto cat = fleet::Catalogue::builtin();
  const std::vector<std::string> chips = {"huawei-ascend-910b", "huawei-ascend-310p", "cambricon-mlu370", "nvidia-h100",
                                          "nvidia-h20",         "nvidia-rtx4090",     "cpu-x86"};
  const double thresholds[] = {0.3, 0.5, 0.51, 2.0 / 3, 0.7, 0.9, 1.0};
  const policy::Basis bases[] = {policy::Basis::kDeviceCount, policy::Basis::kPeakFp16Tflops,
                                 policy::Basis::kMemoryGib};
  const NodeState states[] = {NodeState::kActive, NodeState::kIdle, NodeState::kDrained, NodeState::kRetired};
  std::mt19937 rng(99);
  int checked_add = 0, checked_remove = 0;
  for (int trial = 0; trial < 400; ++trial) {
    fleet::Fleet f;
    const int nodes = 1 + rng() % 12;
    for (int n = 0; n < nodes; ++n) {
      std::vector<fleet::DeviceGroup> devices;
      for (int g = 0, groups = 1 + rng() % 2; g < groups; ++g)
        devices.push_back({chips[rng() % chips.size()], static_cast<std::int64_t>(rng() % 9)});
      f.nodes.push_back(make_node("n" + std::to_string(n), rng() % 2 ? "a" : "b", states[rng() % 4], devices));
    }
    auto rule = make_rule(thresholds[rng() % std::size(thresholds)], false, bases[rng() % 3]);
    rule.strict = rule.min_domestic_share < 1 && rng() % 2;
    if (rng() % 2) rule.scope = {policy::Scope::Kind::kPool, "a"};
    if (rng() % 3 == 0) rule.count_states = {NodeState::kActive};
    const auto r = eval_one(rule, f, cat);
    SCOPED_TRACE(testing::Message() << "trial " << trial << ": " << r.explanation);
    if (r.outcome != policy::Outcome::kViolation) continue;
    const auto& w = r.what_if;
    if (w.add) {
      ++checked_add;
      auto with = [&](std::int64_t count) {
        auto g = f;
        g.nodes.push_back(make_node("what-if", rule.scope.name, rule.count_states.front(), {{w.add->chip, count}}));
        return eval_one(rule, g, cat).compliant;
      };
      EXPECT_TRUE(with(w.add->count));
      if (w.add->count > 0) {
        EXPECT_FALSE(with(w.add->count - 1));
      }
      EXPECT_TRUE(cat.is_domestic(w.add->chip));
    }
    if (!w.remove.empty()) {
      ++checked_remove;
      auto g = f;
      for (const auto& item : w.remove) shed(g, rule, item.chip, item.count);
      EXPECT_TRUE(eval_one(rule, g, cat).compliant);
      auto h = f;
      for (std::size_t i = 0; i < w.remove.size(); ++i) {
        shed(h, rule, w.remove[i].chip, w.remove[i].count - (i + 1 == w.remove.size() ? 1 : 0));
      }
      EXPECT_FALSE(eval_one(rule, h, cat).compliant);
      for (const auto& item : w.remove) EXPECT_FALSE(cat.is_domestic(item.chip));
    }
  }
  EXPECT_GT(checked_add, 50);
  EXPECT_GT(checked_remove, 50);
}

TEST(WhatIf, UsageAmountsAreMinimal) {
  const auto cat = fleet::Catalogue::builtin();
  std::mt19937 rng(7);
  int checked = 0;
  for (int trial = 0; trial < 300; ++trial) {
    fleet::Fleet f;
    f.nodes.push_back(make_node("d", "", NodeState::kActive, {{"huawei-ascend-910b", 8}}));
    f.nodes.push_back(make_node("f", "", NodeState::kActive, {{"nvidia-h20", 8}}));
    const double d = rng() % 5000;
    const double fo = 1 + rng() % 5000;
    auto usage_of = [&](double dom, double foreign) {
      policy::Usage u;
      u.entries = {{"d", "huawei-ascend-910b", dom, dom * 1000}, {"f", "nvidia-h20", foreign, foreign * 1000}};
      return u;
    };
    auto rule = make_rule(0.5 + (rng() % 40) / 100.0, rng() % 2, policy::Basis::kDeviceHours);
    const auto base = usage_of(d, fo);
    const auto r = eval_one(rule, f, cat, &base);
    SCOPED_TRACE(r.explanation);
    if (r.compliant) continue;
    ++checked;
    ASSERT_TRUE(r.what_if.add_amount.has_value());
    ASSERT_EQ(r.what_if.remove_amount.has_value(), d > 0) << "shedding foreign usage helps only with some domestic";
    const double a = *r.what_if.add_amount;
    const double x = r.what_if.remove_amount.value_or(0);
    auto holds = [&](double dom, double foreign) {
      const auto u = usage_of(dom, foreign);
      return eval_one(rule, f, cat, &u).compliant;
    };
    EXPECT_TRUE(holds(d + a, fo));
    if (a >= 1) {
      EXPECT_FALSE(holds(d + a - 1, fo));
    }
    if (d > 0) {
      EXPECT_TRUE(holds(d, fo - x));
      if (x >= 1) {
        EXPECT_FALSE(holds(d, fo - x + 1));
      }
    }
  }
  EXPECT_GT(checked, 50);
}

}  // namespace

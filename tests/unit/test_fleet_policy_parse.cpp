// fleet.yaml, policy.yaml, usage.yaml and --change parsing: the issue's examples load as written,
// defaults apply, and bad input fails with errors naming the file, the node/rule and the key.
#include <gtest/gtest.h>

#include "common/error.h"
#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "policy/change.h"
#include "policy/policy.h"
#include "policy/usage.h"
#include "support/error_expect.h"

namespace {

using namespace mixserve;
using fleet::NodeState;

const char* kIssueFleet = R"(# fleet.yaml
home_country: CN
nodes:
  - name: sh-a01
    pool: inference          # optional
    project: pudong-phase2   # optional
    state: active            # active | idle | drained | retired (retired devices never count)
    devices:
      - chip: huawei-ascend-910b
        count: 8
  - name: sh-n01
    devices:
      - chip: nvidia-h20
        count: 8
)";

const char* kIssuePolicy = R"(# policy.yaml
rules:
  - name: national-50
    min_domestic_share: 0.5    # the share must be strictly above for 'more than 50%' when strict: true
    strict: true
    basis: device_count        # device_count | peak_fp16_tflops | memory_gib | device_hours | served_tokens
    scope: center              # center | pool:<name> | project:<name>
    mode: enforce              # enforce | audit
)";

using ::mixserve::testing::error_of;
using ::mixserve::testing::expect_parts;

TEST(FleetParse, IssueExampleAsWritten) {
  const auto cat = fleet::Catalogue::builtin();
  const auto f = fleet::parse_fleet(kIssueFleet, "fleet.yaml", cat);
  EXPECT_EQ(f.home_country, "CN");
  ASSERT_EQ(f.nodes.size(), 2u);
  EXPECT_EQ(f.nodes[0].name, "sh-a01");
  EXPECT_EQ(f.nodes[0].pool, "inference");
  EXPECT_EQ(f.nodes[0].project, "pudong-phase2");
  EXPECT_EQ(f.nodes[0].state, NodeState::kActive);
  ASSERT_EQ(f.nodes[0].devices.size(), 1u);
  EXPECT_EQ(f.nodes[0].devices[0].chip, "huawei-ascend-910b");
  EXPECT_EQ(f.nodes[0].devices[0].count, 8);
  EXPECT_EQ(f.nodes[1].pool, "");
  EXPECT_EQ(f.nodes[1].state, NodeState::kActive) << "state defaults to active";
  EXPECT_TRUE(f.unknown_chips.empty());
  EXPECT_NE(f.find("sh-n01"), nullptr);
  EXPECT_EQ(f.find("nope"), nullptr);
}

TEST(FleetParse, DefaultsAndStates) {
  const auto cat = fleet::Catalogue::builtin();
  const auto f = fleet::parse_fleet(
      "nodes:\n  - {name: a, state: idle, funding: state}\n  - {name: b, state: drained}\n  - {name: c, state: "
      "retired}\n",
      "f.yaml", cat);
  EXPECT_EQ(f.home_country, "CN");
  EXPECT_EQ(f.nodes[0].state, NodeState::kIdle);
  EXPECT_EQ(f.nodes[0].funding, "state");
  EXPECT_TRUE(f.nodes[0].devices.empty());
  EXPECT_EQ(f.nodes[1].state, NodeState::kDrained);
  EXPECT_EQ(f.nodes[2].state, NodeState::kRetired);
  EXPECT_TRUE(fleet::parse_fleet("nodes: []\n", "f.yaml", cat).nodes.empty());
}

TEST(FleetParse, ErrorsNameFileNodeAndKey) {
  const auto cat = fleet::Catalogue::builtin();
  auto parse = [&](const std::string& text) { return [text, &cat] { fleet::parse_fleet(text, "f.yaml", cat); }; };
  expect_parts(error_of(parse("nodes:\n  - {name: a, devices: [{chip: nvidia-b200, count: 8}]}\n")),
               {"f.yaml:2:", "node 'a' device #1", "key 'chip'", "unknown chip id 'nvidia-b200'"});
  expect_parts(error_of(parse("nodes:\n  - {name: a}\n  - {name: a}\n")), {"node 'a'", "duplicate node name"});
  expect_parts(error_of(parse("nodes:\n  - {name: a, state: broken}\n")),
               {"node 'a'", "key 'state'", "unknown state 'broken'"});
  expect_parts(error_of(parse("nodes:\n  - {name: a, devices: [{chip: nvidia-h20, count: -1}]}\n")),
               {"node 'a' device #1", "key 'count'", "must not be negative"});
  expect_parts(error_of(parse("nodes:\n  - {name: a, devices: [{chip: nvidia-h20, count: 2.5}]}\n")),
               {"key 'count'", "whole number"});
  expect_parts(error_of(parse("nodes:\n  - {name: a, devices: [{chip: nvidia-h20, count: 99999999999}]}\n")),
               {"key 'count'", "over the limit"});
  expect_parts(error_of(parse("nodes:\n  - {name: a, devices: [{chip: nvidia-h20}]}\n")), {"key 'count'", "required"});
  expect_parts(error_of(parse("nodes:\n  - {pool: x}\n")), {"node #1", "key 'name'", "required"});
  expect_parts(error_of(parse("nodes:\n  - {name: a, gpus: 8}\n")), {"node 'a'", "key 'gpus'", "unknown key"});
  expect_parts(error_of(parse("nodes:\n  - {name: a, devices: {chip: x}}\n")),
               {"node 'a'", "key 'devices'", "expected a list"});
  expect_parts(error_of(parse("home_country: china\nnodes: []\n")), {"key 'home_country'", "two-letter"});
  expect_parts(error_of(parse("")), {"f.yaml", "empty"});
  expect_parts(error_of(parse("home_country: CN\n")), {"key 'nodes'", "required"});
  expect_parts(error_of(parse("nodes: [\n")), {"f.yaml", "YAML syntax error"});
}

TEST(FleetParse, AliasRepeatedListsCannotBlowUpMemory) {
  // 2,000 nodes each aliasing one 1,000-entry device list would be 2,000,000 entries from a small file.
  std::string text = "big: &big\n";
  for (int i = 0; i < 1000; ++i) text += "  - {chip: nvidia-h20, count: 1}\n";
  text += "nodes:\n";
  for (int i = 0; i < 2000; ++i) text += "  - {name: n" + std::to_string(i) + ", devices: *big}\n";
  const auto cat = fleet::Catalogue::builtin();
  // 'big' is not a fleet key: that is caught first; without it the entry limit catches the aliases.
  expect_parts(error_of([&] { fleet::parse_fleet(text, "f.yaml", cat); }), {"key 'big'", "unknown key"});
  std::string aliased = "nodes:\n  - name: base\n    devices: &big\n";
  for (int i = 0; i < 1000; ++i) aliased += "      - {chip: nvidia-h20, count: 1}\n";
  for (int i = 0; i < 2000; ++i) aliased += "  - {name: n" + std::to_string(i) + ", devices: *big}\n";
  expect_parts(error_of([&] { fleet::parse_fleet(aliased, "f.yaml", cat); }), {"more than 1000000 device entries"});
}

TEST(FleetParse, UnknownChipsListedWhenAllowed) {
  const auto cat = fleet::Catalogue::builtin();
  fleet::FleetOptions options;
  options.allow_unknown_chips = true;
  const auto f = fleet::parse_fleet(
      "nodes:\n  - {name: a, devices: [{chip: zz-npu, count: 2}, {chip: aa-npu, count: 1}, {chip: zz-npu, count: "
      "3}]}\n",
      "f.yaml", cat, options);
  ASSERT_EQ(f.nodes[0].devices.size(), 3u) << "unknown devices are kept, never dropped";
  EXPECT_EQ(f.unknown_chips, (std::vector<std::string>{"aa-npu", "zz-npu"}));
}

TEST(PolicyParse, IssueExampleAndDefaults) {
  const auto p = policy::parse_policy(kIssuePolicy, "policy.yaml");
  ASSERT_EQ(p.rules.size(), 1u);
  const auto& r = p.rules[0];
  EXPECT_EQ(r.name, "national-50");
  EXPECT_DOUBLE_EQ(r.min_domestic_share, 0.5);
  EXPECT_TRUE(r.strict);
  EXPECT_EQ(r.basis, policy::Basis::kDeviceCount);
  EXPECT_EQ(r.scope.kind, policy::Scope::Kind::kCenter);
  EXPECT_EQ(r.mode, policy::Mode::kEnforce);
  const auto d = policy::parse_policy(
      "rules:\n  - name: x\n  - {name: y, min_domestic_share: 1.0, scope: 'pool:train', basis: served_tokens, mode: "
      "audit}\n"
      "  - {name: z, scope: 'project:p1', count_states: [active, idle]}\n",
      "p.yaml");
  EXPECT_DOUBLE_EQ(d.rules[0].min_domestic_share, 0.5);
  EXPECT_FALSE(d.rules[0].strict);
  EXPECT_TRUE(d.rules[0].counts_state(NodeState::kDrained));
  EXPECT_FALSE(d.rules[0].counts_state(NodeState::kRetired));
  EXPECT_DOUBLE_EQ(d.rules[1].min_domestic_share, 1.0);
  EXPECT_EQ(d.rules[1].scope.to_string(), "pool:train");
  EXPECT_EQ(d.rules[1].basis, policy::Basis::kServedTokens);
  EXPECT_EQ(d.rules[1].mode, policy::Mode::kAudit);
  EXPECT_EQ(d.rules[2].scope.to_string(), "project:p1");
  EXPECT_TRUE(d.rules[2].counts_state(NodeState::kIdle));
  EXPECT_FALSE(d.rules[2].counts_state(NodeState::kDrained));
}

TEST(PolicyParse, ErrorsNameRuleAndKey) {
  auto parse = [](const std::string& text) { return [text] { policy::parse_policy(text, "p.yaml"); }; };
  expect_parts(error_of(parse("rules:\n  - {name: a, min_domestic_share: 50}\n")),
               {"p.yaml:2:", "rule 'a'", "key 'min_domestic_share'", "[0, 1]"});
  expect_parts(error_of(parse("rules:\n  - {name: a, min_domestic_share: -0.1}\n")), {"rule 'a'", "negative"});
  expect_parts(error_of(parse("rules:\n  - {name: a, min_domestic_share: 1.0, strict: true}\n")),
               {"rule 'a'", "key 'strict'", "never"});
  expect_parts(error_of(parse("rules:\n  - {name: a, scope: region:east}\n")),
               {"key 'scope'", "unknown scope 'region:east'"});
  expect_parts(error_of(parse("rules:\n  - {name: a, scope: 'pool:'}\n")), {"key 'scope'", "names no pool"});
  expect_parts(error_of(parse("rules:\n  - {name: a, mode: warn}\n")), {"key 'mode'", "unknown mode 'warn'"});
  expect_parts(error_of(parse("rules:\n  - {name: a, strict: yes please}\n")), {"key 'strict'", "true or false"});
  expect_parts(error_of(parse("rules:\n  - {name: a, count_states: [retired]}\n")), {"key 'count_states'", "retired"});
  expect_parts(error_of(parse("rules:\n  - {name: a}\n  - {name: a}\n")), {"rule 'a'", "duplicate rule name"});
  expect_parts(error_of(parse("rules:\n  - {name: a, threshold: 0.5}\n")),
               {"rule 'a'", "key 'threshold'", "unknown key"});
  expect_parts(error_of(parse("rules: []\n")), {"no rules"});
  expect_parts(error_of(parse("")), {"empty"});
}

TEST(UsageParse, ValidatesNodesAndChips) {
  const auto cat = fleet::Catalogue::builtin();
  const auto f = fleet::parse_fleet(kIssueFleet, "fleet.yaml", cat);
  const auto u = policy::parse_usage(
      "period: {from: '2026-11-01', to: '2026-11-30'}\nnodes:\n"
      "  - {name: sh-a01, devices: [{chip: huawei-ascend-910b, device_hours: 5376, served_tokens: 1.2e9}]}\n",
      "u.yaml", f, cat);
  EXPECT_EQ(u.from, "2026-11-01");
  ASSERT_EQ(u.entries.size(), 1u);
  EXPECT_DOUBLE_EQ(u.entries[0].device_hours, 5376);
  EXPECT_DOUBLE_EQ(u.entries[0].served_tokens, 1.2e9);
  auto parse = [&](const std::string& text) {
    return [text, &f, &cat] { policy::parse_usage(text, "u.yaml", f, cat); };
  };
  expect_parts(error_of(parse("nodes:\n  - {name: ghost, devices: [{chip: nvidia-h20, device_hours: 1}]}\n")),
               {"usage node 'ghost'", "no node of this name"});
  expect_parts(error_of(parse("nodes:\n  - {name: sh-a01, devices: [{chip: nope, device_hours: 1}]}\n")),
               {"unknown chip id 'nope'"});
  expect_parts(error_of(parse("nodes:\n  - {name: sh-a01, devices: [{chip: nvidia-h20, device_hours: -5}]}\n")),
               {"device_hours", "negative"});
  expect_parts(error_of(parse("nodes:\n  - {name: sh-a01, devices: [{chip: nvidia-h20}]}\n")),
               {"device_hours, served_tokens or both"});
}

TEST(ChangeParse, FormsAndErrors) {
  auto c = policy::parse_change("add:sh-a02:huawei-ascend-910b:8");
  EXPECT_EQ(c.kind, policy::FleetChange::Kind::kAdd);
  EXPECT_EQ(c.node, "sh-a02");
  EXPECT_EQ(c.chip, "huawei-ascend-910b");
  EXPECT_EQ(c.count, 8);
  EXPECT_EQ(policy::parse_change("drain:x").kind, policy::FleetChange::Kind::kDrain);
  EXPECT_EQ(policy::parse_change("remove:x").kind, policy::FleetChange::Kind::kRemove);
  EXPECT_EQ(policy::parse_change("retire:x").kind, policy::FleetChange::Kind::kRetire);
  for (const char* bad : {"", "add", "add:x", "add:x:chip", "add:x:chip:0", "add:x:chip:-1", "add:x:chip:8x",
                          "add:x:chip:99999999999999999999", "drain:", "drain:x:y", "explode:x", "add::chip:1"}) {
    expect_parts(error_of([bad] { policy::parse_change(bad); }), {"--change"});
  }
}

TEST(ChangeApply, AddCreatesNodeOthersNeedOne) {
  const auto cat = fleet::Catalogue::builtin();
  auto f = fleet::parse_fleet(kIssueFleet, "fleet.yaml", cat);
  policy::apply_change(f, policy::parse_change("add:sh-a01:huawei-ascend-910b:2"), cat, false);
  EXPECT_EQ(f.find("sh-a01")->devices[0].count, 10);
  policy::apply_change(f, policy::parse_change("add:new:cambricon-mlu590:4"), cat, false);
  ASSERT_NE(f.find("new"), nullptr);
  EXPECT_EQ(f.find("new")->state, NodeState::kActive);
  policy::apply_change(f, policy::parse_change("drain:sh-n01"), cat, false);
  EXPECT_EQ(f.find("sh-n01")->state, NodeState::kDrained);
  policy::apply_change(f, policy::parse_change("remove:sh-n01"), cat, false);
  EXPECT_EQ(f.find("sh-n01"), nullptr);
  expect_parts(error_of([&] { policy::apply_change(f, policy::parse_change("drain:ghost"), cat, false); }),
               {"no node 'ghost'"});
  expect_parts(error_of([&] { policy::apply_change(f, policy::parse_change("add:x:nope:1"), cat, false); }),
               {"unknown chip id 'nope'"});
}

}  // namespace

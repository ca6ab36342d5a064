// End-to-end: `mixserve place` exit codes (0 plan, 1 infeasible hard requirements, 2 bad input), the
// table with its reasons, the --json plan, --states and the --ledger placement record.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "policy/ledger.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

using testing::run_command;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;

const char* kFleet = R"(home_country: CN
nodes:
  - {name: sh-a01, pool: inference, devices: [{chip: huawei-ascend-910b, count: 8}]}
  - {name: sh-a02, pool: inference, state: idle, devices: [{chip: huawei-ascend-910b, count: 8}]}
  - {name: sh-n01, pool: inference, devices: [{chip: nvidia-h20, count: 8}]}
  - {name: sh-n02, state: drained, devices: [{chip: nvidia-h20, count: 8}]}
  - {name: sh-old, state: retired, devices: [{chip: nvidia-h100, count: 8}]}
)";

// qwen: 2 devices per replica on either chip, 1000 tokens/s measured (500 per device); llama: one H20
// device, 600 tokens/s, so it earns more per device and always gets its 2 replicas; mlu: no chip.
const char* kDemand = R"(defaults: {memory_fraction: 1.0}
models:
  - name: qwen-72b
    weights_gib: 100
    stacks: [cuda, cann]
    demand_tokens_per_s: 20000
    tokens_per_s: {huawei-ascend-910b: 1000, nvidia-h20: 1000}
  - name: llama-8b
    weights_gib: 16
    stacks: [cuda]
    demand_tokens_per_s: 1200
    tokens_per_s: {nvidia-h20: 600}
  - {name: mlu-only, weights_gib: 16, stacks: [bang], demand_tokens_per_s: 100}
)";

const char* kPolicy = R"(rules:
  - {name: national-70, min_domestic_share: 0.7, basis: device_count}
  - {name: audit-90, min_domestic_share: 0.9, mode: audit}
)";

struct Files {
  TempDir dir;
  std::string fleet = dir.write("fleet.yaml", kFleet);
  std::string demand = dir.write("demand.yaml", kDemand);
  std::string policy = dir.write("policy.yaml", kPolicy);
  std::string place(const std::string& extra = "") const {
    return kBin + " place --fleet " + fleet + " --demand " + demand + " --policy " + policy + " " + extra;
  }
};

TEST(PlaceCli, TablePlanWithReasons) {
  Files f;
  const auto r = run_command(f.place());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const char* part : {"qwen-72b", "llama-8b", "mlu-only", "stack: no eligible device runs its engine",
                           "national-70", "audit-90", "below", "would break the enforced rule 'national-70'"}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << "'" << part << "' missing:\n" << r.out;
  }
  EXPECT_EQ(r.out.find("sh-n02"), std::string::npos) << "drained nodes get nothing:\n" << r.out;
  EXPECT_EQ(r.out.find("sh-old"), std::string::npos) << "retired nodes get nothing:\n" << r.out;
}

TEST(PlaceCli, JsonPlanRespectsTheEnforcedRule) {
  Files f;
  const auto r = run_command(f.place("--json"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["feasible"].get<bool>());
  // 16 domestic devices allow at most 6 foreign ones under 70%: llama's 2, then 2 qwen replicas.
  EXPECT_EQ(j["summary"]["devices_used"], 22) << j.dump(2);
  EXPECT_DOUBLE_EQ(j["summary"]["planned_tokens_per_s"].get<double>(), 10 * 1000 + 1200);
  const auto& rule = j["rules"][0];
  EXPECT_EQ(rule["rule"], "national-70");
  EXPECT_TRUE(rule["holds"].get<bool>());
  EXPECT_NEAR(rule["share"].get<double>(), 16.0 / 22, 1e-12);
  EXPECT_FALSE(j["rules"][1]["constraint"].get<bool>());
  const auto& qwen = j["models"][0];
  EXPECT_EQ(qwen["limit"], "share") << qwen.dump(2);
  EXPECT_EQ(qwen["binding_rules"], nlohmann::json::array({"national-70"}));
  for (const auto& a : qwen["assignments"]) {
    EXPECT_EQ(a["devices_per_replica"], 2);
    EXPECT_FALSE(a["estimate"].get<bool>());
  }
  EXPECT_EQ(j["models"][2]["limit"], "stack");
}

TEST(PlaceCli, StatesFlagLimitsEligibleNodes) {
  Files f;
  const auto r = run_command(f.place("--json --states active"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["summary"]["eligible_nodes"], 2);
  for (const auto& m : j["models"]) {
    for (const auto& a : m["assignments"]) EXPECT_NE(a["node"], "sh-a02") << "idle node used";
  }
  EXPECT_EQ(run_command(f.place("--states active,retired")).exit_code, 2);
}

TEST(PlaceCli, InfeasibleHardRequirementExitsOneNamingTheRule) {
  Files f;
  const auto demand = f.dir.write("hard.yaml", R"(defaults: {memory_fraction: 1.0}
models:
  - name: qwen-72b
    weights_gib: 100
    stacks: [cuda, cann]
    demand_tokens_per_s: 20000
    min_tokens_per_s: 11500
    tokens_per_s: {huawei-ascend-910b: 1000, nvidia-h20: 1000}
)");
  const auto r = run_command(kBin + " place --fleet " + f.fleet + " --demand " + demand + " --policy " + f.policy);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("placement infeasible (share)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("national-70"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("gets at most 11,000.0 of the required 11,500.0 tokens/s"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("placement infeasible"), std::string::npos) << r.out;
  // Without the rule 12 replicas fit the 24 eligible devices: 12,000 tokens/s.
  const auto no_policy = run_command(kBin + " place --json --fleet " + f.fleet + " --demand " + demand);
  EXPECT_EQ(no_policy.exit_code, 0) << no_policy.out << no_policy.err;
  // Above what every device gives, capacity binds whatever the rules.
  const auto too_much = f.dir.write("too-much.yaml", R"(defaults: {memory_fraction: 1.0}
models:
  - {name: q, weights_gib: 100, stacks: [cuda, cann], demand_tokens_per_s: 20000, min_tokens_per_s: 15000,
     tokens_per_s: {huawei-ascend-910b: 1000, nvidia-h20: 1000}}
)");
  const auto capacity = run_command(kBin + " place --json --fleet " + f.fleet + " --demand " + too_much);
  EXPECT_EQ(capacity.exit_code, 1) << capacity.out;
  const auto j = nlohmann::json::parse(capacity.out);
  EXPECT_EQ(j["infeasibility"][0]["limit"], "capacity") << j.dump(2);
  EXPECT_NE(capacity.err.find("12,000.0 tokens/s with 12 replicas"), std::string::npos) << capacity.err;
}

TEST(PlaceCli, BadInputExitsTwo) {
  Files f;
  const auto bad_demand = f.dir.write("bad.yaml",
                                "models:\n  - {name: m, weights_gib: 1, stacks: [cuda], "
                                "demand_tokens_per_s: 5, colour: red}\n");
  auto r = run_command(kBin + " place --fleet " + f.fleet + " --demand " + bad_demand);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("key 'colour': unknown key"), std::string::npos) << r.err;
  const auto bad_fleet = f.dir.write("fleet2.yaml", "nodes:\n  - {name: x, devices: [{chip: acme-npu, count: 1}]}\n");
  r = run_command(kBin + " place --fleet " + bad_fleet + " --demand " + f.demand);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("acme-npu"), std::string::npos) << r.err;
  r = run_command(kBin + " place --fleet " + f.dir.file("missing.yaml") + " --demand " + f.demand);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_command(kBin + " place --fleet " + f.fleet);
  EXPECT_EQ(r.exit_code, 2) << "--demand is required: " << r.err;
}

TEST(PlaceCli, LedgerRecordsThePlan) {
  Files f;
  const auto ledger = f.dir.file("ledger.db");
  auto r = run_command(f.place("--ledger " + ledger));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto records = policy::Ledger::open(ledger, policy::LedgerOpenMode::kExisting).records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].kind, "placement");
  const auto payload = nlohmann::json::parse(records[0].payload);
  EXPECT_EQ(payload["demand"], f.demand);
  EXPECT_EQ(payload["models"].size(), 3u);
  EXPECT_EQ(payload["summary"]["devices_used"], 22);
  r = run_command(kBin + " ledger verify --ledger " + ledger + " --json");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

}  // namespace
}  // namespace mixserve

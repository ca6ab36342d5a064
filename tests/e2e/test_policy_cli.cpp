// End-to-end: `mixserve policy check` exit codes (0 holds, 1 enforced violation, 2 bad input),
// the --json fields, --change, --usage, --usage-ledger, --catalogue, and `mixserve chips`.
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
  - name: sh-a01
    pool: inference
    project: pudong-phase2
    state: active
    devices:
      - chip: huawei-ascend-910b
        count: 8
  - name: sh-n01
    devices:
      - chip: nvidia-h20
        count: 8
)";

const char* kStrict = R"(rules:
  - name: national-50
    min_domestic_share: 0.5
    strict: true
    basis: device_count
    scope: center
    mode: enforce
)";

const char* kLenient = R"(rules:
  - {name: at-least-half, min_domestic_share: 0.5, strict: false}
  - {name: compute, basis: peak_fp16_tflops, strict: true}
  - {name: audit-only, min_domestic_share: 1.0, mode: audit}
)";

struct Files {
  TempDir dir;
  std::string fleet = dir.write("fleet.yaml", kFleet);
  std::string strict = dir.write("strict.yaml", kStrict);
  std::string lenient = dir.write("lenient.yaml", kLenient);
};

std::string check(const Files& f, const std::string& policy, const std::string& extra = "") {
  return kBin + " policy check --fleet " + f.fleet + " --policy " + policy + " " + extra;
}

TEST(PolicyCli, ExitZeroWhenEveryEnforcedRuleHolds) {
  Files f;
  const auto r = run_command(check(f, f.lenient));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("at-least-half"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("audit-violation"), std::string::npos) << "audit violations are reported: " << r.out;
}

TEST(PolicyCli, ExitOneOnEnforcedViolationWithExplanation) {
  Files f;
  const auto r = run_command(check(f, f.strict));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("domestic devices 8 of 16 (50.0%)"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("national-50"), std::string::npos) << r.err;
}

TEST(PolicyCli, JsonHasOneObjectPerRuleWithTheRequiredFields) {
  Files f;
  const auto r = run_command(check(f, f.lenient, "--json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rules"].size(), 3u);
  for (const auto& rule : j["rules"]) {
    for (const char* key : {"rule", "compliant", "share", "numerator", "denominator", "threshold", "explanation",
                            "mode", "basis", "scope", "margin", "what_if", "outcome"}) {
      EXPECT_TRUE(rule.contains(key)) << key << " in " << rule.dump();
    }
  }
  const auto& first = j["rules"][0];
  EXPECT_EQ(first["rule"], "at-least-half");
  EXPECT_EQ(first["compliant"], true);
  EXPECT_DOUBLE_EQ(first["share"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(first["numerator"].get<double>(), 8);
  EXPECT_DOUBLE_EQ(first["denominator"].get<double>(), 16);
  EXPECT_DOUBLE_EQ(first["threshold"].get<double>(), 0.5);
  EXPECT_TRUE(first["what_if"].is_null());
  const auto& audit = j["rules"][2];
  EXPECT_EQ(audit["compliant"], false);
  EXPECT_EQ(audit["outcome"], "audit-violation");
  EXPECT_EQ(audit["what_if"]["remove_devices"], 8);
}

TEST(PolicyCli, JsonViolationCarriesWhatIf) {
  Files f;
  const auto r = run_command(check(f, f.strict, "--json"));
  ASSERT_EQ(r.exit_code, 1) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto& w = j["rules"][0]["what_if"];
  EXPECT_EQ(w["add"]["chip"], "huawei-ascend-910b");
  EXPECT_EQ(w["add"]["count"], 1);
  EXPECT_EQ(w["remove"][0]["chip"], "nvidia-h20");
  EXPECT_EQ(w["remove"][0]["count"], 1);
}

TEST(PolicyCli, ProposedChangesAreCheckedBeforeApplying) {
  Files f;
  auto r = run_command(check(f, f.strict, "--change add:sh-a02:huawei-ascend-910b:1"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("9 of 17"), std::string::npos) << r.out;
  r = run_command(check(f, f.strict, "--change remove:sh-n01 --change drain:sh-a01"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = run_command(check(f, f.strict, "--change drain:sh-n01"));
  EXPECT_EQ(r.exit_code, 1) << "drained devices still count by default: " << r.out;
  r = run_command(check(f, f.strict, "--change explode:sh-n01"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_command(check(f, f.strict, "--change drain:ghost"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("ghost"), std::string::npos) << r.err;
}

TEST(PolicyCli, UsageAndCatalogueOverrides) {
  Files f;
  const auto policy = f.dir.write("hours.yaml", "rules:\n  - {name: hours, basis: device_hours, strict: true}\n");
  const auto usage = f.dir.write("usage.yaml",
                           "nodes:\n  - {name: sh-a01, devices: [{chip: huawei-ascend-910b, device_hours: 600}]}\n"
                           "  - {name: sh-n01, devices: [{chip: nvidia-h20, device_hours: 400}]}\n");
  auto r = run_command(check(f, policy, "--usage " + usage));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = run_command(check(f, policy));
  EXPECT_EQ(r.exit_code, 2) << "usage rules need --usage: " << r.err;
  EXPECT_NE(r.err.find("--usage"), std::string::npos) << r.err;
  // Declaring the H20 domestic (a site override) flips the compute rule's numbers.
  const auto over = f.dir.write("cat.yaml", "chips:\n  - {id: nvidia-h20, country: CN}\n");
  r = run_command(check(f, f.lenient, "--json --catalogue " + over));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(r.out)["rules"][0]["share"].get<double>(), 1.0);
}

TEST(PolicyCli, BadInputExitsTwoWithOneClearLine) {
  Files f;
  const auto bad_fleet =
      f.dir.write("bad-fleet.yaml", "nodes:\n  - {name: a, devices: [{chip: nvidia-b200, count: 8}]}\n");
  const auto bad_policy = f.dir.write("bad-policy.yaml", "rules:\n  - {name: x, min_domestic_share: 50}\n");
  struct Case {
    std::string cmd, needle;
  };
  const Case cases[] = {
      {kBin + " policy check --fleet " + bad_fleet + " --policy " + f.strict, "unknown chip id 'nvidia-b200'"},
      {kBin + " policy check --fleet " + f.fleet + " --policy " + bad_policy, "min_domestic_share"},
      {kBin + " policy check --fleet " + f.dir.file("absent.yaml") + " --policy " + f.strict, "absent.yaml"},
      {kBin + " policy check --fleet " + f.fleet + " --policy " + f.strict + " --catalogue " + f.dir.file("nope.yaml"),
       "nope.yaml"},
      {kBin + " policy check --fleet " + f.fleet, "--policy"},
  };
  for (const auto& c : cases) {
    const auto r = run_command(c.cmd);
    EXPECT_EQ(r.exit_code, 2) << c.cmd << "\n" << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.cmd << "\n" << r.err;
  }
  // Unknown chips may be allowed explicitly; they then count as foreign.
  const auto r = run_command(kBin + " policy check --fleet " + bad_fleet + " --policy " + f.strict +
                             " --allow-unknown-chips --json");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(r.out)["rules"][0]["denominator"].get<double>(), 8);
}

TEST(PolicyCli, LedgerRecordsTheEvaluation) {
  Files f;
  const auto ledger = f.dir.file("ledger.db");
  auto r = run_command(check(f, f.strict, "--ledger " + ledger));
  EXPECT_EQ(r.exit_code, 1) << "the verdict is unchanged by recording it: " << r.err;
  r = run_command(check(f, f.lenient, "--ledger " + ledger));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run_command(kBin + " ledger verify --ledger " + ledger + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["records"], 2) << r.out;
}

// A usage_sample as the gateway writes it, at the end of its period.
void add_sample(policy::Ledger& l, const std::string& node, const std::string& chip, const std::string& from,
                const std::string& to, double tokens) {
  l.append_at(policy::RecordKind::kUsageSample,
              {{"source", "gateway"}, {"node", node}, {"chip", chip}, {"domestic", chip != "nvidia-h20"},
               {"from", "2026-11-01T" + from + ":00.000000Z"}, {"to", "2026-11-01T" + to + ":00.000000Z"},
               {"served_tokens", tokens}, {"device_hours", 1.0}, {"requests", 1}},
              "2026-11-01T" + to + ":00.000000Z");
}

TEST(PolicyCli, UsageFromTheLedgersUsageSamples) {
  Files f;
  const auto policy =
      f.dir.write("tokens.yaml", "rules:\n  - {name: tokens-60, basis: served_tokens, min_domestic_share: 0.6}\n");
  const auto ledger = f.dir.file("ledger.db");
  {
    auto l = policy::Ledger::open(ledger);
    add_sample(l, "sh-a01", "huawei-ascend-910b", "00:00", "01:00", 3000);
    add_sample(l, "sh-n01", "nvidia-h20", "00:00", "01:00", 1000);
    add_sample(l, "sh-n01", "nvidia-h20", "01:00", "02:00", 4000);
  }
  // Whole ledger: 3000 of 8000.
  auto r = run_command(check(f, policy, "--json --usage-ledger " + ledger));
  ASSERT_EQ(r.exit_code, 1) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_DOUBLE_EQ(j["rules"][0]["share"].get<double>(), 3000.0 / 8000);
  EXPECT_EQ(j["usage_source"]["source"], "ledger");
  EXPECT_EQ(j["usage_source"]["samples"], 3);
  // To 01:30: half of the last sample, prorated: 3000 of 6000.
  r = run_command(check(f, policy, "--json --usage-ledger " + ledger + " --usage-to 2026-11-01T01:30:00Z"));
  ASSERT_EQ(r.exit_code, 1) << r.out << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_DOUBLE_EQ(j["rules"][0]["denominator"].get<double>(), 6000);
  EXPECT_EQ(j["usage_source"]["prorated"], 1);
  EXPECT_EQ(j["usage_source"]["to"], "2026-11-01T01:30:00.000000Z");
  // The first hour holds (75 %); the evaluation is appended to the same ledger it read usage from.
  r = run_command(check(f, policy,
                        "--usage-ledger " + ledger + " --usage-from 2026-11-01 --usage-to 2026-11-01T01:00:00Z "
                        "--ledger " + ledger));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("usage from ledger " + ledger + ": 2 usage_sample record(s)"), std::string::npos) << r.out;
  r = run_command(kBin + " ledger verify --ledger " + ledger + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["records"], 4) << r.out;

  // Bad input exits 2 with one clear line.
  const auto usage = f.dir.write("usage.yaml", "nodes: []\n");
  const auto ghost_ledger = f.dir.file("ghost.db");
  {
    auto l = policy::Ledger::open(ghost_ledger);
    add_sample(l, "ghost-07", "nvidia-h20", "00:00", "01:00", 10);
  }
  struct Case {
    std::string extra, needle;
  };
  const Case cases[] = {
      {"--usage " + usage + " --usage-ledger " + ledger, "not both"},
      {"--usage-from 2026-11-01", "--usage-ledger"},
      {"--usage-ledger " + f.dir.file("absent.db"), "absent.db"},
      {"--usage-ledger " + ledger + " --usage-from tomorrow", "--usage-from"},
      {"--usage-ledger " + ledger + " --usage-from 2026-11-02 --usage-to 2026-11-01", "must be before"},
      {"--usage-ledger " + ghost_ledger, "'ghost-07' (seq 1)"},
  };
  for (const auto& c : cases) {
    r = run_command(check(f, policy, c.extra));
    EXPECT_EQ(r.exit_code, 2) << c.extra << "\n" << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.extra << "\n" << r.err;
  }
}

TEST(ChipsCli, TableAndJson) {
  auto r = run_command(kBin + " chips");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* id : {"huawei-ascend-910b", "nvidia-h100", "cambricon-mlu590", "cpu-arm"}) {
    EXPECT_NE(r.out.find(id), std::string::npos) << id;
  }
  r = run_command(kBin + " chips --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GE(j.size(), 19u);
  for (const auto& chip : j) EXPECT_FALSE(chip["fp16_tflops"]["source"].get<std::string>().empty());
}

}  // namespace
}  // namespace mixserve

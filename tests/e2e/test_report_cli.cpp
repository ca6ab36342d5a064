// End-to-end: `mixserve policy check --ledger` several times as the fleet changes, then `mixserve report`
// in JSON, CSV and HTML; bad flags exit 2 with one line; a tampered ledger exits 1 and says so.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/ledger_edit.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

using testing::run_command;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `domestic` Ascend 910B in pool inference / project pudong, `foreign` H20 in pool inference.
std::string fleet(int domestic, int foreign) {
  return "nodes:\n"
         "  - {name: sh-a01, pool: inference, project: pudong, devices: [{chip: huawei-ascend-910b, count: " +
         std::to_string(domestic) +
         "}]}\n"
         "  - {name: sh-n01, pool: inference, devices: [{chip: nvidia-h20, count: " +
         std::to_string(foreign) + "}]}\n";
}

const char* kPolicy = R"(rules:
  - {name: national-50, min_domestic_share: 0.5, basis: device_count, scope: center}
  - {name: inference-90, min_domestic_share: 0.9, scope: "pool:inference", mode: audit}
)";

struct History {
  TempDir dir;
  std::string ledger = dir.file("ledger.db");
  std::string policy = dir.write("policy.yaml", kPolicy);
  int checks = 0;

  int check(int domestic, int foreign) {
    const auto f = dir.write("fleet" + std::to_string(++checks) + ".yaml", fleet(domestic, foreign));
    const auto r = run_command(kBin + " policy check --fleet " + f + " --policy " + policy + " --ledger " + ledger);
    return r.exit_code;
  }
  testing::CommandResult report(const std::string& flags) {
    return run_command(kBin + " report --ledger " + ledger + " " + flags);
  }
};

// 8/16 holds, 4/16 violates, 12/16 holds again: one closed violation of national-50; inference-90
// (audit) violates throughout: one ongoing violation.
void make(History& h) {
  ASSERT_EQ(h.check(8, 8), 0);
  ASSERT_EQ(h.check(4, 12), 1);
  ASSERT_EQ(h.check(12, 4), 0);
}

TEST(ReportCli, JsonFollowsTheFleetThroughChecks) {
  History h;
  make(h);
  const auto r = h.report("--format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["verify"]["ok"], true);
  EXPECT_EQ(j["evaluations"], 3);
  ASSERT_EQ(j["rules"].size(), 2u);
  const auto& inference = j["rules"][0];
  const auto& national = j["rules"][1];
  EXPECT_EQ(national["rule"], "national-50");
  const double shares[] = {0.5, 0.25, 0.75};
  for (int i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(national["points"][i]["share"].get<double>(), shares[i]);
  ASSERT_EQ(national["violations"].size(), 1u);
  EXPECT_EQ(national["violations"][0]["ongoing"], false);
  EXPECT_EQ(national["violations"][0]["start"], national["points"][1]["time"]);
  EXPECT_EQ(national["violations"][0]["end"], national["points"][2]["time"]);
  EXPECT_EQ(inference["scope"], "pool:inference");
  ASSERT_EQ(inference["violations"].size(), 1u);
  EXPECT_EQ(inference["violations"][0]["ongoing"], true);
  EXPECT_EQ(inference["violations"][0]["mode"], "audit");
  // Measured bases: center, pool:inference, project:pudong x three capacity bases, one point per check.
  ASSERT_EQ(j["measurements"].size(), 9u);
  EXPECT_EQ(j["measurements"][0]["scope"], "center");
  EXPECT_EQ(j["measurements"][8]["scope"], "project:pudong");
  EXPECT_DOUBLE_EQ(j["measurements"][6]["points"][1]["share"].get<double>(), 1.0) << "only Ascends in the project";
  for (const auto& m : j["measurements"]) EXPECT_EQ(m["points"].size(), 3u);
}

TEST(ReportCli, CsvAndHtmlFormatsAndOutputFile) {
  History h;
  make(h);
  auto r = h.report("--format csv");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Header + 2 rules x 3 checks + 9 measurements x 3 checks, CRLF line ends.
  std::size_t lines = 0;
  for (std::size_t pos = r.out.find("\r\n"); pos != std::string::npos; pos = r.out.find("\r\n", pos + 2)) ++lines;
  EXPECT_EQ(lines, 1u + 6 + 27) << r.out;
  EXPECT_EQ(r.out.rfind("ledger_intact,series,rule,scope,basis,seq,time,share", 0), 0u) << r.out;

  const auto html = h.dir.file("report.html");
  r = h.report("-o " + html);  // the format follows the extension
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  const auto page = read(html);
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_NE(page.find("stroke-dasharray"), std::string::npos);
  EXPECT_NE(page.find("Ledger verified: intact, 3 records"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);

  // A window that starts after every record: an empty but valid report.
  r = h.report("--from 2999-01-01 --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(nlohmann::json::parse(r.out)["rules"].empty());
  r = h.report("--from 2000-01-01 --to 2999-01-01T00:00:00Z");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["evaluations"], 3) << "json is the default";
}

TEST(ReportCli, BadInputExitsTwoWithOneLine) {
  History h;
  make(h);
  struct Case {
    std::string flags, needle;
  };
  const Case cases[] = {
      {"--from yesterday", "--from 'yesterday'"},
      {"--to 2026-02-30", "--to '2026-02-30'"},
      {"--from 2026-11-02 --to 2026-11-01", "must be before"},
      {"--format pdf", "--format 'pdf'"},
      {"-o " + h.dir.file("no/such/dir/r.html"), "cannot open"},
  };
  for (const auto& c : cases) {
    const auto r = h.report(c.flags);
    EXPECT_EQ(r.exit_code, 2) << c.flags << "\n" << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.flags << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  auto r = run_command(kBin + " report --ledger " + h.dir.file("absent.db"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("absent.db"), std::string::npos) << r.err;
  r = run_command(kBin + " report --ledger " + h.policy);
  EXPECT_EQ(r.exit_code, 2) << "not a ledger: " << r.err;
  r = run_command(kBin + " report");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--ledger"), std::string::npos) << r.err;
}

TEST(ReportCli, TamperedLedgerIsReportedLoudly) {
  History h;
  make(h);
  // The violating check is rewritten to look compliant; the trigger is put back afterwards.
  testing::edit_ledger_behind_triggers(
      h.ledger, "UPDATE records SET payload = replace(payload, '\"compliant\":false', '\"compliant\":true') WHERE seq = 2");

  const auto html = h.dir.file("r.html");
  auto r = h.report("--format html -o " + html);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("is not intact: record 2"), std::string::npos) << r.err;
  EXPECT_NE(read(html).find("LEDGER NOT INTACT: record 2"), std::string::npos) << "the report itself says so";
  r = h.report("--format csv");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("\r\nfalse,rule,"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace mixserve

// End-to-end: `mixserve policy check` on fleets whose nodes list their devices as discovered
// (inventory JSON files next to the fleet file, as a centre ships them), unknown devices with and
// without --allow-unknown-chips, bad inventories (exit 2), and this machine's own inventory
// captured with `mixserve devices --inventory --json`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace mixserve {
namespace {

using testing::run_command;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;
const std::filesystem::path kInventories = std::filesystem::path(MIXSERVE_TEST_DATA_DIR) / "inventory";

// A fleet repository: fleet.yaml, policy.yaml and inventory/<node>.json copied from the fixtures.
struct Repo {
  TempDir dir;
  Repo() { std::filesystem::create_directories(dir.path() / "inventory"); }
  void inventory(const std::string& node, const std::string& fixture) const {
    std::filesystem::copy_file(kInventories / fixture, dir.path() / "inventory" / (node + ".json"));
  }
  void write(const std::string& name, const std::string& text) const { std::ofstream(dir.file(name)) << text; }
  // Runs from / so that relative inventory paths must be resolved against the fleet file.
  testing::CommandResult check(const std::string& extra = "") const {
    return run_command("cd / && " + kBin + " policy check --fleet " + dir.file("fleet.yaml") + " --policy " +
                       dir.file("policy.yaml") + " " + extra);
  }
};

const char* kPolicy = R"(rules:
  - {name: national-50, min_domestic_share: 0.5, strict: true}
  - {name: at-least-half, min_domestic_share: 0.5}
)";

const nlohmann::json* chip(const nlohmann::json& rule, const std::string& id) {
  for (const auto& c : rule["chips"]) {
    if (c["chip"] == id) return &c;
  }
  return nullptr;
}

TEST(FleetDiscoveredCli, PolicyCheckCountsDiscoveredDevices) {
  Repo repo;
  repo.inventory("sh-a01", "inventory_kunpeng_910b_x8.json");
  repo.inventory("sh-n01", "inventory_xeon_h20x8.json");
  repo.write("policy.yaml", kPolicy);
  repo.write("fleet.yaml", R"(nodes:
  - name: sh-a01
    devices:
      - discovered: inventory/sh-a01.json
  - name: sh-n01
    devices:
      - discovered: inventory/sh-n01.json
      - {chip: huawei-ascend-910b, count: 1}
)");
  const auto r = repo.check("--json");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto& strict = j["rules"][0];
  EXPECT_EQ(strict["outcome"], "compliant");
  EXPECT_DOUBLE_EQ(strict["numerator"].get<double>(), 9);
  EXPECT_DOUBLE_EQ(strict["denominator"].get<double>(), 17) << "host CPUs never count";
  ASSERT_NE(chip(strict, "nvidia-h20"), nullptr) << strict.dump();
  EXPECT_EQ((*chip(strict, "nvidia-h20"))["devices"], 8);
  EXPECT_EQ((*chip(strict, "huawei-ascend-910b"))["devices"], 9);
  EXPECT_EQ(chip(strict, "cpu-x86"), nullptr);

  // Without the extra written 910B the strict rule fails: 8 of 16.
  repo.write("fleet.yaml", "nodes:\n  - {name: sh-a01, devices: [{discovered: inventory/sh-a01.json}]}\n"
                           "  - {name: sh-n01, devices: [{discovered: inventory/sh-n01.json}]}\n");
  const auto failed = repo.check();
  EXPECT_EQ(failed.exit_code, 1) << failed.out << failed.err;
  EXPECT_NE(failed.out.find("domestic devices 8 of 16 (50.0%)"), std::string::npos) << failed.out;
}

TEST(FleetDiscoveredCli, UnknownDevicesNeedTheFlagAndBadInventoriesExitTwo) {
  Repo repo;
  repo.inventory("gz-07", "inventory_hygon_ascend910_unknown.json");
  repo.inventory("bad", "inventory_truncated.json");
  repo.write("policy.yaml", kPolicy);
  repo.write("fleet.yaml", "nodes:\n  - {name: sh-a01, devices: [{chip: huawei-ascend-910b, count: 8}]}\n"
                           "  - {name: gz-07, devices: [{discovered: inventory/gz-07.json}]}\n");
  const auto refused = repo.check();
  EXPECT_EQ(refused.exit_code, 2) << refused.out << refused.err;
  for (const char* part : {"fleet.yaml:3:", "node 'gz-07' device #1", "key 'discovered'", "'Ascend910'",
                           "--allow-unknown-chips"}) {
    EXPECT_NE(refused.err.find(part), std::string::npos) << part << " missing from: " << refused.err;
  }
  // 8 domestic of 12 holds "more than half": the 4 unknown devices count as foreign.
  const auto allowed = repo.check("--json --allow-unknown-chips");
  ASSERT_EQ(allowed.exit_code, 0) << allowed.out << allowed.err;
  const auto j = nlohmann::json::parse(allowed.out);
  const auto* unknown = chip(j["rules"][0], "unknown:huawei:ascend910");
  ASSERT_NE(unknown, nullptr) << j["rules"][0].dump();
  EXPECT_EQ((*unknown)["known"], false);
  EXPECT_EQ((*unknown)["domestic"], false);
  EXPECT_EQ((*unknown)["devices"], 4);
  EXPECT_DOUBLE_EQ(j["rules"][0]["numerator"].get<double>(), 8);
  EXPECT_DOUBLE_EQ(j["rules"][0]["denominator"].get<double>(), 12);

  for (const std::string entry : {"inventory/bad.json", "inventory/missing.json"}) {
    repo.write("fleet.yaml", "nodes:\n  - {name: n, devices: [{discovered: " + entry + "}]}\n");
    const auto r = repo.check();
    EXPECT_EQ(r.exit_code, 2) << entry << ": " << r.out << r.err;
    EXPECT_NE(r.err.find("node 'n' device #1: key 'discovered': inventory '" + entry + "'"), std::string::npos)
        << r.err;
  }
}

// This machine's inventory, captured as a centre would, feeds the check as it is.
TEST(FleetDiscoveredCli, ThisMachinesInventoryRoundTrips) {
  Repo repo;
  const auto inv = run_command(kBin + " devices --inventory --json");
  ASSERT_EQ(inv.exit_code, 0) << inv.err;
  repo.write("inventory/me.json", inv.out);
  const auto devices = nlohmann::json::parse(inv.out);
  ASSERT_TRUE(devices.is_array());
  bool failed_probe = false;
  int accelerators = 0;
  for (const auto& d : devices) {
    if (d["source"] == "/proc/cpuinfo") continue;
    if (d["index"].get<int>() < 0) failed_probe = true;
    ++accelerators;
  }
  repo.write("policy.yaml", kPolicy);
  repo.write("fleet.yaml", "nodes:\n  - {name: me, devices: [{discovered: inventory/me.json}]}\n"
                           "  - {name: other, devices: [{chip: huawei-ascend-910b, count: 1}]}\n");
  const auto r = repo.check("--json --allow-unknown-chips");
  if (failed_probe) {
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find("probe, not a device"), std::string::npos) << r.err;
    return;
  }
  ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 1) << r.out << r.err;
  const auto j = nlohmann::json::parse(r.out);
  // Every accelerator of this machine counts (as domestic, foreign or unknown), the CPU does not.
  EXPECT_DOUBLE_EQ(j["rules"][1]["denominator"].get<double>(), 1 + accelerators) << r.out;
}

}  // namespace
}  // namespace mixserve

// Discovered devices in fleet.yaml: the inventory JSON reader against the printer, fleet nodes whose
// devices come from inventory files (tests/data/inventory/inventory_*.json), inline lists and the
// local probe; unknown devices, CPUs, failed probes, mixing with chip x count entries, and errors
// that name the fleet file, line, node and key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"
#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "fleet/fleet_discover.h"
#include "fleet/inventory.h"
#include "fleet/inventory_json.h"
#include "policy/evaluate.h"
#include "policy/policy.h"
#include "support/test_support.h"
#include "support/error_expect.h"

namespace mixserve::fleet {
namespace {

const std::filesystem::path kDir = std::filesystem::path(MIXSERVE_TEST_DATA_DIR) / "inventory";

std::string fixture(const std::string& name) {
  std::ifstream in(kDir / name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << (kDir / name);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

using ::mixserve::testing::error_of;
using ::mixserve::testing::expect_parts;

// Fleet text parsed with inventory paths relative to tests/data/inventory.
Fleet parse(const std::string& text, FleetOptions options = {}) {
  options.base_dir = kDir.string();
  return parse_fleet(text, "fleet.yaml", Catalogue::builtin(), options);
}

std::string fleet_error(const std::string& text, FleetOptions options = {}) {
  return error_of([&] { parse(text, options); });
}

std::vector<std::pair<std::string, std::int64_t>> groups(const Node& node) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& g : node.devices) out.emplace_back(g.chip, g.count);
  return out;
}

using Groups = std::vector<std::pair<std::string, std::int64_t>>;

// A machine described by recorded tool output, as discover_devices() sees it.
DiscoveryEnv fixture_env(const std::string& cpuinfo, std::map<std::string, std::string> tools) {
  DiscoveryEnv env;
  env.use_nvml = false;
  env.run_tool = [tools](const std::vector<std::string>& argv) -> std::optional<ToolOutput> {
    const auto it = tools.find(argv[0]);
    if (it == tools.end()) return std::nullopt;
    const bool failed = it->second.find("failed") != std::string::npos;
    return ToolOutput{failed ? 9 : 0, fixture(it->second)};
  };
  env.read_file = [cpuinfo](const std::string& path) -> std::optional<std::string> {
    if (path == "/proc/cpuinfo") return fixture(cpuinfo);
    if (path == "/proc/meminfo") return fixture("meminfo.txt");
    return std::nullopt;
  };
  return env;
}

TEST(InventoryJson, ReadsBackWhatThePrinterWrites) {
  const auto catalogue = Catalogue::builtin();
  const auto env = fixture_env("cpuinfo_xeon_2s.txt", {{"nvidia-smi", "nvidia_smi_mixed.csv"},
                                                       {"npu-smi", "npu_smi_910b_x8.txt"},
                                                       {"cnmon", "cnmon_driver_error.txt"}});
  const auto devices = discover_devices(catalogue, env);
  ASSERT_GE(devices.size(), 10u);
  const auto back = parse_inventory_text(inventory_json(devices, catalogue, "CN"), "inv.json");
  ASSERT_EQ(back.size(), devices.size());
  for (std::size_t i = 0; i < devices.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(back[i].source, devices[i].source);
    EXPECT_EQ(back[i].vendor, devices[i].vendor);
    EXPECT_EQ(back[i].name, devices[i].name);
    EXPECT_EQ(back[i].index, devices[i].index);
    EXPECT_EQ(back[i].uuid_or_bus, devices[i].uuid_or_bus);
    EXPECT_EQ(back[i].memory_bytes, devices[i].memory_bytes);
    EXPECT_EQ(back[i].chip_id, devices[i].chip_id);
    EXPECT_EQ(back[i].status, devices[i].status);
    EXPECT_EQ(back[i].detail, devices[i].detail);
  }
  EXPECT_EQ(back.back().index, -1) << "the failed cnmon probe survives the round trip";
}

// The inventory_*.json fixtures are exactly what `devices --inventory --json` prints for them.
TEST(InventoryJson, FixturesAreThePrintersOutput) {
  const auto catalogue = Catalogue::builtin();
  for (const char* name : {"inventory_xeon_h20x8.json", "inventory_kunpeng_910b_x8.json",
                           "inventory_hygon_ascend910_unknown.json", "inventory_nvidia_failed.json",
                           "inventory_riscv_mlu370.json"}) {
    SCOPED_TRACE(name);
    const auto text = fixture(name);
    const auto devices = load_inventory((kDir / name).string());
    EXPECT_FALSE(devices.empty());
    EXPECT_EQ(inventory_json(devices, catalogue, "CN") + "\n", text);
  }
}

TEST(InventoryJson, CompactJsonAndYamlListsAreRead) {
  const auto devices = parse_inventory_text(
      R"([{"source":"nvml","vendor":"NVIDIA","name":"NVIDIA H20","index":0,"chip_id":null,"status":"ok"}])", "c.json");
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].name, "NVIDIA H20");
  EXPECT_FALSE(devices[0].chip_id.has_value());
  EXPECT_EQ(devices[0].memory_bytes, 0u);
  EXPECT_TRUE(parse_inventory_text("[]", "empty.json").empty());
}

TEST(InventoryJson, BadInventoriesNameFileLineDeviceAndKey) {
  auto bad = [](const std::string& text) { return error_of([&] { parse_inventory_text(text, "n.json"); }); };
  expect_parts(error_of([] { load_inventory((kDir / "inventory_truncated.json").string()); }),
               {"inventory_truncated.json:", "not valid JSON"});
  expect_parts(error_of([] { load_inventory((kDir / "inventory_not_a_list.json").string()); }),
               {"inventory_not_a_list.json", "expected a list of devices"});
  expect_parts(error_of([] { load_inventory((kDir / "inventory_wrong_types.json").string()); }),
               {"inventory_wrong_types.json:18:", "inventory device #2", "key 'index'", "'one'"});
  const std::string ok = R"("source": "nvml", "vendor": "NVIDIA", "name": "NVIDIA H20", "status": "ok")";
  expect_parts(bad("[{" + ok + "}]"), {"n.json:1:", "device #1", "key 'index'", "required"});
  expect_parts(bad("[{" + ok + ", \"index\": -2}]"), {"key 'index'", "out of range"});
  expect_parts(bad("[{" + ok + ", \"index\": 1.5}]"), {"key 'index'", "whole number"});
  expect_parts(bad("[{" + ok + ", \"index\": 0, \"memory_bytes\": -5}]"), {"key 'memory_bytes'", "negative"});
  expect_parts(bad("[{" + ok + ", \"index\": 0, \"memory_bytes\": \"lots\"}]"), {"key 'memory_bytes'", "'lots'"});
  expect_parts(bad("[{" + ok + ", \"index\": 0, \"chip_id\": {\"id\": 1}}]"), {"key 'chip_id'", "catalogue id or null"});
  expect_parts(bad("[{\"vendor\": \"x\", \"name\": \"y\", \"index\": 0, \"status\": \"ok\"}]"),
               {"key 'source'", "required"});
  expect_parts(bad(R"([{"source": "nvml", "vendor": "NVIDIA", "name": [1], "index": 0, "status": "ok"}])"),
               {"key 'name'", "expected a string"});
  expect_parts(bad("[1, 2]"), {"device #1", "expected an object"});
  expect_parts(bad(""), {"expected a list of devices"});
  expect_parts(bad("\x01\x02\xff garbage"), {"expected a list of devices"});
}

TEST(UnknownDeviceId, StableSlugOfVendorAndName) {
  DiscoveredDevice d;
  d.vendor = "Huawei";
  d.name = "Ascend910";
  EXPECT_EQ(unknown_device_id(d), "unknown:huawei:ascend910");
  d.vendor = "Moore Threads";
  d.name = "  MTT S4000 (48GB) ";
  EXPECT_EQ(unknown_device_id(d), "unknown:moore-threads:mtt-s4000-48gb");
  d.vendor = "";
  d.name = "";
  EXPECT_EQ(unknown_device_id(d), "unknown:unknown:unnamed");
}

TEST(FleetDiscovered, MappedDevicesBecomeChipCountGroups) {
  const auto f = parse(R"(nodes:
  - name: sh-n01
    devices:
      - discovered: inventory_xeon_h20x8.json
  - name: sh-a01
    devices:
      - discovered: inventory_kunpeng_910b_x8.json
)");
  ASSERT_EQ(f.nodes.size(), 2u);
  EXPECT_EQ(groups(f.nodes[0]), (Groups{{"cpu-x86", 1}, {"nvidia-h20", 8}}));
  // One of the eight 910B reports health Warning: still installed, still counted.
  EXPECT_EQ(groups(f.nodes[1]), (Groups{{"cpu-arm", 1}, {"huawei-ascend-910b", 8}}));
  EXPECT_TRUE(f.unknown_chips.empty());
}

TEST(FleetDiscovered, PathsAreRelativeToTheFleetFile) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / "inv");
  std::filesystem::copy_file(kDir / "inventory_xeon_h20x8.json", dir.path() / "inv" / "n01.json");
  std::ofstream(dir.file("fleet.yaml")) << "nodes:\n  - {name: n01, devices: [{discovered: inv/n01.json}]}\n";
  const auto f = load_fleet(dir.file("fleet.yaml"), Catalogue::builtin());
  EXPECT_EQ(groups(f.nodes[0]), (Groups{{"cpu-x86", 1}, {"nvidia-h20", 8}}));
  // An absolute path is taken as it is.
  std::ofstream(dir.file("abs.yaml")) << "nodes:\n  - {name: n01, devices: [{discovered: "
                                      << (dir.path() / "inv" / "n01.json").string() << "}]}\n";
  EXPECT_EQ(groups(load_fleet(dir.file("abs.yaml"), Catalogue::builtin()).nodes[0]),
            (Groups{{"cpu-x86", 1}, {"nvidia-h20", 8}}));
}

TEST(FleetDiscovered, MixesWithChipCountEntries) {
  const auto f = parse(R"(nodes:
  - name: a
    pool: inference
    state: drained
    devices:
      - {chip: huawei-ascend-910b, count: 2}
      - discovered: inventory_riscv_mlu370.json
      - {chip: nvidia-h20, count: 1}
)");
  // The RISC-V host CPU is not in the catalogue: left out (CPUs never count); the MLU370-X8 and -X4
  // are one chip id.
  EXPECT_EQ(groups(f.nodes[0]), (Groups{{"huawei-ascend-910b", 2}, {"cambricon-mlu370", 4}, {"nvidia-h20", 1}}));
  EXPECT_EQ(f.nodes[0].pool, "inference");
  EXPECT_EQ(f.nodes[0].state, NodeState::kDrained);
}

TEST(FleetDiscovered, UnknownDevicesNeedTheFlagAndAreNeverDropped) {
  const std::string text = "nodes:\n  - name: gz-07\n    devices:\n      - discovered: "
                           "inventory_hygon_ascend910_unknown.json\n";
  expect_parts(fleet_error(text), {"fleet.yaml:4:", "node 'gz-07' device #1", "key 'discovered'",
                                   "inventory 'inventory_hygon_ascend910_unknown.json' device #2",
                                   "'Ascend910' (Huawei, npu-smi index 0)", "not in the chip catalogue",
                                   "--allow-unknown-chips", "'unknown:huawei:ascend910'"});
  FleetOptions allow;
  allow.allow_unknown_chips = true;
  const auto f = parse(text, allow);
  EXPECT_EQ(groups(f.nodes[0]), (Groups{{"cpu-x86", 1}, {"unknown:huawei:ascend910", 4}}));
  EXPECT_EQ(f.unknown_chips, std::vector<std::string>{"unknown:huawei:ascend910"});
}

TEST(FleetDiscovered, TheFleetsCatalogueDecidesUnknownIds) {
  // An override teaching the catalogue that this site's "Ascend910" chips are 910C maps them.
  auto catalogue = Catalogue::builtin();
  catalogue.apply_overrides_text("chips:\n  - {id: huawei-ascend-910c, match: [\"Ascend910\"]}\n", "o.yaml");
  FleetOptions options;
  options.base_dir = kDir.string();
  const auto f = parse_fleet("nodes: [{name: a, devices: [{discovered: inventory_hygon_ascend910_unknown.json}]}]",
                             "fleet.yaml", catalogue, options);
  EXPECT_EQ(groups(f.nodes[0]), (Groups{{"cpu-x86", 1}, {"huawei-ascend-910c", 4}}));
}

TEST(FleetDiscovered, RecordedChipIdIsKeptButCannotTurnAGpuIntoACpu) {
  const auto f = parse(R"(nodes:
  - name: a
    devices:
      - discovered:
          - {source: npu-smi, vendor: Huawei, name: Ascend910, index: 0, chip_id: huawei-ascend-910c, status: ok}
          - {source: nvml, vendor: NVIDIA, name: NVIDIA H20, index: 0, chip_id: cpu-x86, status: ok}
          - {source: nvml, vendor: NVIDIA, name: NVIDIA H20, index: 1, chip_id: no-such-id, status: ok}
)");
  EXPECT_EQ(groups(f.nodes[0]), (Groups{{"huawei-ascend-910c", 1}, {"nvidia-h20", 2}}));
}

TEST(FleetDiscovered, CpusAreKeptButNeverCount) {
  const auto f = parse("nodes:\n  - {name: a, devices: [{discovered: inventory_kunpeng_910b_x8.json}]}\n"
                       "  - {name: b, devices: [{discovered: inventory_xeon_h20x8.json}]}\n");
  const auto pol = policy::parse_policy("rules:\n  - {name: half, strict: true}\n", "p.yaml");
  const auto eval = policy::evaluate(pol, f, Catalogue::builtin(), nullptr);
  ASSERT_EQ(eval.results.size(), 1u);
  EXPECT_DOUBLE_EQ(eval.results[0].numerator, 8);
  EXPECT_DOUBLE_EQ(eval.results[0].denominator, 16) << "the two host CPUs are not counted";
  EXPECT_EQ(eval.results[0].outcome, policy::Outcome::kViolation);
}

TEST(FleetDiscovered, UnknownDevicesCountAsForeign) {
  FleetOptions allow;
  allow.allow_unknown_chips = true;
  const auto f = parse("nodes:\n  - {name: a, devices: [{discovered: inventory_kunpeng_910b_x8.json}]}\n"
                       "  - {name: b, devices: [{discovered: inventory_hygon_ascend910_unknown.json}]}\n",
                       allow);
  const auto pol = policy::parse_policy("rules:\n  - {name: two-thirds, min_domestic_share: 0.67}\n", "p.yaml");
  const auto eval = policy::evaluate(pol, f, Catalogue::builtin(), nullptr);
  EXPECT_DOUBLE_EQ(eval.results[0].numerator, 8);
  EXPECT_DOUBLE_EQ(eval.results[0].denominator, 12);
  EXPECT_EQ(eval.results[0].outcome, policy::Outcome::kViolation);
  EXPECT_NE(eval.results[0].explanation.find("unknown:huawei:ascend910"), std::string::npos)
      << eval.results[0].explanation;
}

TEST(FleetDiscovered, FailedProbeIsAnErrorButAFailedCpuProbeIsNot) {
  expect_parts(fleet_error("nodes:\n  - {name: a, devices: [{discovered: inventory_nvidia_failed.json}]}\n"),
               {"fleet.yaml:2:", "node 'a' device #1", "key 'discovered'", "device #2",
                "is a failed nvidia-smi probe, not a device ('nvidia-smi: NVIDIA-SMI has failed", "NVIDIA devices are not known"});
  const auto f = parse(R"(nodes:
  - name: a
    devices:
      - discovered:
          - {source: /proc/cpuinfo, vendor: "", name: "", index: -1, chip_id: null, status: "no processor entries"}
          - {source: hy-smi, vendor: Hygon, name: K100_AI, index: 0, chip_id: hygon-k100, status: ok}
)");
  EXPECT_EQ(groups(f.nodes[0]), (Groups{{"hygon-k100", 1}}));
}

TEST(FleetDiscovered, LocalProbesThisMachineOnce) {
  FleetOptions options;
  int probes = 0;
  options.discover_local = [&](const Catalogue& catalogue) {
    ++probes;
    return discover_devices(catalogue, fixture_env("cpuinfo_hygon_c86.txt", {{"hy-smi", "hy_smi_k100_product_mem.txt"}}));
  };
  const auto f = parse("nodes:\n  - {name: me, devices: [{discovered: local}, {chip: nvidia-h20, count: 1}]}\n", options);
  EXPECT_EQ(probes, 1);
  ASSERT_EQ(f.nodes[0].devices.size(), 3u);
  EXPECT_EQ(f.nodes[0].devices[0].chip, "cpu-x86");
  EXPECT_EQ(f.nodes[0].devices[1].chip, "hygon-k100");
  EXPECT_EQ(f.nodes[0].devices[2].chip, "nvidia-h20");
  expect_parts(fleet_error("nodes:\n  - {name: a, devices: [{discovered: local}]}\n"
                           "  - {name: b, devices: [{discovered: local}]}\n",
                           options),
               {"fleet.yaml:3:", "node 'b' device #1", "key 'discovered'", "already used by node 'a'"});
}

TEST(FleetDiscovered, ErrorsNameFileLineNodeAndKey) {
  expect_parts(fleet_error("nodes:\n  - {name: a, devices: [{discovered: nope/missing.json}]}\n"),
               {"fleet.yaml:2:", "node 'a' device #1", "key 'discovered'", "inventory 'nope/missing.json'",
                "cannot read file"});
  expect_parts(fleet_error("nodes:\n  - name: a\n    devices:\n      - discovered: inventory_truncated.json\n"),
               {"fleet.yaml:4:", "node 'a' device #1", "key 'discovered'", "not valid JSON"});
  expect_parts(fleet_error("nodes:\n  - {name: a, devices: [{chip: nvidia-h20, count: 1}, "
                           "{discovered: inventory_wrong_types.json}]}\n"),
               {"node 'a' device #2", "key 'discovered'", "inventory_wrong_types.json:18:", "key 'index'"});
  expect_parts(fleet_error("nodes:\n  - {name: a, devices: [{discovered: inventory_not_a_list.json}]}\n"),
               {"node 'a' device #1", "expected a list of devices"});
  expect_parts(fleet_error("nodes:\n  - {name: a, devices: [{discovered: {path: x.json}}]}\n"),
               {"node 'a' device #1", "key 'discovered'", "expected the path of an inventory JSON file"});
  expect_parts(fleet_error("nodes:\n  - {name: a, devices: [{discovered: }]}\n"),
               {"node 'a' device #1", "key 'discovered'", "expected the path"});
  expect_parts(fleet_error("nodes:\n  - {name: a, devices: [{discovered: inventory_xeon_h20x8.json, count: 8}]}\n"),
               {"node 'a' device #1", "key 'discovered'", "either chip and count or discovered"});
  expect_parts(fleet_error("nodes:\n  - {name: a, devices: [{discover: local}]}\n"),
               {"node 'a' device #1", "key 'discover'", "unknown key"});
  // One machine's inventory listed for two nodes, or twice for one node, would count its devices twice.
  expect_parts(fleet_error("nodes:\n  - {name: a, devices: [{discovered: inventory_xeon_h20x8.json}]}\n"
                           "  - {name: b, devices: [{discovered: ./inventory_xeon_h20x8.json}]}\n"),
               {"fleet.yaml:3:", "node 'b' device #1", "already listed for node 'a'"});
  expect_parts(fleet_error(R"(nodes:
  - name: a
    devices:
      - discovered: [{source: nvml, vendor: NVIDIA, name: NVIDIA H20, index: 0, uuid_or_bus: GPU-1, status: ok}]
      - discovered: [{source: nvidia-smi, vendor: NVIDIA, name: NVIDIA H20, index: 0, uuid_or_bus: GPU-1, status: ok}]
)"),
               {"fleet.yaml:5:", "node 'a' device #2", "'GPU-1' of a device already listed on this node"});
  // Inline lists report the line inside the fleet file.
  expect_parts(fleet_error(R"(nodes:
  - name: a
    devices:
      - discovered:
          - {source: nvml, vendor: NVIDIA, name: NVIDIA H20, index: 0, status: ok}
          - {source: nvml, vendor: NVIDIA, name: NVIDIA H20, index: x, status: ok}
)"),
               {"node 'a' device #1", "key 'discovered'", "inline inventory", "fleet.yaml:6:", "device #2",
                "key 'index'"});
}

}  // namespace
}  // namespace mixserve::fleet

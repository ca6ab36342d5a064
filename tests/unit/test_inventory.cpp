// Device inventory: vendor-tool parsers on recorded and hand-written outputs (tests/data/inventory),
// error/empty/garbage outputs, and the whole discovery path with an injected tool runner.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "fleet/catalogue.h"
#include "fleet/inventory.h"

namespace mixserve::fleet {
namespace {

constexpr uint64_t kMiB = 1024ull * 1024;

std::string fixture(const std::string& name) {
  const auto path = std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "inventory" / name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A small catalogue independent of data/chips.yaml: (id, vendor, country, stack, match patterns).
Catalogue test_catalogue() {
  struct Entry {
    const char* id;
    const char* vendor;
    const char* country;
    const char* stack;
    const char* match;
  };
  const Entry entries[] = {
      {"nvidia-h20", "NVIDIA", "US", "cuda", "[\"H20\"]"},
      {"nvidia-h100", "NVIDIA", "US", "cuda", "[\"H100\"]"},
      {"huawei-ascend-910b", "Huawei", "CN", "cann", "[\"910B*\"]"},
      {"cambricon-mlu370", "Cambricon", "CN", "bang", "[\"MLU370*\"]"},
      {"hygon-k100", "Hygon", "CN", "dtk", "[\"K100*\"]"},
      {"cpu-x86", "Generic", "US", "cpu", "[\"Xeon\", \"EPYC\"]"},
      {"cpu-arm", "Generic", "GB", "cpu", "[\"Neoverse\"]"},
  };
  std::string yaml = "version: 1\nchips:\n";
  for (const auto& e : entries) {
    yaml += std::string("  - id: ") + e.id + "\n    vendor: " + e.vendor + "\n    model: m\n    country: " +
            e.country + "\n    stack: " + e.stack + "\n    memory_type: HBM\n    match: " + e.match + "\n";
    for (const char* key : {"memory_gib", "memory_bandwidth_gbs", "fp16_tflops", "bf16_tflops", "int8_tops", "tdp_w"}) {
      yaml += std::string("    ") + key + ": {value: 1, source: test}\n";
    }
  }
  return Catalogue::parse(yaml, "<test catalogue>");
}

TEST(InventoryNvidia, ParsesQueryCsv) {
  const auto r = parse_nvidia_smi_csv(fixture("nvidia_smi_h20x8.csv"));
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.devices.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    const auto& d = r.devices[i];
    EXPECT_EQ(d.index, i);
    EXPECT_EQ(d.name, "NVIDIA H20");
    EXPECT_EQ(d.vendor, "NVIDIA");
    EXPECT_EQ(d.source, "nvidia-smi");
    EXPECT_EQ(d.memory_bytes, 97871 * kMiB);
    EXPECT_EQ(d.uuid_or_bus.rfind("GPU-", 0), 0u);
    EXPECT_EQ(d.status, "ok");
  }
  EXPECT_EQ(r.devices[7].uuid_or_bus, "GPU-62c9d3a0-e5f8-41b7-9a0d-d3e6b2c7f148");
}

TEST(InventoryNvidia, MissingFieldsAndOddNames) {
  const auto r = parse_nvidia_smi_csv(fixture("nvidia_smi_mixed.csv"));
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.devices.size(), 4u);
  EXPECT_EQ(r.devices[0].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(r.devices[1].memory_bytes, 24564 * kMiB);
  EXPECT_EQ(r.devices[2].uuid_or_bus, "00000000:B3:00.0");  // UUID [N/A]: the bus id identifies it
  EXPECT_EQ(r.devices[3].memory_bytes, 0u);
  EXPECT_EQ(r.devices[3].status, "memory size not reported");
  // A name with a comma spreads over fields; the last three are still uuid, memory, bus.
  const auto comma = parse_nvidia_smi_csv("0, Weird, Name, GPU-1, 1024, 00000000:01:00.0\n");
  ASSERT_TRUE(comma.error.empty()) << comma.error;
  EXPECT_EQ(comma.devices[0].name, "Weird,Name");
  EXPECT_EQ(comma.devices[0].memory_bytes, 1024 * kMiB);
}

TEST(InventoryNvidia, ErrorsAreReportedNotThrown) {
  const auto failed = parse_nvidia_smi_csv(fixture("nvidia_smi_driver_failed.txt"));
  EXPECT_TRUE(failed.devices.empty());
  EXPECT_NE(failed.error.find("couldn't communicate with the NVIDIA driver"), std::string::npos) << failed.error;
  const auto none = parse_nvidia_smi_csv(fixture("nvidia_smi_no_devices.txt"));
  EXPECT_TRUE(none.devices.empty());
  EXPECT_TRUE(none.error.empty()) << none.error;
  EXPECT_FALSE(parse_nvidia_smi_csv(fixture("empty.txt")).error.empty());
  EXPECT_FALSE(parse_nvidia_smi_csv(fixture("garbage.bin")).error.empty());
  EXPECT_NE(parse_nvidia_smi_csv("x, H20, GPU-1, 1, b\n").error.find("GPU index"), std::string::npos);
  EXPECT_NE(parse_nvidia_smi_csv("0, H20, GPU-1, lots, b\n").error.find("memory.total"), std::string::npos);
  EXPECT_NE(parse_nvidia_smi_csv("0, H20, GPU-1, 99999999999999999999, b\n").error.find("memory.total"),
            std::string::npos);
  EXPECT_NE(parse_nvidia_smi_csv("0, H20\n").error.find("expected 5"), std::string::npos);
}

TEST(InventoryAscend, Parses910BTable) {
  const auto r = parse_npu_smi_info(fixture("npu_smi_910b_x8.txt"));
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.devices.size(), 8u);  // the process section adds nothing
  for (const auto& d : r.devices) {
    EXPECT_EQ(d.name, "910B3");
    EXPECT_EQ(d.vendor, "Huawei");
    EXPECT_EQ(d.memory_bytes, 65536 * kMiB);
  }
  EXPECT_EQ(r.devices[0].uuid_or_bus, "0000:C1:00.0");
  EXPECT_EQ(r.devices[5].index, 5);  // no Phy-ID column: the NPU id
  EXPECT_EQ(r.devices[3].status, "health Warning");
  EXPECT_EQ(r.devices[2].status, "ok");
}

TEST(InventoryAscend, TwoChipsPerNpuAndPhyIds) {
  const auto r = parse_npu_smi_info(fixture("npu_smi_910c_phy.txt"));
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.devices.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(r.devices[i].index, i);  // Phy-ID
  EXPECT_EQ(r.devices[1].detail, "npu 0 chip 1");
  EXPECT_EQ(r.devices[3].uuid_or_bus, "0000:9B:00.0");
  EXPECT_EQ(r.devices[3].name, "Ascend910");
}

TEST(InventoryAscend, Parses310PMemoryColumn) {
  const auto r = parse_npu_smi_info(fixture("npu_smi_310p.txt"));
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.devices.size(), 2u);
  EXPECT_EQ(r.devices[0].name, "310P3");
  EXPECT_EQ(r.devices[0].memory_bytes, 21527 * kMiB);
  EXPECT_EQ(r.devices[1].index, 1);
}

TEST(InventoryAscend, ErrorEmptyGarbage) {
  const auto e = parse_npu_smi_info(fixture("npu_smi_dcmi_error.txt"));
  EXPECT_TRUE(e.devices.empty());
  EXPECT_NE(e.error.find("DrvMngGetConsoleLogLevel"), std::string::npos) << e.error;
  EXPECT_FALSE(parse_npu_smi_info(fixture("empty.txt")).error.empty());
  EXPECT_TRUE(parse_npu_smi_info(fixture("garbage.bin")).devices.empty());
  // A chip row with no NPU row before it.
  const auto orphan = parse_npu_smi_info("| NPU Name | Health | x |\n+====+\n| 0 0 | 0000:01:00.0 | 0 1 / 2 |\n");
  EXPECT_NE(orphan.error.find("without an NPU row"), std::string::npos) << orphan.error;
}

TEST(InventoryCambricon, ParsesSummaryTable) {
  const auto r = parse_cnmon(fixture("cnmon_mlu370_x4.txt"));
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.devices.size(), 4u);
  EXPECT_EQ(r.devices[0].name, "MLU370-X8");
  EXPECT_EQ(r.devices[3].name, "MLU370-X4");
  EXPECT_EQ(r.devices[2].index, 2);
  EXPECT_EQ(r.devices[2].uuid_or_bus, "0000:56:00.0");
  EXPECT_EQ(r.devices[2].memory_bytes, 23308 * kMiB);
  EXPECT_EQ(r.devices[0].detail, "firmware v1.1.4");
}

TEST(InventoryCambricon, ParsesInfoBlocks) {
  const auto r = parse_cnmon(fixture("cnmon_info_mlu590.txt"));
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.devices.size(), 2u);
  EXPECT_EQ(r.devices[1].name, "MLU590-M9");
  EXPECT_EQ(r.devices[1].index, 1);
  EXPECT_EQ(r.devices[0].memory_bytes, 81920 * kMiB);  // physical, not the 1 TiB virtual total
  EXPECT_EQ(r.devices[0].uuid_or_bus, "4A1B2C3D-5E6F-7081-92A3-B4C5D6E7F801");
}

TEST(InventoryCambricon, ErrorEmptyGarbage) {
  const auto e = parse_cnmon(fixture("cnmon_driver_error.txt"));
  EXPECT_TRUE(e.devices.empty());
  EXPECT_NE(e.error.find("Driver not loaded"), std::string::npos) << e.error;
  EXPECT_FALSE(parse_cnmon(fixture("empty.txt")).error.empty());
  EXPECT_TRUE(parse_cnmon(fixture("garbage.bin")).devices.empty());
}

TEST(InventoryHygon, ParsesProductAndMemoryLines) {
  const auto r = parse_hy_smi(fixture("hy_smi_k100_product_mem.txt"));
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.devices.size(), 2u);
  EXPECT_EQ(r.devices[0].name, "K100_AI");
  EXPECT_EQ(r.devices[1].memory_bytes, 68702699520ull);
  EXPECT_EQ(r.devices[1].status, "ok");
}

TEST(InventoryHygon, ParsesJsonAndSummaryTable) {
  const auto j = parse_hy_smi(fixture("hy_smi_json.txt"));
  ASSERT_TRUE(j.error.empty()) << j.error;
  ASSERT_EQ(j.devices.size(), 2u);
  EXPECT_EQ(j.devices[0].name, "Z100L");
  EXPECT_EQ(j.devices[0].memory_bytes, 34342961152ull);
  const auto t = parse_hy_smi(fixture("hy_smi_table.txt"));
  ASSERT_TRUE(t.error.empty()) << t.error;
  ASSERT_EQ(t.devices.size(), 4u);
  EXPECT_EQ(t.devices[3].index, 3);
  EXPECT_TRUE(t.devices[0].name.empty());
  EXPECT_NE(t.devices[0].status.find("model name not reported"), std::string::npos);
}

TEST(InventoryHygon, ErrorEmptyGarbage) {
  EXPECT_NE(parse_hy_smi(fixture("hy_smi_error.txt")).error.find("Driver not initialized"), std::string::npos);
  EXPECT_FALSE(parse_hy_smi(fixture("empty.txt")).error.empty());
  EXPECT_FALSE(parse_hy_smi("{\"card0\": [1, 2]}").error.empty());
  EXPECT_FALSE(parse_hy_smi("{not json").error.empty());
  EXPECT_TRUE(parse_hy_smi("DCU[99999999999999999999] : Card Series: K100\n").devices.empty());
}

TEST(InventoryCpu, DualSocketXeon) {
  const auto r = parse_cpuinfo(fixture("cpuinfo_xeon_2s.txt"));
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.devices.size(), 1u);
  const auto& d = r.devices[0];
  EXPECT_EQ(d.vendor, "Intel");
  EXPECT_EQ(d.name, "Intel(R) Xeon(R) Platinum 8480+");
  EXPECT_EQ(d.chip_id, "cpu-x86");
  EXPECT_EQ(d.detail, "2 sockets, 4 cores, 8 threads");
}

TEST(InventoryCpu, KunpengHygonRiscv) {
  const auto arm = parse_cpuinfo(fixture("cpuinfo_kunpeng920.txt"));
  ASSERT_EQ(arm.devices.size(), 1u);
  EXPECT_EQ(arm.devices[0].name, "HiSilicon Kunpeng-920");
  EXPECT_EQ(arm.devices[0].chip_id, "cpu-arm");
  EXPECT_EQ(arm.devices[0].detail, "1 socket, 4 cores, 4 threads");
  const auto hygon = parse_cpuinfo(fixture("cpuinfo_hygon_c86.txt"));
  ASSERT_EQ(hygon.devices.size(), 1u);
  EXPECT_EQ(hygon.devices[0].vendor, "Hygon");
  EXPECT_EQ(hygon.devices[0].chip_id, "cpu-x86");
  const auto riscv = parse_cpuinfo(fixture("cpuinfo_riscv.txt"));
  ASSERT_EQ(riscv.devices.size(), 1u);
  EXPECT_FALSE(riscv.devices[0].chip_id.has_value());
  EXPECT_EQ(riscv.devices[0].name, "rv64imafdc");
  EXPECT_NE(riscv.devices[0].status, "ok");
  EXPECT_FALSE(parse_cpuinfo(fixture("empty.txt")).error.empty());
  EXPECT_FALSE(parse_cpuinfo(fixture("garbage.bin")).error.empty());
  EXPECT_EQ(parse_meminfo_total(fixture("meminfo.txt")), 2113287168ull * 1024);
  EXPECT_EQ(parse_meminfo_total("MemTotal: lots kB\n"), 0u);
  EXPECT_EQ(parse_meminfo_total(""), 0u);
}

TEST(InventoryCpu, ThisMachinesCpuinfoParses) {
  std::ifstream in("/proc/cpuinfo");
  if (!in) GTEST_SKIP() << "/proc/cpuinfo not readable";
  std::ostringstream text;
  text << in.rdbuf();
  const auto r = parse_cpuinfo(text.str());
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_EQ(r.devices.size(), 1u);
  EXPECT_FALSE(r.devices[0].name.empty());
}

// Feeds fixtures through discover_devices as if the tools printed them.
TEST(InventoryDiscovery, FixturesThroughTheWholePath) {
  std::map<std::string, std::optional<ToolOutput>> tools = {
      {"nvidia-smi", ToolOutput{0, fixture("nvidia_smi_mixed.csv")}},
      {"npu-smi", ToolOutput{0, fixture("npu_smi_910b_x8.txt")}},
      {"cnmon", ToolOutput{127, fixture("cnmon_driver_error.txt")}},
      {"hy-smi", std::nullopt},  // not installed
  };
  std::vector<std::string> asked;
  DiscoveryEnv env;
  env.use_nvml = false;
  env.run_tool = [&](const std::vector<std::string>& argv) -> std::optional<ToolOutput> {
    asked.push_back(argv[0]);
    return tools.at(argv[0]);
  };
  env.read_file = [](const std::string& path) -> std::optional<std::string> {
    if (path == "/proc/cpuinfo") return fixture("cpuinfo_xeon_2s.txt");
    if (path == "/proc/meminfo") return fixture("meminfo.txt");
    return std::nullopt;
  };
  const auto catalogue = test_catalogue();
  const auto devices = discover_devices(catalogue, env);
  EXPECT_EQ(asked, (std::vector<std::string>{"nvidia-smi", "npu-smi", "cnmon", "hy-smi"}));
  // 1 CPU + 4 NVIDIA + 8 Ascend + 1 problem entry for the failing cnmon.
  ASSERT_EQ(devices.size(), 14u);
  EXPECT_EQ(devices[0].chip_id, "cpu-x86");
  EXPECT_EQ(devices[0].memory_bytes, 2113287168ull * 1024);
  EXPECT_EQ(devices[1].chip_id, "nvidia-h100");
  EXPECT_FALSE(devices[2].chip_id.has_value());  // RTX 4090 is not in the test catalogue: listed as unknown
  EXPECT_EQ(devices[2].name, "NVIDIA GeForce RTX 4090");
  EXPECT_FALSE(devices[4].chip_id.has_value());  // Tesla T4
  for (int i = 5; i < 13; ++i) {
    EXPECT_EQ(devices[i].chip_id, "huawei-ascend-910b");
    EXPECT_TRUE(catalogue.is_domestic(*devices[i].chip_id));
  }
  const auto& failed = devices[13];
  EXPECT_EQ(failed.source, "cnmon");
  EXPECT_EQ(failed.index, -1);
  EXPECT_NE(failed.status.find("Driver not loaded"), std::string::npos) << failed.status;
  EXPECT_FALSE(failed.chip_id.has_value());
}

// The shipped catalogue (data/chips.yaml) recognises every model in the recorded outputs it lists.
TEST(InventoryDiscovery, BuiltinCatalogueMapsTheFixtures) {
  const auto catalogue = Catalogue::builtin();
  auto first_id = [&](ParseResult r) {
    EXPECT_FALSE(r.devices.empty()) << r.error;
    assign_chip_ids(catalogue, r.devices);
    return r.devices.empty() ? std::nullopt : r.devices[0].chip_id;
  };
  EXPECT_EQ(first_id(parse_nvidia_smi_csv(fixture("nvidia_smi_h20x8.csv"))), "nvidia-h20");
  EXPECT_EQ(first_id(parse_npu_smi_info(fixture("npu_smi_910b_x8.txt"))), "huawei-ascend-910b");
  EXPECT_EQ(first_id(parse_npu_smi_info(fixture("npu_smi_310p.txt"))), "huawei-ascend-310p");
  EXPECT_EQ(first_id(parse_cnmon(fixture("cnmon_mlu370_x4.txt"))), "cambricon-mlu370");
  EXPECT_EQ(first_id(parse_cnmon(fixture("cnmon_info_mlu590.txt"))), "cambricon-mlu590");
  EXPECT_EQ(first_id(parse_hy_smi(fixture("hy_smi_k100_product_mem.txt"))), "hygon-k100");
  EXPECT_EQ(first_id(parse_cpuinfo(fixture("cpuinfo_xeon_2s.txt"))), "cpu-x86");
  EXPECT_EQ(first_id(parse_cpuinfo(fixture("cpuinfo_kunpeng920.txt"))), "cpu-arm");
  EXPECT_EQ(first_id(parse_cpuinfo(fixture("cpuinfo_hygon_c86.txt"))), "cpu-x86");
  // "Ascend910" alone does not say 910B or 910C: unknown, listed, never guessed.
  EXPECT_EQ(first_id(parse_npu_smi_info(fixture("npu_smi_910c_phy.txt"))), std::nullopt);
}

TEST(InventoryDiscovery, NothingInstalledGivesOnlyTheCpu) {
  DiscoveryEnv env;
  env.use_nvml = false;
  env.run_tool = [](const std::vector<std::string>&) -> std::optional<ToolOutput> { return std::nullopt; };
  env.read_file = [](const std::string& path) -> std::optional<std::string> {
    if (path == "/proc/cpuinfo") return fixture("cpuinfo_kunpeng920.txt");
    return std::nullopt;
  };
  const auto devices = discover_devices(test_catalogue(), env);
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].chip_id, "cpu-arm");
  EXPECT_EQ(devices[0].memory_bytes, 0u);
}

TEST(InventoryDiscovery, AcceleratorNamesNeverMapToCpuEntriesAndBack) {
  std::vector<DiscoveredDevice> devices(3);
  devices[0].source = "nvidia-smi";
  devices[0].vendor = "NVIDIA";
  devices[0].name = "Xeon Phi";  // would fit the cpu-x86 pattern
  devices[1].source = "/proc/cpuinfo";
  devices[1].vendor = "Hygon";
  devices[1].name = "Hygon K100 host";  // would fit hygon-k100
  devices[1].chip_id = "cpu-x86";
  devices[2].source = "hy-smi";
  devices[2].vendor = "Hygon";
  devices[2].name = "K100_AI";
  assign_chip_ids(test_catalogue(), devices);
  EXPECT_FALSE(devices[0].chip_id.has_value());
  EXPECT_EQ(devices[1].chip_id, "cpu-x86");
  EXPECT_EQ(devices[2].chip_id, "hygon-k100");
}

TEST(InventoryTools, RunsRealProcessesWithTimeout) {
  EXPECT_FALSE(run_tool_with_timeout({"mixserve-no-such-tool-xyz"}, 1000).has_value());
  const auto echo = run_tool_with_timeout({"sh", "-c", "echo out; echo err >&2; exit 3"}, 5000);
  ASSERT_TRUE(echo.has_value());
  EXPECT_EQ(echo->exit_code, 3);
  EXPECT_NE(echo->output.find("out"), std::string::npos);
  EXPECT_NE(echo->output.find("err"), std::string::npos);
  const auto slow = run_tool_with_timeout({"sleep", "10"}, 200);
  ASSERT_TRUE(slow.has_value());
  EXPECT_EQ(slow->exit_code, -1);
  EXPECT_NE(slow->output.find("timed out"), std::string::npos);
}

}  // namespace
}  // namespace mixserve::fleet

// Device inventory: discovers the local compute devices (CPU, NVIDIA, Huawei Ascend, Cambricon, Hygon)
// from /proc/cpuinfo, NVML and vendor command-line tools, and maps each to a chip catalogue id.
// Devices whose model the catalogue does not know are listed with chip_id = nullopt, never dropped.
// The parsers are pure functions over tool output so they can be tested on recorded samples
// (tests/data/inventory/); discovery takes an injectable tool runner for the same reason.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mixserve::fleet {

class Catalogue;

/// One device found on this machine.
struct DiscoveredDevice {
  std::string source;        ///< "nvml", "nvidia-smi", "npu-smi", "cnmon", "hy-smi" or "/proc/cpuinfo"
  std::string vendor;        ///< "NVIDIA", "Huawei", "Cambricon", "Hygon", or the CPU vendor
  std::string name;          ///< model name as the tool reports it, e.g. "NVIDIA H20", "910B3", "MLU370-X8"
  int index = 0;             ///< the tool's device index (CPU: 0)
  std::string uuid_or_bus;   ///< UUID or PCI bus id when the tool reports one; else empty
  uint64_t memory_bytes = 0; ///< device memory (CPU: system RAM); 0 when unknown
  std::optional<std::string> chip_id;  ///< catalogue id; nullopt = not in the catalogue (listed as unknown)
  std::string status = "ok"; ///< "ok", or what is wrong with the device or its report
  std::string detail;        ///< extra facts (CPU: "2 sockets, 64 cores, 128 threads"); may be empty
};

/// Result of parsing one tool's output: the devices found, or an error saying why none could be read.
struct ParseResult {
  std::vector<DiscoveredDevice> devices;  ///< chip_id left unset except for CPUs (cpu-x86 / cpu-arm)
  std::string error;                      ///< empty on success; else a one-line description
};

/// Parses `nvidia-smi --query-gpu=index,name,uuid,memory.total,pci.bus_id --format=csv,noheader,nounits`.
ParseResult parse_nvidia_smi_csv(std::string_view text);
/// Parses the table printed by Huawei `npu-smi info` (one device per chip).
ParseResult parse_npu_smi_info(std::string_view text);
/// Parses Cambricon `cnmon` (summary table) or `cnmon info` (per-card key: value blocks).
ParseResult parse_cnmon(std::string_view text);
/// Parses Hygon `hy-smi --showproductname --showmeminfo vram` (DCU[i] : key: value lines) or the
/// plain `hy-smi` summary table (indices only; the model is then unknown).
ParseResult parse_hy_smi(std::string_view text);
/// Parses /proc/cpuinfo into one CPU device (chip_id "cpu-x86" or "cpu-arm"; detail: sockets, cores).
ParseResult parse_cpuinfo(std::string_view text);
/// MemTotal from /proc/meminfo in bytes; 0 when absent or malformed.
uint64_t parse_meminfo_total(std::string_view text);

/// What running a tool produced.
struct ToolOutput {
  int exit_code = 0;    ///< process exit status; -1 when it was killed (e.g. timed out)
  std::string output;   ///< stdout followed by stderr
};

/// Runs argv[0] (looked up on PATH) with a timeout; nullopt when the tool is not installed.
using ToolRunner = std::function<std::optional<ToolOutput>(const std::vector<std::string>& argv)>;
/// Reads a whole file; nullopt when it cannot be read.
using FileReader = std::function<std::optional<std::string>(const std::string& path)>;

/// Where discovery gets its facts from; the defaults read the real machine.
struct DiscoveryEnv {
  ToolRunner run_tool;     ///< default: run_tool_with_timeout(argv, 10 s)
  FileReader read_file;    ///< default: reads the file system
  bool use_nvml = true;    ///< try libnvidia-ml.so.1 before nvidia-smi
};

/// The default environment (real tools, real files, NVML enabled).
DiscoveryEnv system_discovery_env();
/// Runs argv with stdout+stderr captured, killing it after `timeout_ms`; nullopt if not on PATH.
std::optional<ToolOutput> run_tool_with_timeout(const std::vector<std::string>& argv, int timeout_ms);

/// Reads NVIDIA GPUs through NVML loaded with dlopen; nullopt when the library is absent or fails to
/// initialise (the caller then falls back to nvidia-smi).
std::optional<std::vector<DiscoveredDevice>> discover_nvml();

/// Discovers every device: CPU, then NVIDIA (NVML, else nvidia-smi), Ascend, Cambricon, Hygon.
/// Missing tools are skipped (debug log). A tool that is installed but fails or prints something
/// unreadable adds one problem entry (index -1, empty name, status = the error) and a warning,
/// so the problem is visible in the listing.
std::vector<DiscoveredDevice> discover_devices(const Catalogue& catalogue,
                                               const DiscoveryEnv& env = system_discovery_env());

/// Fills chip_id from the catalogue (Catalogue::match on vendor and name); CPUs keep their generic
/// id when no specific entry matches; ids not in the catalogue become nullopt.
void assign_chip_ids(const Catalogue& catalogue, std::vector<DiscoveredDevice>& devices);

}  // namespace mixserve::fleet

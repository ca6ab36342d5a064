// NVIDIA GPUs: NVML loaded at run time (no NVIDIA headers or link-time dependency), and the CSV that
// `nvidia-smi --query-gpu=index,name,uuid,memory.total,pci.bus_id --format=csv,noheader,nounits` prints.
#include <dlfcn.h>

#include <cstring>
#include <memory>
#include <string>

#include "common/log.h"
#include "fleet/inventory.h"
#include "fleet/inventory_text.h"

namespace mixserve::fleet {
namespace {

constexpr uint64_t kMiB = 1024ull * 1024;

bool is_not_available(std::string_view field) {
  return field.empty() || field == "[N/A]" || field == "N/A" || field == "[Not Supported]";
}

// The subset of the public NVML C API used here, declared from NVIDIA's NVML API reference
// (docs.nvidia.com/deploy/nvml-api): every call returns nvmlReturn_t, 0 being NVML_SUCCESS.
using NvmlReturn = int;
struct NvmlDeviceOpaque;
using NvmlDevice = NvmlDeviceOpaque*;
struct NvmlMemory {  // nvmlMemory_t (v1): bytes
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
constexpr NvmlReturn kNvmlSuccess = 0;
constexpr unsigned kNvmlNameBufferSize = 96;  // NVML_DEVICE_NAME_V2_BUFFER_SIZE
constexpr unsigned kNvmlUuidBufferSize = 96;  // NVML_DEVICE_UUID_V2_BUFFER_SIZE

struct Nvml {
  NvmlReturn (*init)();
  NvmlReturn (*shutdown)();
  NvmlReturn (*get_count)(unsigned*);
  NvmlReturn (*get_handle)(unsigned, NvmlDevice*);
  NvmlReturn (*get_name)(NvmlDevice, char*, unsigned);
  NvmlReturn (*get_memory)(NvmlDevice, NvmlMemory*);
  NvmlReturn (*get_uuid)(NvmlDevice, char*, unsigned);
};

template <typename Fn>
bool load_symbol(void* lib, const char* name, Fn& out) {
  out = reinterpret_cast<Fn>(dlsym(lib, name));
  if (out == nullptr) log_debug("inventory: NVML has no symbol ", name);
  return out != nullptr;
}

}  // namespace

ParseResult parse_nvidia_smi_csv(std::string_view text_in) {
  ParseResult result;
  if (text_in.find("NVIDIA-SMI has failed") != std::string_view::npos ||
      text_in.find("couldn't communicate with the NVIDIA driver") != std::string_view::npos) {
    result.error = "nvidia-smi: " + text::first_line(text_in);
    return result;
  }
  if (text_in.find("No devices were found") != std::string_view::npos) return result;
  if (text::trim(text_in).empty()) {
    result.error = "nvidia-smi printed nothing";
    return result;
  }
  int line_no = 0;
  for (auto line : text::lines(text_in)) {
    ++line_no;
    if (text::trim(line).empty()) continue;
    const auto fields = text::split(line, ',');
    // index, name, uuid, memory.total, pci.bus_id; a name holding commas spreads over several fields.
    if (fields.size() < 5) {
      result.error = "nvidia-smi line " + std::to_string(line_no) + ": expected 5 comma-separated fields, got " +
                     std::to_string(fields.size()) + ": " + text::first_line(line);
      return result;
    }
    const auto index = text::parse_uint(fields[0]);
    if (!index || *index > 1u << 20) {
      result.error = "nvidia-smi line " + std::to_string(line_no) + ": GPU index '" + std::string(fields[0]) +
                     "' is not a small non-negative integer";
      return result;
    }
    DiscoveredDevice d;
    d.source = "nvidia-smi";
    d.vendor = "NVIDIA";
    d.index = static_cast<int>(*index);
    for (size_t i = 1; i + 3 < fields.size(); ++i) {
      if (i > 1) d.name += ",";
      d.name += fields[i];
    }
    const auto uuid = fields[fields.size() - 3];
    const auto memory = fields[fields.size() - 2];
    const auto bus = fields[fields.size() - 1];
    d.uuid_or_bus = std::string(is_not_available(uuid) ? bus : uuid);
    if (is_not_available(memory)) {
      d.status = "memory size not reported";
    } else if (const auto mib = text::parse_uint(memory); mib && text::scale(*mib, kMiB)) {
      d.memory_bytes = *mib * kMiB;
    } else {
      result.error = "nvidia-smi line " + std::to_string(line_no) + ": memory.total '" + std::string(memory) +
                     "' is not a number of MiB";
      return result;
    }
    if (d.name.empty()) d.status = "model name not reported";
    result.devices.push_back(std::move(d));
  }
  return result;
}

std::optional<std::vector<DiscoveredDevice>> discover_nvml() {
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    log_debug("inventory: NVML not available (", dlerror(), ")");
    return std::nullopt;
  }
  std::unique_ptr<void, int (*)(void*)> closer(lib, &dlclose);
  Nvml nvml{};
  if (!load_symbol(lib, "nvmlInit_v2", nvml.init) || !load_symbol(lib, "nvmlShutdown", nvml.shutdown) ||
      !load_symbol(lib, "nvmlDeviceGetCount_v2", nvml.get_count) ||
      !load_symbol(lib, "nvmlDeviceGetHandleByIndex_v2", nvml.get_handle) ||
      !load_symbol(lib, "nvmlDeviceGetName", nvml.get_name) ||
      !load_symbol(lib, "nvmlDeviceGetMemoryInfo", nvml.get_memory) ||
      !load_symbol(lib, "nvmlDeviceGetUUID", nvml.get_uuid)) {
    return std::nullopt;
  }
  if (const NvmlReturn rc = nvml.init(); rc != kNvmlSuccess) {
    log_debug("inventory: nvmlInit_v2 failed with code ", rc);
    return std::nullopt;
  }
  std::vector<DiscoveredDevice> devices;
  unsigned count = 0;
  if (nvml.get_count(&count) != kNvmlSuccess) count = 0;
  for (unsigned i = 0; i < count && i < 4096; ++i) {
    DiscoveredDevice d;
    d.source = "nvml";
    d.vendor = "NVIDIA";
    d.index = static_cast<int>(i);
    NvmlDevice handle = nullptr;
    if (const NvmlReturn rc = nvml.get_handle(i, &handle); rc != kNvmlSuccess) {
      d.status = "NVML cannot open the device (code " + std::to_string(rc) + ")";
      devices.push_back(std::move(d));
      continue;
    }
    char name[kNvmlNameBufferSize] = {};
    if (nvml.get_name(handle, name, sizeof name) == kNvmlSuccess) d.name.assign(name, strnlen(name, sizeof name));
    char uuid[kNvmlUuidBufferSize] = {};
    if (nvml.get_uuid(handle, uuid, sizeof uuid) == kNvmlSuccess) d.uuid_or_bus.assign(uuid, strnlen(uuid, sizeof uuid));
    NvmlMemory memory{};
    if (nvml.get_memory(handle, &memory) == kNvmlSuccess) {
      d.memory_bytes = memory.total;
    } else {
      d.status = "memory size not reported";
    }
    if (d.name.empty()) d.status = "model name not reported";
    devices.push_back(std::move(d));
  }
  nvml.shutdown();
  return devices;
}

}  // namespace mixserve::fleet

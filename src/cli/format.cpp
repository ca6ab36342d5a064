#include "cli/format.h"

#include "hal/registry.h"

namespace mixserve::cli {

std::string human_bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KB", "MB", "GB", "TB"};
  int unit = 0;
  while (bytes >= 1000.0 && unit < 4) {
    bytes /= 1000.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), unit == 0 ? "%.0f %s" : "%.2f %s", bytes, kUnits[unit]);
  return buf;
}

void print_devices(std::FILE* out) {
  std::fprintf(out, "%-10s %-8s %-32s %-10s %-10s %-6s %s\n", "ID", "BACKEND", "NAME", "MEMORY", "FREE", "UNITS",
               "CAPABILITIES");
  const auto& registry = hal::Registry::instance();
  for (hal::Device* device : registry.devices()) {
    const auto info = device->info();
    std::fprintf(out, "%-10s %-8s %-32s %-10s %-10s %-6d %s\n", info.id.c_str(), info.backend.c_str(),
                 info.name.substr(0, 32).c_str(), human_bytes(static_cast<double>(info.memory_total)).c_str(),
                 human_bytes(static_cast<double>(info.memory_free)).c_str(), info.compute_units,
                 info.details.c_str());
  }
  // Backends compiled in but without devices say why (e.g. no OpenCL ICD installed).
  for (const auto& status : registry.statuses()) std::fprintf(out, "note: %s\n", status.c_str());
}

}  // namespace mixserve::cli

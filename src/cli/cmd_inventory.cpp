// `mixserve devices --inventory [--json] [--catalogue F] [--home CC]`: every device on this machine
// (CPU, NVIDIA, Ascend, Cambricon, Hygon) with its chip catalogue id and whether it is domestic.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/format.h"
#include "fleet/catalogue.h"
#include "fleet/inventory.h"
#include "fleet/inventory_json.h"

namespace mixserve::cli {
namespace {

struct InventoryOptions {
  bool enabled = false;
  bool json = false;
  std::string catalogue_file;
  std::string home = "CN";
};

std::string domestic_text(const fleet::Catalogue& catalogue, const fleet::DiscoveredDevice& d, const std::string& home) {
  if (!d.chip_id) return "unknown";
  return catalogue.is_domestic(*d.chip_id, home) ? "yes" : "no";
}

void print_inventory(const InventoryOptions& o) {
  auto catalogue = fleet::Catalogue::builtin();
  if (!o.catalogue_file.empty()) catalogue.apply_overrides(o.catalogue_file);
  const auto devices = fleet::discover_devices(catalogue);
  if (o.json) {
    std::printf("%s\n", fleet::inventory_json(devices, catalogue, o.home).c_str());
    return;
  }
  std::printf("%-14s %4s  %-10s %-32s %-20s %-8s %10s  %-18s %s\n", "source", "idx", "vendor", "name", "chip",
              "domestic", "memory", "uuid/bus", "status");
  for (const auto& d : devices) {
    const std::string memory = d.memory_bytes > 0 ? human_bytes(static_cast<double>(d.memory_bytes)) : "-";
    std::string status = d.status;
    if (!d.detail.empty()) status += " (" + d.detail + ")";
    std::printf("%-14s %4d  %-10s %-32s %-20s %-8s %10s  %-18s %s\n", d.source.c_str(), d.index, d.vendor.c_str(),
                d.name.empty() ? "-" : d.name.c_str(), d.chip_id ? d.chip_id->c_str() : "unknown",
                domestic_text(catalogue, d, o.home).c_str(), memory.c_str(),
                d.uuid_or_bus.empty() ? "-" : d.uuid_or_bus.c_str(), status.c_str());
  }
}

}  // namespace

std::function<bool()> add_inventory_options(CLI::App& devices) {
  auto options = std::make_shared<InventoryOptions>();
  devices.add_flag("--inventory", options->enabled,
                   "list every local device (CPU, NVIDIA, Ascend, Cambricon, Hygon) with its chip catalogue id");
  devices.add_flag("--json", options->json, "with --inventory: print JSON");
  devices.add_option("--catalogue", options->catalogue_file, "with --inventory: chip catalogue override file");
  devices.add_option("--home", options->home, "with --inventory: home country for 'domestic' (default CN)");
  return [options] {
    if (!options->enabled) return false;
    print_inventory(*options);
    return true;
  };
}

}  // namespace mixserve::cli

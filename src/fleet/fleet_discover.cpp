// Expands `{discovered: ...}` device entries of fleet.yaml into catalogue id x count groups.
#include "fleet/fleet_discover.h"

#include <filesystem>

#include "common/error.h"
#include "common/log.h"
#include "fleet/catalogue.h"
#include "fleet/inventory_json.h"

namespace mixserve::fleet {
namespace {

constexpr const char* kCpuSource = "/proc/cpuinfo";

std::string slug(const std::string& text, const char* fallback) {
  std::string out;
  bool dash = false;
  for (unsigned char c : text) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.';
    if (c >= 'A' && c <= 'Z') {
      out += static_cast<char>(c - 'A' + 'a');
      dash = false;
    } else if (keep) {
      out += static_cast<char>(c);
      dash = false;
    } else if (!dash && !out.empty()) {
      out += '-';
      dash = true;
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? fallback : out;
}

// How a device is named in errors: "'NVIDIA H20' (NVIDIA, nvidia-smi index 3)".
std::string describe(const DiscoveredDevice& d) {
  return "'" + (d.name.empty() ? std::string("(no name)") : d.name) + "' (" +
         (d.vendor.empty() ? std::string("vendor unknown") : d.vendor) + ", " + d.source + " index " +
         std::to_string(d.index) + ")";
}

// The catalogue id of `d` under this fleet's catalogue: the id recorded on the node when this
// catalogue knows it (an operator may have set it by hand), else a match on vendor and name.
std::optional<std::string> resolve_chip(const Catalogue& catalogue, const DiscoveredDevice& d) {
  if (d.chip_id) {
    // A CPU keeps only a CPU entry and an accelerator only a non-CPU one, as in assign_chip_ids():
    // an edited chip_id cannot hide a GPU as a CPU, which never counts.
    const auto spec = catalogue.find(*d.chip_id);
    if (spec && (spec->stack == "cpu") == (d.source == kCpuSource)) return d.chip_id;
  }
  std::vector<DiscoveredDevice> one{d};
  one[0].chip_id.reset();
  assign_chip_ids(catalogue, one);
  return one[0].chip_id;
}

}  // namespace

std::string unknown_device_id(const DiscoveredDevice& device) {
  return "unknown:" + slug(device.vendor, "unknown") + ":" + slug(device.name, "unnamed");
}

DiscoveredReader::DiscoveredReader(const Catalogue& catalogue, const FleetOptions& options, std::string base_dir)
    : catalogue_(catalogue), options_(options), base_dir_(std::move(base_dir)) {}

std::vector<DiscoveredDevice> DiscoveredReader::load(const yaml::Where& where, const std::string& node,
                                                     const YAML::Node& value, std::string& label) {
  if (value.IsSequence()) {
    label = "inline inventory";
    try {
      return parse_inventory(value, where.origin);
    } catch (const Error& e) {
      yaml::fail_at(where, value, "discovered", label + ": " + e.what());
    }
  }
  if (!value.IsScalar() || value.as<std::string>().empty()) {
    yaml::fail_at(where, value, "discovered",
                  "expected the path of an inventory JSON file (`mixserve devices --inventory --json` run on the "
                  "node), 'local', or an inline list of devices");
  }
  const auto text = value.as<std::string>();
  if (text == "local") {
    label = "local inventory";
    if (!local_node_.empty()) {
      yaml::fail_at(where, value, "discovered",
                    "'local' is already used by node '" + local_node_ +
                        "': it probes this machine, which is one node (use ./local for a file named local)");
    }
    local_node_ = node;
    return options_.discover_local ? options_.discover_local(catalogue_) : discover_devices(catalogue_);
  }
  label = "inventory '" + text + "'";
  std::filesystem::path path(text);
  if (path.is_relative() && !base_dir_.empty()) path = std::filesystem::path(base_dir_) / path;
  const auto key = path.lexically_normal().string();
  const auto [used, fresh] = files_.emplace(key, node);
  if (!fresh) {
    yaml::fail_at(where, value, "discovered",
                  label + " is already listed for node '" + used->second +
                      "': an inventory describes one machine, so its devices would count twice");
  }
  try {
    return load_inventory(path.string());
  } catch (const Error& e) {
    yaml::fail_at(where, value, "discovered", label + ": " + e.what());
  }
}

DiscoveredEntry DiscoveredReader::read(const yaml::Where& where, const std::string& node, const YAML::Node& value,
                                       std::set<std::string>& unknown) {
  std::string label;
  const auto devices = load(where, node, value, label);
  DiscoveredEntry entry;
  entry.devices = devices.size();
  auto& seen = node_ids_[node];
  std::size_t n = 0;
  for (const auto& d : devices) {
    ++n;
    const std::string at = label + " device #" + std::to_string(n) + " ";
    const bool cpu = d.source == kCpuSource;
    if (d.index < 0) {
      // A tool that failed: how many devices it would have listed is not known, so the node cannot
      // be counted. A failed CPU probe does not matter: CPUs never count.
      if (cpu) continue;
      yaml::fail_at(where, value, "discovered",
                    at + "is a failed " + d.source + " probe, not a device ('" + d.status + "'): the node's " +
                        (d.vendor.empty() ? std::string("") : d.vendor + " ") +
                        "devices are not known; fix the tool on the node and rerun `mixserve devices --inventory "
                        "--json`, or list the devices with chip and count");
    }
    if (!d.uuid_or_bus.empty() && !seen.insert(d.uuid_or_bus).second) {
      yaml::fail_at(where, value, "discovered",
                    at + describe(d) + " has uuid/bus '" + d.uuid_or_bus + "' of a device already listed on this node");
    }
    auto chip = resolve_chip(catalogue_, d);
    if (!chip && cpu) {
      // No generic entry fits (e.g. RISC-V): left out, since CPUs never count in any rule.
      log_info("fleet: node '", node, "': ", at, describe(d), " is a CPU the catalogue does not know; left out");
      continue;
    }
    if (!chip) {
      const auto id = unknown_device_id(d);
      if (!options_.allow_unknown_chips) {
        yaml::fail_at(where, value, "discovered",
                      at + describe(d) +
                          " is not in the chip catalogue: add an entry whose match fits its name (--catalogue), "
                          "set its chip_id in the inventory, or pass --allow-unknown-chips to keep it as '" +
                          id + "' (counted as foreign)");
      }
      unknown.insert(id);
      chip = id;
    }
    bool merged = false;
    for (auto& g : entry.groups) {
      if (g.chip == *chip) {
        ++g.count;
        merged = true;
      }
    }
    if (!merged) entry.groups.push_back({*chip, 1});
  }
  return entry;
}

}  // namespace mixserve::fleet

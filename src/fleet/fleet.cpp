#include "fleet/fleet.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "fleet/fleet_discover.h"
#include "fleet/yaml_check.h"

namespace mixserve::fleet {

std::string_view node_state_name(NodeState state) {
  switch (state) {
    case NodeState::kActive: return "active";
    case NodeState::kIdle: return "idle";
    case NodeState::kDrained: return "drained";
    case NodeState::kRetired: return "retired";
  }
  return "?";
}

std::optional<NodeState> parse_node_state(std::string_view name) {
  for (auto s : {NodeState::kActive, NodeState::kIdle, NodeState::kDrained, NodeState::kRetired}) {
    if (node_state_name(s) == name) return s;
  }
  return std::nullopt;
}

const Node* Fleet::find(std::string_view name) const {
  for (const auto& n : nodes) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

Node* Fleet::find(std::string_view name) {
  return const_cast<Node*>(static_cast<const Fleet*>(this)->find(name));
}

Fleet parse_fleet(const std::string& text, const std::string& origin, const Catalogue& catalogue,
                  const FleetOptions& options) {
  const auto root = yaml::parse(text, origin);
  const yaml::Where top{origin, ""};
  Fleet fleet;
  if (root.IsNull()) yaml::fail_at(top, root, "nodes", "the file is empty; expected home_country and nodes");
  yaml::check_keys(top, root, {"home_country", "nodes", "name", "description"});
  fleet.home_country = yaml::get_string(top, root, "home_country", false, "CN");
  const auto& hc = fleet.home_country;
  if (hc.size() != 2 || !std::isupper(static_cast<unsigned char>(hc[0])) ||
      !std::isupper(static_cast<unsigned char>(hc[1]))) {
    yaml::fail_at(top, root["home_country"], "home_country",
                  "expected a two-letter upper-case ISO 3166-1 code, got '" + hc + "'");
  }
  const auto nodes = yaml::get_list(top, root, "nodes", true);
  std::set<std::string> names;
  std::set<std::string> unknown;
  std::size_t index = 0;
  std::size_t entries = 0;
  DiscoveredReader discovered(
      catalogue, options,
      options.base_dir.empty() ? std::filesystem::path(origin).parent_path().string() : options.base_dir);
  fleet.nodes.reserve(nodes.size());
  for (const auto& n : nodes) {
    ++index;
    yaml::Where where{origin, "node #" + std::to_string(index)};
    if (!n.IsMap()) yaml::fail_at(where, n, "", "expected a mapping with name and devices");
    Node node;
    node.name = yaml::get_string(where, n, "name", true);
    where.entry = "node '" + node.name + "'";
    yaml::check_keys(where, n, {"name", "pool", "project", "funding", "state", "devices"});
    if (!names.insert(node.name).second) yaml::fail_at(where, n["name"], "name", "duplicate node name");
    node.pool = yaml::get_string(where, n, "pool", false);
    node.project = yaml::get_string(where, n, "project", false);
    node.funding = yaml::get_string(where, n, "funding", false);
    const auto state = yaml::get_string(where, n, "state", false, "active");
    const auto parsed = parse_node_state(state);
    if (!parsed)
      yaml::fail_at(where, n["state"], "state",
                    "unknown state '" + state + "' (allowed: active, idle, drained, retired)");
    node.state = *parsed;
    const auto devices = yaml::get_list(where, n, "devices", false);
    std::size_t d_index = 0;
    for (const auto& d : devices) {
      ++d_index;
      if (++entries > kMaxDeviceEntries) {
        yaml::fail_at(where, d, "devices",
                      "the fleet has more than " + std::to_string(kMaxDeviceEntries) + " device entries");
      }
      const yaml::Where dwhere{origin, where.entry + " device #" + std::to_string(d_index)};
      yaml::check_keys(dwhere, d, {"chip", "count", "discovered"});
      if (d["discovered"]) {
        if (d["chip"] || d["count"]) {
          yaml::fail_at(dwhere, d["discovered"], "discovered",
                        "an entry has either chip and count or discovered, not both");
        }
        auto found = discovered.read(dwhere, node.name, d["discovered"], unknown);
        entries += found.devices;
        if (entries > kMaxDeviceEntries) {
          yaml::fail_at(dwhere, d["discovered"], "discovered",
                        "the fleet has more than " + std::to_string(kMaxDeviceEntries) + " device entries");
        }
        for (auto& g : found.groups) node.devices.push_back(std::move(g));
        continue;
      }
      DeviceGroup group;
      group.chip = yaml::get_string(dwhere, d, "chip", true);
      group.count = yaml::get_count(dwhere, d, "count", true, 0, kMaxDevicesPerEntry);
      if (!catalogue.find(group.chip)) {
        if (!options.allow_unknown_chips) {
          yaml::fail_at(dwhere, d["chip"], "chip",
                        "unknown chip id '" + group.chip +
                            "' (not in the catalogue; see `mixserve chips`, "
                            "add it with --catalogue, or pass --allow-unknown-chips to count it as foreign)");
        }
        unknown.insert(group.chip);
      }
      node.devices.push_back(std::move(group));
    }
    fleet.nodes.push_back(std::move(node));
  }
  fleet.unknown_chips.assign(unknown.begin(), unknown.end());
  return fleet;
}

Fleet load_fleet(const std::string& path, const Catalogue& catalogue, const FleetOptions& options) {
  return parse_fleet(yaml::read_file(path), path, catalogue, options);
}

}  // namespace mixserve::fleet

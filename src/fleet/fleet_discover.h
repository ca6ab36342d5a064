// Discovered devices in fleet.yaml: a node's device entry `{discovered: <inventory.json> | local |
// [inline inventory]}` is expanded into catalogue id x count groups (docs/policy.md, fleet.yaml).
// Used by parse_fleet(); public so the id rule and the expansion can be tested on their own.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "fleet/fleet.h"
#include "fleet/inventory.h"
#include "fleet/yaml_check.h"

namespace mixserve::fleet {

/// The id a discovered device missing from the catalogue is kept under:
/// "unknown:<vendor>:<name>", each part lower-cased with every run of other characters than a-z,
/// 0-9 and '.' turned into one '-' ("unknown" / "unnamed" when a part is empty).
std::string unknown_device_id(const DiscoveredDevice& device);

/// What one `discovered:` entry expanded to.
struct DiscoveredEntry {
  std::vector<DeviceGroup> groups;  ///< one group per chip id, in order of first appearance
  std::size_t devices = 0;          ///< devices read from the inventory (problem entries and CPUs included)
};

/// Expands the `discovered:` entries of one fleet file; remembers what it has read so that the same
/// inventory file, `local`, or one device (same source and uuid/bus) cannot be counted twice.
class DiscoveredReader {
 public:
  /// `base_dir`: directory relative inventory paths are resolved against (empty: the working directory).
  DiscoveredReader(const Catalogue& catalogue, const FleetOptions& options, std::string base_dir);

  /// Expands `value` (the node under key 'discovered' of the entry at `where`, node `node`). Ids
  /// not in the catalogue are added to `unknown` (only when options.allow_unknown_chips; else an
  /// error). Throws kInvalidArgument naming the fleet file, line, node, device entry and key.
  DiscoveredEntry read(const yaml::Where& where, const std::string& node, const YAML::Node& value,
                       std::set<std::string>& unknown);

 private:
  std::vector<DiscoveredDevice> load(const yaml::Where& where, const std::string& node, const YAML::Node& value,
                                     std::string& label);

  const Catalogue& catalogue_;
  const FleetOptions& options_;
  std::string base_dir_;
  std::map<std::string, std::string> files_;               // resolved inventory path -> node using it
  std::string local_node_;                                  // node that used `local`; empty when none
  std::map<std::string, std::set<std::string>> node_ids_;  // node -> "source|uuid_or_bus" seen
};

}  // namespace mixserve::fleet

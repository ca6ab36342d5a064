// The fleet description (fleet.yaml): nodes, their devices as catalogue id x count (written out, or
// discovered: read from an inventory), pool, project, funding and state. Schema: docs/policy.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fleet/catalogue.h"
#include "fleet/inventory.h"

namespace mixserve::fleet {

/// Life-cycle state of a node. Retired devices never count in any rule.
enum class NodeState { kActive, kIdle, kDrained, kRetired };

/// "active", "idle", "drained" or "retired".
std::string_view node_state_name(NodeState state);
/// The state named `name`, or nullopt.
std::optional<NodeState> parse_node_state(std::string_view name);

/// `count` devices of one chip on a node.
struct DeviceGroup {
  std::string chip;        ///< catalogue id (or an unknown id when FleetOptions allow it)
  std::int64_t count = 0;  ///< number of devices, >= 0
};

/// One machine of the fleet.
struct Node {
  std::string name;                      ///< unique within the fleet
  std::string pool;                      ///< e.g. "inference"; empty when not in a pool
  std::string project;                   ///< e.g. "pudong-phase2"; empty when none
  std::string funding;                   ///< funding tag, e.g. "state" or "private"; empty when none
  NodeState state = NodeState::kActive;  ///< life-cycle state
  std::vector<DeviceGroup> devices;      ///< accelerators (and CPUs) installed
};

/// How strictly a fleet file is read.
struct FleetOptions {
  /// false (default): a chip id missing from the catalogue is an error. true: it is kept, listed in
  /// Fleet::unknown_chips, and counts as foreign (see docs/policy.md).
  bool allow_unknown_chips = false;
  /// Directory that relative `discovered:` inventory paths are resolved against; empty (default):
  /// the directory of `origin` (load_fleet: the fleet file's directory).
  std::string base_dir;
  /// Runs this machine's inventory for `discovered: local`; empty (default): discover_devices() on
  /// the real machine. Tests inject recorded tool output here.
  std::function<std::vector<DiscoveredDevice>(const Catalogue&)> discover_local;
};

/// Most devices one device entry may declare; larger counts are typos.
inline constexpr std::int64_t kMaxDevicesPerEntry = 1'000'000;

/// Most device entries (chip x count lines) a fleet file may hold in all; YAML aliases could
/// otherwise repeat a list into a huge allocation.
inline constexpr std::size_t kMaxDeviceEntries = 1'000'000;

/// A whole fleet.
struct Fleet {
  std::string home_country = "CN";         ///< ISO 3166-1 alpha-2; chips designed here are domestic
  std::vector<Node> nodes;                 ///< in file order
  std::vector<std::string> unknown_chips;  ///< sorted ids not in the catalogue (only when allowed)

  /// The node called `name`, or nullptr.
  const Node* find(std::string_view name) const;
  /// The node called `name`, or nullptr.
  Node* find(std::string_view name);
};

/// Parses fleet YAML text; throws kInvalidArgument naming `origin`, the line, the node and the key.
/// A device entry is `{chip, count}` or `{discovered: <inventory.json> | local | [inline inventory]}`.
Fleet parse_fleet(const std::string& text, const std::string& origin, const Catalogue& catalogue,
                  const FleetOptions& options = {});
/// Reads and parses a fleet file.
Fleet load_fleet(const std::string& path, const Catalogue& catalogue, const FleetOptions& options = {});

}  // namespace mixserve::fleet

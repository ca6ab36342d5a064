// The inventory's JSON form: what `mixserve devices --inventory --json` prints (docs/inventory.md),
// and the reader that turns it back into devices so a fleet can list a node's devices as
// "discovered" (docs/policy.md). JSON is read through the YAML parser (JSON is a subset of YAML 1.2),
// so schema errors carry line numbers and the same list may be written inline in a YAML file.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "fleet/inventory.h"

namespace mixserve::fleet {

class Catalogue;

/// The JSON array printed by `devices --inventory --json`: one object per device with source, vendor,
/// name, index, uuid_or_bus, memory_bytes, chip_id (null when unknown), domestic (null when unknown,
/// judged against `home_country`), status and detail. Indented by 2; invalid UTF-8 is replaced.
std::string inventory_json(const std::vector<DiscoveredDevice>& devices, const Catalogue& catalogue,
                           const std::string& home_country);

/// Reads devices from a parsed inventory list (the array above). Required keys: source, vendor,
/// name, index, status; optional: chip_id (string or null), uuid_or_bus, memory_bytes, detail;
/// other keys (domestic, keys of later versions) are ignored. Throws kInvalidArgument
/// "<origin>:<line>: inventory device #<n>: key '<key>': <problem>".
std::vector<DiscoveredDevice> parse_inventory(const YAML::Node& list, const std::string& origin);

/// parse_inventory() on JSON text; syntax errors name `origin` and the line.
std::vector<DiscoveredDevice> parse_inventory_text(const std::string& text, const std::string& origin);

/// Reads an inventory file; kNotFound when it cannot be read, else as parse_inventory_text().
std::vector<DiscoveredDevice> load_inventory(const std::string& path);

}  // namespace mixserve::fleet

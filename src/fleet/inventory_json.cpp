// Inventory JSON: the printer used by `devices --inventory --json` and the reader used by fleet files
// whose nodes list their devices as discovered.
#include "fleet/inventory_json.h"

#include <climits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "fleet/catalogue.h"
#include "fleet/yaml_check.h"

namespace mixserve::fleet {

std::string inventory_json(const std::vector<DiscoveredDevice>& devices, const Catalogue& catalogue,
                           const std::string& home_country) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& d : devices) {
    out.push_back({{"source", d.source},
                   {"vendor", d.vendor},
                   {"name", d.name},
                   {"index", d.index},
                   {"uuid_or_bus", d.uuid_or_bus},
                   {"memory_bytes", d.memory_bytes},
                   {"chip_id", d.chip_id ? nlohmann::json(*d.chip_id) : nlohmann::json()},
                   {"domestic", d.chip_id ? nlohmann::json(catalogue.is_domestic(*d.chip_id, home_country))
                                          : nlohmann::json()},
                   {"status", d.status},
                   {"detail", d.detail}});
  }
  // Invalid UTF-8 from a vendor tool is replaced rather than aborting the listing.
  return out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

// A string that may be empty (the printer writes "" for unknown names); null reads as empty.
std::string get_text(const yaml::Where& where, const YAML::Node& map, const char* key, bool required) {
  const auto node = map[key];
  if (!node.IsDefined()) {
    if (required) yaml::fail_at(where, map, key, "required key is missing");
    return "";
  }
  if (node.IsNull()) return "";
  if (!node.IsScalar()) yaml::fail_at(where, node, key, "expected a string");
  return node.as<std::string>();
}

int get_index(const yaml::Where& where, const YAML::Node& map) {
  const auto node = map["index"];
  if (!node.IsDefined() || node.IsNull()) yaml::fail_at(where, map, "index", "required key is missing");
  if (!node.IsScalar()) yaml::fail_at(where, node, "index", "expected a whole number");
  long long value = 0;
  try {
    value = node.as<long long>();
  } catch (const YAML::Exception&) {
    yaml::fail_at(where, node, "index", "expected a whole number, got '" + node.as<std::string>() + "'");
  }
  // -1 marks a tool that failed (a problem entry); real indices are >= 0.
  if (value < -1 || value > INT_MAX) yaml::fail_at(where, node, "index", "out of range: " + node.as<std::string>());
  return static_cast<int>(value);
}

std::uint64_t get_bytes(const yaml::Where& where, const YAML::Node& map) {
  const auto node = map["memory_bytes"];
  if (!node.IsDefined() || node.IsNull()) return 0;
  if (!node.IsScalar()) yaml::fail_at(where, node, "memory_bytes", "expected a whole number");
  const auto text = node.as<std::string>();
  if (!text.empty() && text[0] == '-') yaml::fail_at(where, node, "memory_bytes", "must not be negative, got " + text);
  try {
    return node.as<std::uint64_t>();
  } catch (const YAML::Exception&) {
    yaml::fail_at(where, node, "memory_bytes", "expected a whole number of bytes, got '" + text + "'");
  }
}

}  // namespace

std::vector<DiscoveredDevice> parse_inventory(const YAML::Node& list, const std::string& origin) {
  const yaml::Where top{origin, "inventory"};
  if (!list.IsDefined() || list.IsNull() || !list.IsSequence()) {
    yaml::fail_at(top, list, "",
                  "expected a list of devices (the JSON array `mixserve devices --inventory --json` prints)");
  }
  std::vector<DiscoveredDevice> devices;
  devices.reserve(list.size());
  std::size_t n = 0;
  for (const auto& item : list) {
    const yaml::Where where{origin, "inventory device #" + std::to_string(++n)};
    if (!item.IsMap()) yaml::fail_at(where, item, "", "expected an object with source, vendor, name, index, status");
    DiscoveredDevice d;
    d.source = get_text(where, item, "source", true);
    if (d.source.empty()) yaml::fail_at(where, item["source"], "source", "must not be empty");
    d.vendor = get_text(where, item, "vendor", true);
    d.name = get_text(where, item, "name", true);
    d.index = get_index(where, item);
    d.uuid_or_bus = get_text(where, item, "uuid_or_bus", false);
    d.memory_bytes = get_bytes(where, item);
    const auto chip = item["chip_id"];
    if (chip.IsDefined() && !chip.IsNull()) {
      if (!chip.IsScalar() || chip.as<std::string>().empty()) {
        yaml::fail_at(where, chip, "chip_id", "expected a catalogue id or null");
      }
      d.chip_id = chip.as<std::string>();
    }
    d.status = get_text(where, item, "status", true);
    d.detail = get_text(where, item, "detail", false);
    devices.push_back(std::move(d));
  }
  return devices;
}

std::vector<DiscoveredDevice> parse_inventory_text(const std::string& text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(ErrorCode::kInvalidArgument, origin, ":", e.mark.line + 1, ": not valid JSON: ", e.msg);
  }
  return parse_inventory(root, origin);
}

std::vector<DiscoveredDevice> load_inventory(const std::string& path) {
  return parse_inventory_text(yaml::read_file(path), path);
}

}  // namespace mixserve::fleet

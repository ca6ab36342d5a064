#include "policy/usage.h"

#include <algorithm>

#include "common/error.h"
#include "fleet/yaml_check.h"

namespace mixserve::policy {

namespace yaml = fleet::yaml;

Usage parse_usage(const std::string& text, const std::string& origin, const fleet::Fleet& fleet,
                  const fleet::Catalogue& catalogue) {
  const auto root = yaml::parse(text, origin);
  const yaml::Where top{origin, ""};
  if (root.IsNull()) yaml::fail_at(top, root, "nodes", "the file is empty; expected a 'nodes' list");
  yaml::check_keys(top, root, {"period", "nodes"});
  Usage usage;
  const auto period = root["period"];
  if (period.IsDefined()) {
    const yaml::Where pwhere{origin, "period"};
    yaml::check_keys(pwhere, period, {"from", "to"});
    usage.from = yaml::get_string(pwhere, period, "from", false);
    usage.to = yaml::get_string(pwhere, period, "to", false);
  }
  const auto nodes = yaml::get_list(top, root, "nodes", true);
  std::size_t index = 0;
  for (const auto& n : nodes) {
    yaml::Where where{origin, "usage node #" + std::to_string(++index)};
    if (!n.IsMap()) yaml::fail_at(where, n, "", "expected a mapping with name and devices");
    const auto name = yaml::get_string(where, n, "name", true);
    where.entry = "usage node '" + name + "'";
    yaml::check_keys(where, n, {"name", "devices"});
    if (!fleet.find(name)) yaml::fail_at(where, n["name"], "name", "no node of this name in the fleet");
    const auto devices = yaml::get_list(where, n, "devices", true);
    std::size_t d_index = 0;
    for (const auto& d : devices) {
      const yaml::Where dwhere{origin, where.entry + " device #" + std::to_string(++d_index)};
      if (usage.entries.size() >= fleet::kMaxDeviceEntries) {
        yaml::fail_at(dwhere, d, "", "more than " + std::to_string(fleet::kMaxDeviceEntries) + " usage entries");
      }
      yaml::check_keys(dwhere, d, {"chip", "device_hours", "served_tokens"});
      UsageEntry entry;
      entry.node = name;
      entry.chip = yaml::get_string(dwhere, d, "chip", true);
      const bool listed_unknown =
          std::binary_search(fleet.unknown_chips.begin(), fleet.unknown_chips.end(), entry.chip);
      if (!catalogue.find(entry.chip) && !listed_unknown) {
        yaml::fail_at(dwhere, d["chip"], "chip", "unknown chip id '" + entry.chip + "'");
      }
      if (!d["device_hours"].IsDefined() && !d["served_tokens"].IsDefined()) {
        yaml::fail_at(dwhere, d, "device_hours", "give device_hours, served_tokens or both");
      }
      entry.device_hours = yaml::get_number(dwhere, d, "device_hours", false);
      entry.served_tokens = yaml::get_number(dwhere, d, "served_tokens", false);
      usage.entries.push_back(std::move(entry));
    }
  }
  return usage;
}

Usage load_usage(const std::string& path, const fleet::Fleet& fleet, const fleet::Catalogue& catalogue) {
  return parse_usage(yaml::read_file(path), path, fleet, catalogue);
}

}  // namespace mixserve::policy

// Usage data for the device_hours and served_tokens bases (usage.yaml, schema in docs/policy.md):
// per node and chip, device-hours and tokens served over a period.
#pragma once

#include <string>
#include <vector>

#include "fleet/fleet.h"

namespace mixserve::policy {

/// Usage of one chip type on one node over the period.
struct UsageEntry {
  std::string node;          ///< fleet node name
  std::string chip;          ///< catalogue id
  double device_hours = 0;   ///< sum over the node's devices of this chip, hours
  double served_tokens = 0;  ///< tokens (prompt + generated) served by them
};

/// Usage over one period.
struct Usage {
  std::string from;                 ///< period start as written (informational); may be empty
  std::string to;                   ///< period end as written (informational); may be empty
  std::vector<UsageEntry> entries;  ///< in file order
};

/// Parses usage YAML; every node must exist in `fleet` and every chip in `catalogue` (unless the
/// fleet allows unknown chips and lists it). Throws kInvalidArgument naming origin, node and key.
Usage parse_usage(const std::string& text, const std::string& origin, const fleet::Fleet& fleet,
                  const fleet::Catalogue& catalogue);
/// Reads and parses a usage file.
Usage load_usage(const std::string& path, const fleet::Fleet& fleet, const fleet::Catalogue& catalogue);

}  // namespace mixserve::policy

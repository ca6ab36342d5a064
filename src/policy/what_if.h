// What-if analysis: the smallest change that makes a violated rule hold again, either by adding
// domestic devices of one catalogue chip or by taking foreign devices out of the counted set.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fleet/catalogue.h"
#include "policy/policy.h"

namespace mixserve::policy {

/// Counted devices (or usage) of one chip within a rule's scope.
struct ChipTally {
  std::string chip;          ///< catalogue id (or unknown id)
  bool known = true;         ///< false when the id is not in the catalogue
  bool domestic = false;     ///< designed in the fleet's home country
  double weight = 1;         ///< basis amount per device (1 for device_count; figure for capacity bases)
  std::int64_t devices = 0;  ///< counted devices (capacity bases); 0 for usage bases
  double amount = 0;         ///< basis amount contributed (devices x weight, or usage)
};

/// Domestic devices of one chip to add.
struct AddSuggestion {
  std::string chip;        ///< catalogue id of a domestic accelerator
  std::int64_t count = 0;  ///< devices to add
  double weight = 0;       ///< basis amount per added device
};

/// Foreign devices of one chip to take out of the counted set.
struct RemoveSuggestion {
  std::string chip;        ///< catalogue id
  std::int64_t count = 0;  ///< devices
};

/// The smallest changes that restore a violated rule (empty when the rule holds).
struct WhatIf {
  bool needed = false;                   ///< true when the rule is violated
  std::optional<AddSuggestion> add;      ///< capacity bases: domestic devices to add; nullopt if impossible
  std::vector<RemoveSuggestion> remove;  ///< capacity bases: foreign devices to idle/drain/retire
  std::int64_t remove_devices = 0;       ///< sum of remove counts
  std::string remove_action;             ///< "idle", "drain" or "retire": the mildest state change that stops counting
  std::optional<double> add_amount;      ///< usage bases: whole units of domestic usage to add
  std::optional<double> remove_amount;   ///< usage bases: whole units of foreign usage to shed
  std::vector<std::string> notes;        ///< why an option is impossible
};

/// Whether `domestic / total` meets `threshold` (strictly above when `strict`), with a relative
/// tolerance of 1e-12 so that 0.7 x 10 devices reads as exactly 7. `total` must be > 0.
bool share_holds(double domestic, double total, double threshold, bool strict);

/// The what-if for a violated rule with `numerator` domestic out of `denominator`, given the tallies
/// in scope; `catalogue` and `home_country` give the domestic chips that could be added.
WhatIf compute_what_if(const Rule& rule, double numerator, double denominator, const std::vector<ChipTally>& tallies,
                       const fleet::Catalogue& catalogue, const std::string& home_country);

}  // namespace mixserve::policy

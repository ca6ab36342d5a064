// Proposed fleet changes checked before they are applied (`policy check --change ...`).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "fleet/catalogue.h"
#include "fleet/fleet.h"

namespace mixserve::policy {

/// One proposed change to a fleet.
struct FleetChange {
  enum class Kind { kAdd, kRemove, kDrain, kIdle, kActivate, kRetire };
  Kind kind = Kind::kAdd;
  std::string node;        ///< node name
  std::string chip;        ///< kAdd only: catalogue id
  std::int64_t count = 0;  ///< kAdd only: devices to add, >= 1
  /// The spec as written, for messages.
  std::string spec;
};

/// Parses "add:<node>:<chip>:<count>", "remove:<node>", "drain:<node>", "idle:<node>",
/// "activate:<node>" or "retire:<node>"; throws kInvalidArgument on anything else.
FleetChange parse_change(std::string_view spec);

/// Applies `change` to `fleet`. add creates the node (active, no pool or project) when absent;
/// the other kinds need an existing node (kInvalidArgument otherwise). The chip must be in the
/// catalogue unless the fleet allows unknown chips.
void apply_change(fleet::Fleet& fleet, const FleetChange& change, const fleet::Catalogue& catalogue,
                  bool allow_unknown_chips);

}  // namespace mixserve::policy

#include "policy/change.h"

#include <algorithm>
#include <charconv>
#include <vector>

#include "common/error.h"

namespace mixserve::policy {

namespace {

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      parts.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

[[noreturn]] void bad(std::string_view spec, std::string_view why) {
  fail(ErrorCode::kInvalidArgument, "--change '", spec, "': ", why,
       " (forms: add:<node>:<chip>:<count>, remove:<node>, drain:<node>, idle:<node>, activate:<node>, retire:<node>)");
}

}  // namespace

FleetChange parse_change(std::string_view spec) {
  const auto parts = split(spec, ':');
  FleetChange c;
  c.spec = std::string(spec);
  const auto& verb = parts[0];
  if (parts.size() < 2 || parts[1].empty()) bad(spec, "missing node name");
  c.node = parts[1];
  if (verb == "add") {
    if (parts.size() != 4) bad(spec, "add needs a node, a chip and a count");
    c.kind = FleetChange::Kind::kAdd;
    c.chip = parts[2];
    if (c.chip.empty()) bad(spec, "missing chip id");
    const auto& n = parts[3];
    const auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), c.count);
    if (ec != std::errc() || end != n.data() + n.size() || c.count < 1 || c.count > fleet::kMaxDevicesPerEntry) {
      bad(spec, "count must be a whole number from 1 to " + std::to_string(fleet::kMaxDevicesPerEntry));
    }
    return c;
  }
  if (parts.size() != 2) bad(spec, "too many ':' parts");
  if (verb == "remove") {
    c.kind = FleetChange::Kind::kRemove;
  } else if (verb == "drain") {
    c.kind = FleetChange::Kind::kDrain;
  } else if (verb == "idle") {
    c.kind = FleetChange::Kind::kIdle;
  } else if (verb == "activate") {
    c.kind = FleetChange::Kind::kActivate;
  } else if (verb == "retire") {
    c.kind = FleetChange::Kind::kRetire;
  } else {
    bad(spec, "unknown change '" + verb + "'");
  }
  return c;
}

void apply_change(fleet::Fleet& fleet, const FleetChange& change, const fleet::Catalogue& catalogue,
                  bool allow_unknown_chips) {
  using Kind = FleetChange::Kind;
  auto* node = fleet.find(change.node);
  if (change.kind == Kind::kAdd) {
    if (!catalogue.find(change.chip)) {
      if (!allow_unknown_chips)
        fail(ErrorCode::kInvalidArgument, "--change '", change.spec, "': unknown chip id '", change.chip, "'");
      auto& u = fleet.unknown_chips;
      if (!std::binary_search(u.begin(), u.end(), change.chip))
        u.insert(std::upper_bound(u.begin(), u.end(), change.chip), change.chip);
    }
    if (!node) {
      fleet.nodes.push_back(fleet::Node{change.node, "", "", "", fleet::NodeState::kActive, {}});
      node = &fleet.nodes.back();
    }
    for (auto& g : node->devices) {
      if (g.chip == change.chip) {
        g.count += change.count;
        return;
      }
    }
    node->devices.push_back({change.chip, change.count});
    return;
  }
  if (!node)
    fail(ErrorCode::kInvalidArgument, "--change '", change.spec, "': no node '", change.node, "' in the fleet");
  switch (change.kind) {
    case Kind::kRemove: {
      const auto index = node - fleet.nodes.data();
      fleet.nodes.erase(fleet.nodes.begin() + index);
      return;
    }
    case Kind::kDrain: node->state = fleet::NodeState::kDrained; return;
    case Kind::kIdle: node->state = fleet::NodeState::kIdle; return;
    case Kind::kActivate: node->state = fleet::NodeState::kActive; return;
    case Kind::kRetire: node->state = fleet::NodeState::kRetired; return;
    case Kind::kAdd: return;
  }
}

}  // namespace mixserve::policy

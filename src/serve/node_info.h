// GET /v1/node: the machine-readable self-description a gateway routes by — which model this node
// serves, on which chip (catalogue entry, domestic or not) and devices, how ops are placed, how much
// it can hold (sequences, context, KV blocks) and how loaded it is right now.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/batch_scheduler.h"
#include "engine/model.h"
#include "fleet/catalogue.h"

namespace mixserve::serve {

/// Static facts about the node, fixed at start.
struct NodeFacts {
  std::string model_id;                 ///< id clients send as "model"
  std::string model_path;               ///< GGUF file
  std::optional<fleet::ChipSpec> chip;  ///< catalogue entry of the node's accelerator (or CPU), if known
  bool domestic = false;                ///< chip designed in `home_country`
  std::string home_country = "CN";      ///< country of the domestic-share rule
  std::string version;                  ///< mixserve version
  std::string hostname;                 ///< machine name
};

/// The /v1/node document: facts, devices, placement and op table of `model`, capacity and the
/// current load from `scheduler`, uptime and whether the node is draining.
nlohmann::json describe_node(const NodeFacts& facts, const Model& model, const BatchScheduler& scheduler,
                             double uptime_seconds, bool draining);

}  // namespace mixserve::serve

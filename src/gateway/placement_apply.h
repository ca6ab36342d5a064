// Applying a placement plan (`mixserve place --json` output) to the running fleet: the plan's replicas
// per node are sent as the desired state to each node's admin API (a `mixserve serve --models-dir`
// host, known to the gateway from its joined replicas), which loads and unloads replicas to match.
// Nodes the plan does not name are left alone. Gateway endpoint: POST /admin/placement/apply.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "gateway/upstream.h"

namespace mixserve::gateway {

/// node -> model -> replicas, summed over the plan's assignments. Throws kInvalidArgument when `plan`
/// is not a placement JSON (models[].name, models[].assignments[].node/replicas).
std::map<std::string, std::map<std::string, int64_t>> desired_replicas(const nlohmann::json& plan);

/// Sends each planned node its desired state (PUT <admin_url>/admin/models with `node_token`), one
/// node after the other; returns {"nodes": [{"node", "admin_url", "status", "actions"|"error"}]}.
/// Nodes without a known admin API get status "unreachable".
nlohmann::json apply_plan(const std::map<std::string, std::map<std::string, int64_t>>& desired,
                          const UpstreamSet& upstreams, const std::string& node_token, double timeout_s);

}  // namespace mixserve::gateway

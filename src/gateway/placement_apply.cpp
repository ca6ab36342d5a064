#include "gateway/placement_apply.h"

#include "common/error.h"
#include "common/log.h"
#include "gateway/cluster_config.h"
#include "serve/http_client.h"

namespace mixserve::gateway {

using nlohmann::json;

std::map<std::string, std::map<std::string, int64_t>> desired_replicas(const json& plan) {
  std::map<std::string, std::map<std::string, int64_t>> out;
  if (!plan.is_object() || !plan.contains("models") || !plan["models"].is_array()) {
    fail(ErrorCode::kInvalidArgument, "not a placement plan: expected the JSON of `mixserve place --json` (models[])");
  }
  for (const auto& m : plan["models"]) {
    if (!m.is_object() || !m.contains("name") || !m["name"].is_string() || !m.contains("assignments") ||
        !m["assignments"].is_array()) {
      fail(ErrorCode::kInvalidArgument, "not a placement plan: every model needs a name and assignments[]");
    }
    const std::string model = m["name"];
    for (const auto& a : m["assignments"]) {
      if (!a.is_object() || !a.contains("node") || !a["node"].is_string() || !a.contains("replicas") ||
          !a["replicas"].is_number_integer() || a["replicas"].get<int64_t>() < 0) {
        fail(ErrorCode::kInvalidArgument, "not a placement plan: assignments of '", model,
             "' need a node and a replica count >= 0");
      }
      out[a["node"].get<std::string>()][model] += a["replicas"].get<int64_t>();
    }
  }
  // Nodes named with zero replicas of everything still get a (empty) desired state.
  return out;
}

json apply_plan(const std::map<std::string, std::map<std::string, int64_t>>& desired, const UpstreamSet& upstreams,
                const std::string& node_token, double timeout_s) {
  std::map<std::string, std::string> admin_of;  // node -> admin URL, from the joined replicas
  for (const auto& u : upstreams.all()) {
    const auto s = u->snapshot();
    if (!s.admin_url.empty()) admin_of[s.node] = s.admin_url;
  }
  json nodes = json::array();
  for (const auto& [node, models] : desired) {
    json entry = {{"node", node}, {"desired", models}};
    const auto admin = admin_of.find(node);
    if (admin == admin_of.end()) {
      entry["status"] = "unreachable";
      entry["error"] = "no joined replica of node '" + node + "' told the gateway its admin API";
      nodes.push_back(entry);
      continue;
    }
    entry["admin_url"] = admin->second;
    try {
      const Endpoint ep = parse_http_url(admin->second);
      serve::HttpClient client(ep.host, ep.port, timeout_s);
      serve::HttpHeaders headers;
      if (!node_token.empty()) headers.emplace_back("authorization", "Bearer " + node_token);
      const auto r = client.request("PUT", "/admin/models", json({{"models", models}}).dump(), headers);
      const json reply = json::parse(r.body, nullptr, false);
      entry["status"] = r.status == 200 ? "applied" : "refused";
      if (r.status == 200) {
        entry["actions"] = reply.value("actions", json::array());
        entry["replicas"] = reply.value("replicas", json::array());
      } else {
        entry["error"] = "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 300);
      }
    } catch (const std::exception& e) {
      entry["status"] = "unreachable";
      entry["error"] = e.what();
    }
    log_info("gateway: placement on node '", node, "': ", entry["status"].get<std::string>());
    nodes.push_back(entry);
  }
  return {{"nodes", nodes}};
}

}  // namespace mixserve::gateway

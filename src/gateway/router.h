// Routing: ranks the upstreams that may take a request by one score (docs/gateway.md, "Routing"):
//   score = speed_w * speed / fastest - queue_w * in_flight / capacity - kv_w * kv_use + affinity_w * [prefix home]
// where speed is the upstream's moving average of decode tokens/s (an upstream not yet measured counts
// as the fastest, so it gets tried), capacity is what the node reports (else its max_in_flight), and
// the prefix home is the upstream the prompt's first characters hash to (rendezvous hashing, so a
// prompt prefix keeps landing where its KV cache is, and moves only when that upstream leaves).
// The quota controller's verdict narrows the candidates to domestic ones when foreign is not allowed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway/cluster_config.h"
#include "gateway/quota_controller.h"
#include "gateway/upstream.h"

namespace mixserve::gateway {

/// One scored upstream.
struct ScoredUpstream {
  std::shared_ptr<Upstream> upstream;  ///< the upstream
  UpstreamSnapshot state;              ///< its state when scored
  double score = 0;                    ///< higher is better
  double speed_term = 0;               ///< speed / fastest (1 when unmeasured)
  double load_term = 0;                ///< in_flight / capacity
  double kv_term = 0;                  ///< kv_use
  bool affinity = false;               ///< the prompt prefix hashes here
  bool allowed = true;                 ///< the quota allows it
  bool available = true;               ///< healthy, not draining, under its cap
};

/// Ranking of one request.
struct RouteRanking {
  std::vector<ScoredUpstream> ranked;  ///< every upstream serving the model, best first; the usable
                                       ///< ones (allowed and available) come before the rest
  QuotaDecision quota;                 ///< what the quota controller said
  bool any_serves = false;             ///< some upstream (healthy or not) serves the model
  bool any_healthy = false;            ///< some upstream serving the model is not failed/draining
  /// The first usable upstream, or nullptr.
  const ScoredUpstream* best() const;
  /// One line: the choice and why (for the x-mixserve-route header).
  std::string summary() const;
  /// Everything, for GET /v1/route/explain.
  nlohmann::json to_json() const;
};

/// The affinity key of a request: the first `chars` characters of its prompt (or of its messages).
std::string affinity_key(const nlohmann::json& body, size_t chars);

/// Scores the upstreams of `all` that serve `model` under `weights`, with `quota`'s verdict.
RouteRanking rank_upstreams(const std::vector<std::shared_ptr<Upstream>>& all, const std::string& model,
                            const std::string& key, const RoutingWeights& weights, const QuotaDecision& quota,
                            Clock::time_point now);

}  // namespace mixserve::gateway

// Active health checks: every interval, each upstream's GET /health (any OpenAI-compatible engine
// that has one), then GET /v1/node (mixserve nodes: models, capacity, queue, KV use) or, failing that,
// GET /v1/models. A failed check counts toward the upstream's circuit breaker like a failed request;
// a passing one closes it. Joined nodes that stop sending heartbeats are removed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "gateway/cluster_config.h"
#include "gateway/upstream.h"

namespace mixserve::gateway {

/// Checks one upstream now; returns "" when healthy, else the reason. Updates its state.
std::string check_upstream(Upstream& upstream, const HealthConfig& health);

/// The checking thread.
class HealthChecker {
 public:
  /// Checks `upstreams` every `config.health.interval_s`; `on_removed` is told of each joined node
  /// removed for missing heartbeats. Starts at once; the first round runs immediately.
  HealthChecker(const ClusterConfig& config, UpstreamSet& upstreams, std::function<void(const std::string&)> on_removed);
  /// Stops the thread.
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  /// Runs a round now and waits for it (tests, start-up).
  void check_now();

 private:
  void round();
  void loop();

  const ClusterConfig& config_;
  UpstreamSet& upstreams_;
  std::function<void(const std::string&)> on_removed_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::mutex round_mutex_;  // one round at a time
  std::thread thread_;
};

}  // namespace mixserve::gateway

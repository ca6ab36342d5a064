// The gateway: one OpenAI-compatible front door over the fleet's upstreams (static ones from the
// configuration and mixserve nodes that join at run time). It routes each request by score under the
// quota controller, retries failures on other upstreams, checks health, counts usage into the ledger,
// and answers the fleet and admin endpoints. Endpoints: docs/gateway.md.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "gateway/cluster_config.h"
#include "gateway/gateway_metrics.h"
#include "gateway/health_checker.h"
#include "gateway/quota_controller.h"
#include "gateway/tenants.h"
#include "gateway/upstream.h"
#include "gateway/upstream_client.h"
#include "gateway/usage_recorder.h"
#include "policy/policy.h"
#include "serve/api_keys.h"
#include "serve/http_server.h"

namespace mixserve::gateway {

class ProxyCall;

/// A running gateway.
class Gateway {
 public:
  /// Prepares a gateway: loads the catalogue (with overrides), fleet, policy, key and token files and
  /// the static upstreams. Throws kInvalidArgument / kNotFound naming the file at fault.
  explicit Gateway(ClusterConfig config);
  /// Shuts down if still running.
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  /// Runs a first health round, starts the checks, usage recording and the front door; returns its port.
  uint16_t start();
  /// Stops accepting, lets requests in flight finish for up to `drain_timeout_s`, then stops.
  void shutdown(double drain_timeout_s);
  /// Proxied requests in flight.
  size_t in_flight() const;
  /// Policy rules the quota controller does not keep, with why (for the start-up log).
  const std::vector<std::string>& ignored_rules() const { return ignored_rules_; }

 private:
  void handle(const std::shared_ptr<serve::HttpExchange>& exchange);
  void proxy(const std::shared_ptr<serve::HttpExchange>& exchange, const std::string& route);
  void join(const std::shared_ptr<serve::HttpExchange>& exchange);
  void admin(const std::shared_ptr<serve::HttpExchange>& exchange);
  void explain(const std::shared_ptr<serve::HttpExchange>& exchange);
  nlohmann::json fleet_json();
  nlohmann::json models_json();
  /// The tenant of the request (its name), "" when tenants are off; nullopt after replying 401.
  std::optional<std::string> authenticate(serve::HttpExchange& exchange, const std::string& route);
  void reply_json(serve::HttpExchange& exchange, const std::string& route, int status, const nlohmann::json& body,
                  serve::HttpHeaders headers = {});
  void reply_error(serve::HttpExchange& exchange, const std::string& route, int status, const std::string& message,
                   const std::string& type, const std::string& code = "", serve::HttpHeaders headers = {});
  std::shared_ptr<Upstream> make_upstream(UpstreamConfig config, bool joined) const;
  void sample_busy_time();

  ClusterConfig config_;
  fleet::Catalogue catalogue_;
  std::optional<fleet::Fleet> fleet_;
  std::optional<policy::Policy> policy_;
  std::string home_country_;
  std::vector<std::string> ignored_rules_;
  std::unique_ptr<QuotaController> quota_;
  UpstreamSet upstreams_;
  std::unique_ptr<GatewayMetrics> metrics_;
  std::unique_ptr<Tenants> tenants_;
  serve::ApiKeys admin_keys_;
  serve::ApiKeys join_keys_;
  std::string node_admin_token_;  // sent to nodes' admin APIs
  std::unique_ptr<UsageRecorder> usage_;
  std::unique_ptr<UpstreamClient> client_;
  std::unique_ptr<HealthChecker> health_;
  std::unique_ptr<serve::HttpServer> http_;
  std::thread sampler_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> draining_{false};
  std::atomic<int> background_{0};  // admin work on threads of its own (placement apply)
  mutable std::mutex calls_mutex_;
  std::map<uint64_t, std::shared_ptr<ProxyCall>> calls_;
  uint64_t next_call_ = 1;
  bool running_ = false;
};

}  // namespace mixserve::gateway

// The gateway's Prometheus metrics: requests by route and status, the outcome of every proxied
// request, attempts per upstream, retries, tokens served per upstream and origin, quota decisions,
// routing time and whole-request time, and per-upstream health, load and the domestic share.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "gateway/quota_controller.h"
#include "gateway/upstream.h"
#include "serve/metrics.h"

namespace mixserve::gateway {

/// Registers and updates the gateway metrics on its own registry.
class GatewayMetrics {
 public:
  /// Families registered; `quota` is read when scraped (must outlive this).
  explicit GatewayMetrics(QuotaController& quota);

  /// One front-door request by route and status.
  void request(std::string_view route, int status);
  /// The final outcome of one proxied request: ok, client_error, stream_error, no_upstream,
  /// rejected_quota, rejected_capacity, rejected_rate, cancelled, failed.
  void outcome(std::string_view outcome);
  /// One attempt on an upstream: ok, error, busy (429 from the node).
  void attempt(const UpstreamSnapshot& upstream, std::string_view result);
  /// A retry on another upstream.
  void retry() { retries_.inc(); }
  /// Tokens served by an upstream.
  void tokens(const UpstreamSnapshot& upstream, double tokens);
  /// A quota decision: any, domestic_only, audit_violation.
  void quota_decision(std::string_view decision);
  /// Seconds from request arrival to the upstream send.
  void routing_time(double seconds) { routing_.observe(seconds); }
  /// Seconds from request arrival to the end of the reply.
  void request_time(double seconds) { request_seconds_.observe(seconds); }
  /// Registers the per-upstream gauges of `upstream` once; they read the upstream of that name in
  /// `set` (which must outlive this) when scraped.
  void watch(const UpstreamSet& set, const std::shared_ptr<Upstream>& upstream);
  /// The text exposition.
  std::string render() const { return registry_.render(); }

 private:
  serve::MetricsRegistry registry_;
  serve::Counter& retries_;
  serve::Histogram& routing_;
  serve::Histogram& request_seconds_;
  std::mutex mutex_;
  std::set<std::string> watched_;
};

}  // namespace mixserve::gateway

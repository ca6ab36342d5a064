#include "gateway/gateway_metrics.h"

#include <cmath>

namespace mixserve::gateway {

namespace {

serve::MetricLabels upstream_labels(const UpstreamSnapshot& u) {
  return {{"upstream", u.name}, {"chip", u.chip}, {"origin", u.domestic ? "domestic" : "foreign"}};
}

}  // namespace

GatewayMetrics::GatewayMetrics(QuotaController& quota)
    : retries_(registry_.counter("mixserve_gateway_retries_total",
                                 "Requests sent again to another upstream after a failure before the first byte")),
      routing_(registry_.histogram("mixserve_gateway_routing_seconds",
                                   "Time from a request's arrival to its send to an upstream",
                                   serve::exponential_buckets(1e-5, 2, 20))),
      request_seconds_(registry_.histogram("mixserve_gateway_request_seconds",
                                           "Time from a request's arrival to the end of its reply",
                                           serve::latency_buckets())) {
  for (const auto& s : quota.state(QuotaController::Clock::now())) {
    const std::string rule = s.rule.name;
    registry_.gauge_fn("mixserve_gateway_domestic_share",
                       "Domestic share of the rule's basis over the quota window (NaN when nothing counted)",
                       {{"rule", rule}, {"basis", std::string(policy::basis_name(s.rule.basis))}}, [&quota, rule] {
                         for (const auto& st : quota.state(QuotaController::Clock::now())) {
                           if (st.rule.name == rule) return st.share ? *st.share : std::nan("");
                         }
                         return std::nan("");
                       });
    registry_.gauge("mixserve_gateway_domestic_share_threshold", "Threshold of the rule", {{"rule", rule}})
        .set(s.rule.threshold);
  }
}

void GatewayMetrics::request(std::string_view route, int status) {
  registry_.counter("mixserve_gateway_requests_total", "Front-door HTTP requests by route and status",
                    {{"route", std::string(route)}, {"status", std::to_string(status)}})
      .inc();
}

void GatewayMetrics::outcome(std::string_view outcome) {
  registry_.counter("mixserve_gateway_outcomes_total", "Final outcome of every proxied request",
                    {{"outcome", std::string(outcome)}})
      .inc();
}

void GatewayMetrics::attempt(const UpstreamSnapshot& upstream, std::string_view result) {
  auto labels = upstream_labels(upstream);
  labels.emplace_back("result", std::string(result));
  registry_.counter("mixserve_gateway_upstream_attempts_total", "Attempts sent to each upstream by result", labels).inc();
}

void GatewayMetrics::tokens(const UpstreamSnapshot& upstream, double tokens) {
  if (tokens <= 0) return;
  registry_.counter("mixserve_gateway_tokens_total", "Tokens (prompt + completion) served by each upstream",
                    upstream_labels(upstream))
      .inc(tokens);
}

void GatewayMetrics::quota_decision(std::string_view decision) {
  registry_.counter("mixserve_gateway_quota_decisions_total",
                    "Quota controller verdicts: any origin, domestic only, audit violation",
                    {{"decision", std::string(decision)}})
      .inc();
}

void GatewayMetrics::watch(const UpstreamSet& set, const std::shared_ptr<Upstream>& upstream) {
  std::lock_guard lock(mutex_);
  if (!watched_.insert(upstream->name()).second) return;
  const auto labels = upstream_labels(upstream->snapshot());
  const std::string name = upstream->name();
  registry_.gauge_fn("mixserve_gateway_upstream_healthy", "1 when the upstream takes traffic (healthy, circuit closed)",
                     labels, [&set, name] {
                       const auto u = set.find(name);
                       if (!u) return 0.0;
                       const auto s = u->snapshot();
                       return s.healthy && s.circuit == Circuit::kClosed && !s.draining ? 1.0 : 0.0;
                     });
  registry_.gauge_fn("mixserve_gateway_upstream_in_flight", "Requests the gateway has open on the upstream", labels,
                     [&set, name] {
                       const auto u = set.find(name);
                       return u ? static_cast<double>(u->snapshot().in_flight) : 0.0;
                     });
}

}  // namespace mixserve::gateway

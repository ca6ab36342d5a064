// One proxied completion or chat request: route it (quota verdict, then the best-scored upstream),
// send it, and pass the reply back with the x-mixserve-* headers. A failure before any byte reached
// the client (connection refused or lost, a 5xx, a 429 from a full node) is retried on another
// upstream with exponential backoff, up to the configured attempts; a failure in the middle of a
// stream ends it with an error event and [DONE], never a silent cut. When no allowed upstream has
// room the request waits (up to the quota's queue timeout) and then gets 429. Every request ends
// with one outcome, counted in metrics and logged.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "gateway/cluster_config.h"
#include "gateway/gateway_metrics.h"
#include "gateway/quota_controller.h"
#include "gateway/router.h"
#include "gateway/upstream.h"
#include "gateway/upstream_client.h"
#include "gateway/usage_recorder.h"
#include "serve/http_client.h"
#include "serve/http_server.h"

namespace mixserve::gateway {

/// What every proxied request shares; all members outlive the calls.
struct ProxyContext {
  const ClusterConfig* config = nullptr;
  UpstreamSet* upstreams = nullptr;
  UpstreamClient* client = nullptr;
  QuotaController* quota = nullptr;
  GatewayMetrics* metrics = nullptr;
  UsageRecorder* usage = nullptr;  ///< nullptr when no ledger
};

/// One request in flight.
class ProxyCall : public std::enable_shared_from_this<ProxyCall> {
 public:
  /// A call for `exchange` whose parsed body is `body`, on route `route` ("/v1/completions" or
  /// "/v1/chat/completions"), from `tenant` (for logs). `on_end` runs once when it is over.
  ProxyCall(ProxyContext context, std::shared_ptr<serve::HttpExchange> exchange, std::string route,
            nlohmann::json body, std::string tenant, std::function<void()> on_end);

  /// Starts routing.
  void start();

 private:
  void route();
  void send(const ScoredUpstream& chosen, const RouteRanking& ranking);
  void on_header(int status, const serve::HttpHeaders& headers);
  bool on_body(std::string_view data);
  void on_done(const std::string& error, bool got_header);
  void forward_event(const std::string& data);
  void retry_or_fail(const std::string& why);
  void reply_error(int status, const std::string& message, const std::string& type, const std::string& code,
                   serve::HttpHeaders headers = {});
  void finish(const std::string& outcome, int status, double served_tokens);
  /// The accounting of finish (quota, metrics, log), once. The paths that send a reply's last bytes
  /// call it first, so that a client holding its reply finds the request counted.
  void record_end(const std::string& outcome, int status, double served_tokens);
  serve::HttpHeaders route_headers() const;
  double seconds_since_arrival() const;

  ProxyContext ctx_;
  std::shared_ptr<serve::HttpExchange> exchange_;
  std::string route_;
  nlohmann::json body_;
  std::string tenant_;
  std::function<void()> on_end_;
  std::string model_;
  bool stream_ = false;
  bool client_wants_usage_ = false;
  std::string upstream_body_;
  std::string key_;
  double est_tokens_ = 0;
  Clock::time_point arrival_;

  // State of the current attempt: one thread at a time touches it (routing and the upstream call's
  // callbacks follow each other through the client's executor).
  std::set<std::string> tried_;
  int attempts_ = 0;
  std::string last_error_;
  std::shared_ptr<Upstream> upstream_;
  UpstreamSnapshot chosen_;
  std::string route_summary_;
  std::mutex call_mutex_;  // call_ is also read by the client-disconnect callback (front-door thread)
  std::shared_ptr<UpstreamCall> call_;
  uint64_t ticket_ = 0;
  int status_ = 0;
  serve::HttpHeaders upstream_headers_;
  std::string collected_;
  bool streaming_ = false;   // stream headers were sent to the client
  bool saw_done_ = false;
  bool saw_error_event_ = false;
  serve::SseParser sse_;
  double prompt_tokens_ = 0;
  double completion_tokens_ = 0;
  double chunks_ = 0;
  bool usage_seen_ = false;
  Clock::time_point sent_at_{};
  Clock::time_point first_data_at_{};
  bool ended_ = false;
  bool recorded_ = false;
};

}  // namespace mixserve::gateway

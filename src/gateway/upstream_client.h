// Asynchronous HTTP/1.1 client for the gateway's upstream calls, on Boost.Beast: a fixed pool of I/O
// threads, keep-alive connections pooled per upstream, a deadline on connecting, on the response
// header and between body pieces, and the body passed on as it arrives (for streaming). A pooled
// connection the upstream closed meanwhile is replaced transparently when nothing was received yet.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/cluster_config.h"
#include "serve/http_server.h"

namespace mixserve::gateway {

/// One request to an upstream.
struct UpstreamRequest {
  Endpoint endpoint;                 ///< where to send it
  std::string method = "POST";       ///< HTTP method
  std::string target;                ///< "/v1/completions"
  std::string body;                  ///< request body
  serve::HttpHeaders headers;        ///< extra header fields
  double connect_timeout_s = 2;      ///< to connect
  double first_byte_timeout_s = 300; ///< from sending to the response header
  double idle_timeout_s = 120;       ///< between body pieces
};

/// Callbacks of one request; they run on the client's I/O threads, one at a time.
struct UpstreamHandler {
  /// The response header arrived.
  std::function<void(int status, const serve::HttpHeaders& headers)> on_header;
  /// A piece of the body; return false to stop (the connection is closed).
  std::function<bool(std::string_view data)> on_body;
  /// Called exactly once at the end: `error` is empty on success; `got_header` says whether
  /// on_header ran.
  std::function<void(const std::string& error, bool got_header)> on_done;
};

/// A request in progress; cancel() closes its connection (on_done then reports the error).
class UpstreamCall {
 public:
  virtual ~UpstreamCall() = default;
  /// Stops the request from any thread.
  virtual void cancel() = 0;
};

/// The client.
class UpstreamClient {
 public:
  /// Starts `threads` I/O threads.
  explicit UpstreamClient(int threads);
  /// Stops the threads (calls in flight end with an error first).
  ~UpstreamClient();
  UpstreamClient(const UpstreamClient&) = delete;
  UpstreamClient& operator=(const UpstreamClient&) = delete;

  /// Starts a request.
  std::shared_ptr<UpstreamCall> send(UpstreamRequest request, UpstreamHandler handler);
  /// Runs `fn` on an I/O thread after `delay_s` seconds (retry backoff, queue waits).
  void after(double delay_s, std::function<void()> fn);
  /// Idle pooled connections (all upstreams).
  size_t idle_connections() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace mixserve::gateway

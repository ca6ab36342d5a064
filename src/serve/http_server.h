// HTTP/1.1 server transport on Boost.Beast: keep-alive, pipelining-safe request reading, chunked
// streaming replies, and the limits a public endpoint needs (body and header size, a deadline for
// each request against slow clients, a cap on connections, a write deadline against clients that
// stop reading). A fixed pool of I/O threads serves every connection asynchronously; the handler
// may reply at once or later from any thread (e.g. the engine thread), and is told when the client
// goes away before the reply is complete. Knows nothing of the API it carries.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mixserve::serve {

namespace detail {
class Connection;
}

/// Header fields as (name, value) pairs; names lower-case in requests.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

/// A complete request.
struct HttpRequest {
  std::string method;      ///< "GET", "POST", ...
  std::string target;      ///< request target as sent ("/v1/models?x=1")
  std::string path;        ///< target without the query string
  HttpHeaders headers;     ///< fields, names lower-cased
  std::string body;        ///< body bytes (de-chunked)
  std::string remote;      ///< peer "address:port"

  /// Value of the first field named `name` (lower-case), or "" when absent.
  std::string header(std::string_view name) const;
};

/// The reply channel of one request. Thread-safe; every call is queued onto the connection's strand.
/// Reply exactly once: respond(), or begin_stream() + write()* + end_stream(). An exchange dropped
/// without a reply answers 500, so a handler bug cannot hang a client.
class HttpExchange {
 public:
  /// Used by the server.
  HttpExchange(std::shared_ptr<detail::Connection> connection, uint64_t serial, HttpRequest request,
               std::shared_ptr<std::atomic<bool>> gone);
  ~HttpExchange();
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;

  /// The request.
  const HttpRequest& request() const { return request_; }
  /// A whole reply with Content-Length.
  void respond(int status, std::string content_type, std::string body, HttpHeaders headers = {});
  /// Starts a chunked reply (headers are sent at once).
  void begin_stream(int status, std::string content_type, HttpHeaders headers = {});
  /// Sends one piece of a streamed reply (empty pieces are skipped).
  void write(std::string data);
  /// Ends a streamed reply.
  void end_stream();
  /// Calls `callback` once, on an I/O thread, if the client disconnects (or a write fails or times
  /// out) before the reply is complete; at once if that already happened. Replaces an earlier callback.
  void on_disconnect(std::function<void()> callback);
  /// Whether the client is known to be gone.
  bool disconnected() const { return gone_->load(); }

 private:
  std::shared_ptr<detail::Connection> connection_;
  uint64_t serial_;
  HttpRequest request_;
  std::shared_ptr<std::atomic<bool>> gone_;
};

/// Called on an I/O thread for every complete request.
using HttpHandler = std::function<void(std::shared_ptr<HttpExchange>)>;

/// Limits and addresses of a server.
struct HttpServerOptions {
  std::string host = "127.0.0.1";          ///< address to bind
  uint16_t port = 8080;                    ///< port to bind (0 = any free port)
  int io_threads = 2;                      ///< I/O threads serving all connections
  size_t max_body_bytes = 8u << 20;        ///< larger bodies get 413
  size_t max_header_bytes = 16u << 10;     ///< larger header blocks get 431
  double request_timeout_s = 30;           ///< a whole request (or keep-alive idle time) must arrive within this
  double write_timeout_s = 60;             ///< a reply write the client does not take within this closes the connection
  size_t max_connections = 1024;           ///< further connections get 503 and are closed
  std::string server_name = "mixserve";    ///< Server header
  /// Body of transport-level error replies (400, 408, 413, 431, 500, 503) from status and message.
  std::function<std::string(int, const std::string&)> error_body;
};

/// An HTTP/1.1 server.
class HttpServer {
 public:
  /// A server that passes requests to `handler` (not started).
  HttpServer(HttpServerOptions options, HttpHandler handler);
  /// Stops the server (closes every connection) if still running.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds, listens and starts the I/O threads; returns the bound port. Throws kUnavailable when the
  /// address cannot be bound, kInvalidArgument for a bad host.
  uint16_t start();
  /// Closes the listening socket; connections already open keep being served.
  void stop_accepting();
  /// From now on every reply carries Connection: close, so idle keep-alive connections wind down.
  void set_closing();
  /// Closes all connections (in-flight replies are cut), stops and joins the I/O threads.
  void stop();
  /// Open connections.
  size_t connections() const;
  /// Requests received whose reply is not complete yet.
  size_t in_flight() const;
  /// The bound port (after start()).
  uint16_t port() const { return port_; }

 private:
  struct State;
  std::shared_ptr<State> state_;
  uint16_t port_ = 0;
};

}  // namespace mixserve::serve

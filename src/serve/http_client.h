// A small blocking HTTP/1.1 client on Boost.Beast, with a deadline on every network operation:
// keep-alive connection reuse, whole or streamed response bodies, and a Server-Sent Events parser.
// Used by the serving benchmark, the end-to-end tests and (later) the gateway's upstream calls.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "serve/http_server.h"

namespace mixserve::serve {

/// A response as received.
struct HttpResponse {
  int status = 0;          ///< status code
  HttpHeaders headers;     ///< fields, names lower-cased
  std::string body;        ///< body (empty when streamed to a callback)

  /// Value of the first field named `name` (lower-case), or "".
  std::string header(std::string_view name) const;
};

/// One connection to one server; not thread-safe (use one client per thread).
class HttpClient {
 public:
  /// A client of host:port; each connect, write and read must finish within `timeout_s`.
  HttpClient(std::string host, uint16_t port, double timeout_s = 60);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Sends a request and reads the whole response. Reuses the open connection, reconnecting once
  /// when the server closed it. Throws kUnavailable (cannot connect, connection lost, timeout).
  HttpResponse request(const std::string& method, const std::string& target, const std::string& body = "",
                       const HttpHeaders& headers = {});
  /// Same, but passes body bytes to `on_data` as they arrive (the returned body stays empty);
  /// `on_data` returning false stops reading and closes the connection.
  HttpResponse request_streamed(const std::string& method, const std::string& target, const std::string& body,
                                const HttpHeaders& headers, const std::function<bool(std::string_view)>& on_data);
  /// Closes the connection (the next request opens a new one).
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Splits a text/event-stream body into events, however the bytes are cut.
class SseParser {
 public:
  /// Feeds bytes; calls `on_event` with the data of each complete event (data lines joined by "\n").
  void feed(std::string_view bytes, const std::function<void(const std::string&)>& on_event);

 private:
  std::string line_;
  std::string data_;
  bool has_data_ = false;
};

}  // namespace mixserve::serve

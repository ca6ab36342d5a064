// One client connection of the HTTP server (private to http_server.cpp and http_connection.cpp):
// reads requests one at a time, hands each to the handler as an HttpExchange, writes the reply
// (whole or chunked), watches for disconnects while the reply is pending, and loops for keep-alive.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "serve/http_server.h"

namespace mixserve::serve::detail {

/// What a connection shares with its server. Outlives every connection and exchange (the server
/// waits for them in stop()).
struct ServerContext {
  HttpServerOptions options;
  HttpHandler handler;
  std::atomic<size_t> connections{0};   // Connection objects alive
  std::atomic<size_t> in_flight{0};     // requests handed out whose reply is not complete
  std::atomic<size_t> exchanges{0};     // HttpExchange objects alive
  std::atomic<bool> closing{false};     // replies carry Connection: close
  std::mutex mutex;                     // guards open
  std::vector<std::weak_ptr<Connection>> open;
};

/// A connection; lives while an I/O operation or an exchange refers to it.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(boost::asio::ip::tcp::socket socket, ServerContext& context);
  ~Connection();

  /// Starts reading the first request.
  void start();
  /// Closes the socket (from any thread).
  void close();
  /// Rejects the connection with a 503 and closes it (server at its connection limit).
  void reject_busy();

  // Called by HttpExchange (any thread): queued onto the strand.
  // `serial` names the exchange; calls for an exchange that is no longer current are ignored.
  void respond(uint64_t serial, int status, std::string content_type, std::string body, HttpHeaders headers);
  void begin_stream(uint64_t serial, int status, std::string content_type, HttpHeaders headers);
  void write_chunk(uint64_t serial, std::string data);
  void end_stream(uint64_t serial);
  void set_disconnect_callback(uint64_t serial, std::function<void()> callback);
  void abandoned(uint64_t serial);  // the exchange was destroyed; replies 500 if it never replied

 private:
  enum class Phase { kReading, kHandling, kStreaming, kClosed };

  void read_request();
  void on_header(boost::beast::error_code ec);
  void on_request(boost::beast::error_code ec);
  void fail_request(int status, const std::string& message);
  void watch();
  void on_watch(boost::beast::error_code ec, size_t bytes);
  void send(std::string bytes, bool last);
  void write_next();
  void on_written(boost::beast::error_code ec);
  void reply_complete();
  void lost();
  /// Status line and header block; decides whether the connection closes after this reply.
  std::string head(int status, const std::string& content_type, const HttpHeaders& headers, bool chunked,
                   size_t length);

  boost::beast::tcp_stream stream_;
  ServerContext& context_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::string remote_;
  Phase phase_ = Phase::kReading;
  bool keep_alive_ = false;
  bool watching_ = false;        // a disconnect-watch read is pending
  bool writing_ = false;         // a write is pending
  bool reply_done_ = false;      // the last byte of the reply is queued
  bool close_after_ = false;     // close once the outbox is written
  bool reply_started_ = false;   // the status line of the current reply is queued
  bool head_only_ = false;       // HEAD request: headers without the body
  bool counted_ = false;         // the current request counts in ServerContext::in_flight
  std::deque<std::string> outbox_;
  std::string writing_buffer_;   // bytes of the write in progress
  uint64_t serial_ = 0;                        // serial of the current exchange
  std::shared_ptr<std::atomic<bool>> gone_;    // the current exchange's disconnected flag
  std::function<void()> on_disconnect_;
  std::atomic<bool> closed_{false};
};

}  // namespace mixserve::serve::detail

#include "serve/http_connection.h"

#include <algorithm>
#include <cctype>
#include <chrono>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>

#include "common/error.h"
#include "common/log.h"

namespace mixserve::serve {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

HttpExchange::HttpExchange(std::shared_ptr<detail::Connection> connection, uint64_t serial, HttpRequest request,
                           std::shared_ptr<std::atomic<bool>> gone)
    : connection_(std::move(connection)), serial_(serial), request_(std::move(request)), gone_(std::move(gone)) {}

HttpExchange::~HttpExchange() { connection_->abandoned(serial_); }

void HttpExchange::respond(int status, std::string content_type, std::string body, HttpHeaders headers) {
  connection_->respond(serial_, status, std::move(content_type), std::move(body), std::move(headers));
}

void HttpExchange::begin_stream(int status, std::string content_type, HttpHeaders headers) {
  connection_->begin_stream(serial_, status, std::move(content_type), std::move(headers));
}

void HttpExchange::write(std::string data) {
  if (!data.empty()) connection_->write_chunk(serial_, std::move(data));
}

void HttpExchange::end_stream() { connection_->end_stream(serial_); }

void HttpExchange::on_disconnect(std::function<void()> callback) {
  connection_->set_disconnect_callback(serial_, std::move(callback));
}

namespace detail {
namespace {

constexpr size_t kWatchBufferLimit = 64u << 10;  // pipelined bytes kept while a reply is pending
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::chrono::milliseconds millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::max(0.001, seconds) * 1000.0));
}

std::string lower(boost::beast::string_view s) {
  std::string out(s.data(), s.size());
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Header values come from our own code, but a CR or LF would split the header block: drop them.
std::string header_safe(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c != '\r' && c != '\n') out += c;
  }
  return out;
}

std::string hex(size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  do {
    out.insert(out.begin(), kDigits[n % 16]);
    n /= 16;
  } while (n != 0);
  return out;
}

}  // namespace

Connection::Connection(net::ip::tcp::socket socket, ServerContext& context)
    : stream_(std::move(socket)), context_(context) {
  ++context_.connections;
  beast::error_code ec;
  // Streamed tokens are small writes: without this, Nagle's algorithm holds each one back until the
  // client acknowledges the previous one (up to its 40 ms delayed ACK).
  stream_.socket().set_option(net::ip::tcp::no_delay(true), ec);
  const auto endpoint = stream_.socket().remote_endpoint(ec);
  if (!ec) remote_ = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

Connection::~Connection() { --context_.connections; }

void Connection::start() {
  net::post(stream_.get_executor(), [self = shared_from_this()] { self->read_request(); });
}

void Connection::close() {
  net::post(stream_.get_executor(), [self = shared_from_this()] { self->lost(); });
}

void Connection::reject_busy() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    self->fail_request(503, "the server has too many open connections; retry later");
  });
}

void Connection::read_request() {
  if (closed_) return;
  phase_ = Phase::kReading;
  parser_.emplace();
  parser_->body_limit(context_.options.max_body_bytes);
  parser_->header_limit(static_cast<std::uint32_t>(context_.options.max_header_bytes));
  stream_.expires_after(millis(context_.options.request_timeout_s));
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
}

void Connection::on_header(beast::error_code ec) {
  if (!ec && lower(parser_->get()[http::field::expect]) == "100-continue" && !parser_->is_done()) {
    net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                     [self = shared_from_this()](beast::error_code wec, size_t) {
                       if (wec) return self->lost();
                       http::async_read(self->stream_, self->buffer_, *self->parser_,
                                        [self](beast::error_code rec, size_t) { self->on_request(rec); });
                     });
    return;
  }
  if (ec) return on_request(ec);
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code rec, size_t) { self->on_request(rec); });
}

void Connection::on_request(beast::error_code ec) {
  if (closed_) return;
  if (ec) {
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted) return lost();
    // A request (or keep-alive idle time) past its deadline: the stream has closed the socket already.
    if (ec == beast::error::timeout) return lost();
    if (ec == http::error::body_limit) {
      return fail_request(413, str_cat("the request body is larger than the limit of ", context_.options.max_body_bytes,
                                       " bytes"));
    }
    if (ec == http::error::header_limit) {
      return fail_request(431, str_cat("the request header block is larger than the limit of ",
                                       context_.options.max_header_bytes, " bytes"));
    }
    if (ec == http::error::partial_message) return lost();
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      return fail_request(400, "malformed HTTP request: " + ec.message());
    }
    return lost();
  }
  const auto& msg = parser_->get();
  HttpRequest request;
  request.method = std::string(msg.method_string().data(), msg.method_string().size());
  request.target = std::string(msg.target().data(), msg.target().size());
  request.path = request.target.substr(0, request.target.find('?'));
  for (const auto& field : msg) request.headers.emplace_back(lower(field.name_string()), std::string(field.value().data(), field.value().size()));
  request.body = msg.body();
  request.remote = remote_;
  keep_alive_ = msg.keep_alive();
  head_only_ = request.method == "HEAD";

  phase_ = Phase::kHandling;
  reply_started_ = false;
  reply_done_ = false;
  counted_ = true;
  ++context_.in_flight;
  ++serial_;
  gone_ = std::make_shared<std::atomic<bool>>(false);
  on_disconnect_ = nullptr;
  stream_.expires_never();
  ++context_.exchanges;
  auto exchange = std::make_shared<HttpExchange>(shared_from_this(), serial_, std::move(request), gone_);
  try {
    context_.handler(exchange);
  } catch (const std::exception& e) {
    log_error("HTTP handler failed: ", e.what());
    exchange->respond(500, "application/json", context_.options.error_body(500, "internal error: " + std::string(e.what())));
  }
  exchange.reset();
  watch();
}

void Connection::fail_request(int status, const std::string& message) {
  if (closed_) return;
  phase_ = Phase::kHandling;
  close_after_ = true;
  reply_started_ = true;
  const std::string body = context_.options.error_body(status, message);
  send(head(status, "application/json", {}, false, body.size()) + body, true);
}

void Connection::watch() {
  if (watching_ || closed_ || phase_ == Phase::kReading || buffer_.size() >= kWatchBufferLimit) return;
  watching_ = true;
  stream_.socket().async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->on_watch(ec, n);
  });
}

void Connection::on_watch(beast::error_code ec, size_t bytes) {
  watching_ = false;
  if (!ec) {
    buffer_.commit(bytes);  // pipelined bytes: parsed as the next request
    if (phase_ == Phase::kReading) return read_request();
    return watch();
  }
  if (closed_) return;
  if (ec == net::error::operation_aborted && phase_ == Phase::kReading) return read_request();  // see reply_complete
  lost();
}

void Connection::send(std::string bytes, bool last) {
  if (closed_) return;
  outbox_.push_back(std::move(bytes));
  if (last) reply_done_ = true;
  if (!writing_) write_next();
}

void Connection::write_next() {
  writing_buffer_.clear();
  for (std::string& piece : outbox_) writing_buffer_ += piece;
  outbox_.clear();
  writing_ = true;
  stream_.expires_after(millis(context_.options.write_timeout_s));
  net::async_write(stream_, net::buffer(writing_buffer_),
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->on_written(ec); });
}

void Connection::on_written(beast::error_code ec) {
  writing_ = false;
  if (closed_) return;
  if (ec) return lost();
  if (!outbox_.empty()) return write_next();
  if (reply_done_) reply_complete();
}

void Connection::reply_complete() {
  if (counted_) {
    counted_ = false;
    --context_.in_flight;
  }
  on_disconnect_ = nullptr;
  if (close_after_ || !keep_alive_) {
    beast::error_code ignored;
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    closed_ = true;
    phase_ = Phase::kClosed;
    stream_.socket().close(ignored);
    return;
  }
  phase_ = Phase::kReading;
  if (watching_) {
    beast::error_code ignored;
    stream_.socket().cancel(ignored);  // on_watch sees operation_aborted and reads the next request
    return;
  }
  read_request();
}

void Connection::lost() {
  if (closed_) return;
  closed_ = true;
  phase_ = Phase::kClosed;
  if (gone_) gone_->store(true);
  if (counted_) {
    counted_ = false;
    --context_.in_flight;
  }
  auto callback = std::move(on_disconnect_);
  on_disconnect_ = nullptr;
  beast::error_code ignored;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  stream_.socket().close(ignored);
  outbox_.clear();
  if (callback) callback();
}

std::string Connection::head(int status, const std::string& content_type, const HttpHeaders& headers, bool chunked,
                             size_t length) {
  if (!keep_alive_ || context_.closing.load()) close_after_ = true;
  std::string h = str_cat("HTTP/1.1 ", status, " ", std::string(http::obsolete_reason(static_cast<http::status>(status))),
                          "\r\nServer: ", context_.options.server_name, "\r\nContent-Type: ", header_safe(content_type),
                          "\r\n");
  h += chunked ? std::string("Transfer-Encoding: chunked\r\n") : str_cat("Content-Length: ", length, "\r\n");
  h += close_after_ ? "Connection: close\r\n" : "Connection: keep-alive\r\n";
  for (const auto& [name, value] : headers) h += header_safe(name) + ": " + header_safe(value) + "\r\n";
  return h + "\r\n";
}

void Connection::respond(uint64_t serial, int status, std::string content_type, std::string body, HttpHeaders headers) {
  net::post(stream_.get_executor(), [self = shared_from_this(), serial, status, content_type = std::move(content_type),
                                     body = std::move(body), headers = std::move(headers)] {
    if (serial != self->serial_ || self->phase_ != Phase::kHandling || self->reply_started_) return;
    self->reply_started_ = true;
    std::string bytes = self->head(status, content_type, headers, false, body.size());
    if (!self->head_only_) bytes += body;
    self->send(std::move(bytes), true);
  });
}

void Connection::begin_stream(uint64_t serial, int status, std::string content_type, HttpHeaders headers) {
  net::post(stream_.get_executor(), [self = shared_from_this(), serial, status, content_type = std::move(content_type),
                                     headers = std::move(headers)] {
    if (serial != self->serial_ || self->phase_ != Phase::kHandling || self->reply_started_) return;
    self->reply_started_ = true;
    self->phase_ = Phase::kStreaming;
    self->send(self->head(status, content_type, headers, true, 0), false);
  });
}

void Connection::write_chunk(uint64_t serial, std::string data) {
  net::post(stream_.get_executor(), [self = shared_from_this(), serial, data = std::move(data)] {
    if (serial != self->serial_ || self->phase_ != Phase::kStreaming || self->reply_done_) return;
    self->send(hex(data.size()) + "\r\n" + data + "\r\n", false);
  });
}

void Connection::end_stream(uint64_t serial) {
  net::post(stream_.get_executor(), [self = shared_from_this(), serial] {
    if (serial != self->serial_ || self->phase_ != Phase::kStreaming || self->reply_done_) return;
    self->send("0\r\n\r\n", true);
  });
}

void Connection::set_disconnect_callback(uint64_t serial, std::function<void()> callback) {
  net::post(stream_.get_executor(), [self = shared_from_this(), serial, callback = std::move(callback)]() mutable {
    if (serial != self->serial_) return;
    if (self->gone_ && self->gone_->load()) {
      callback();
      return;
    }
    if (self->phase_ == Phase::kHandling || self->phase_ == Phase::kStreaming) self->on_disconnect_ = std::move(callback);
  });
}

void Connection::abandoned(uint64_t serial) {
  --context_.exchanges;
  net::post(stream_.get_executor(), [self = shared_from_this(), serial] {
    if (serial != self->serial_ || self->closed_) return;
    if (self->phase_ == Phase::kHandling && !self->reply_started_) {
      log_error("HTTP handler dropped a request without replying: ", self->remote_);
      self->reply_started_ = true;
      const std::string body = self->context_.options.error_body(500, "the request was dropped without a reply");
      self->send(self->head(500, "application/json", {}, false, body.size()) + body, true);
    } else if (self->phase_ == Phase::kStreaming && !self->reply_done_) {
      self->send("0\r\n\r\n", true);
    }
  });
}

}  // namespace detail
}  // namespace mixserve::serve

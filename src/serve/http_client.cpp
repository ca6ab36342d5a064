#include "serve/http_client.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <limits>
#include <optional>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "common/error.h"

namespace mixserve::serve {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

struct HttpClient::Impl {
  std::string host;
  uint16_t port = 0;
  std::chrono::milliseconds timeout;
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  // Runs one asynchronous operation to completion under the deadline; throws on error.
  template <typename Start>
  void run(const char* what, Start start) {
    beast::error_code result = net::error::would_block;
    stream->expires_after(timeout);
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    if (result == http::error::need_buffer) result = {};
    if (result) {
      stream.reset();
      fail(ErrorCode::kUnavailable, "HTTP ", what, " ", host, ":", port, ": ", result.message());
    }
  }

  void connect() {
    stream.emplace(ioc);
    buffer.clear();
    tcp::resolver resolver(ioc);
    beast::error_code ec;
    const auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (ec) {
      stream.reset();
      fail(ErrorCode::kUnavailable, "cannot resolve ", host, ": ", ec.message());
    }
    run("connect to", [&](auto handler) {
      stream->async_connect(endpoints, [handler](beast::error_code e, const auto&) mutable { handler(e); });
    });
    stream->socket().set_option(tcp::no_delay(true), ec);
  }

  http::request<http::string_body> make(const std::string& method, const std::string& target, const std::string& body,
                                        const HttpHeaders& headers) const {
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, host + ":" + std::to_string(port));
    req.set(http::field::user_agent, "mixserve-client");
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty() || method == "POST" || method == "PUT") {
      if (req[http::field::content_type].empty()) req.set(http::field::content_type, "application/json");
      req.body() = body;
      req.prepare_payload();
    }
    req.keep_alive(true);
    return req;
  }

  // Writes the request and reads the header; reconnects once when a reused connection was closed.
  void send(http::request<http::string_body>& req, std::optional<http::response_parser<http::buffer_body>>& parser) {
    for (int attempt = 0;; ++attempt) {
      const bool reused = stream.has_value();
      if (!reused) connect();
      parser.emplace();
      parser->body_limit(std::numeric_limits<std::uint64_t>::max());  // not boost::none: Beast 1.74 compares lengths against it
      try {
        run("write to", [&](auto handler) { http::async_write(*stream, req, handler); });
        run("read from", [&](auto handler) { http::async_read_header(*stream, buffer, *parser, handler); });
        return;
      } catch (const Error&) {
        if (!reused || attempt > 0) throw;
      }
    }
  }
};

HttpClient::HttpClient(std::string host, uint16_t port, double timeout_s) : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
}

HttpClient::~HttpClient() = default;

void HttpClient::close() {
  if (impl_->stream) {
    beast::error_code ignored;
    impl_->stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
  }
  impl_->stream.reset();
}

HttpResponse HttpClient::request(const std::string& method, const std::string& target, const std::string& body,
                                 const HttpHeaders& headers) {
  std::string collected;
  HttpResponse r = request_streamed(method, target, body, headers, [&](std::string_view data) {
    collected.append(data);
    return true;
  });
  r.body = std::move(collected);
  return r;
}

HttpResponse HttpClient::request_streamed(const std::string& method, const std::string& target, const std::string& body,
                                          const HttpHeaders& headers,
                                          const std::function<bool(std::string_view)>& on_data) {
  auto req = impl_->make(method, target, body, headers);
  std::optional<http::response_parser<http::buffer_body>> p;
  impl_->send(req, p);
  auto& parser = *p;
  HttpResponse r;
  r.status = static_cast<int>(parser.get().result_int());
  for (const auto& field : parser.get()) {
    std::string name(field.name_string().data(), field.name_string().size());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    r.headers.emplace_back(std::move(name), std::string(field.value().data(), field.value().size()));
  }
  char chunk[16384];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    impl_->run("read from", [&](auto handler) { http::async_read_some(*impl_->stream, impl_->buffer, parser, handler); });
    const size_t n = sizeof chunk - parser.get().body().size;
    if (n > 0 && !on_data(std::string_view(chunk, n))) {
      close();
      return r;
    }
  }
  if (!parser.get().keep_alive()) close();
  return r;
}

void SseParser::feed(std::string_view bytes, const std::function<void(const std::string&)>& on_event) {
  for (char c : bytes) {
    if (c != '\n') {
      line_ += c;
      continue;
    }
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (line_.empty()) {  // blank line: dispatch
      if (has_data_) on_event(data_);
      data_.clear();
      has_data_ = false;
    } else if (line_.rfind("data:", 0) == 0) {
      std::string_view value(line_);
      value.remove_prefix(5);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (has_data_) data_ += '\n';
      data_.append(value);
      has_data_ = true;
    }
    line_.clear();
  }
}

}  // namespace mixserve::serve

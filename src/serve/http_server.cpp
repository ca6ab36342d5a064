#include "serve/http_server.h"

#include <chrono>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "common/error.h"
#include "common/log.h"
#include "serve/http_connection.h"

namespace mixserve::serve {

namespace net = boost::asio;
using tcp = net::ip::tcp;

struct HttpServer::State {
  detail::ServerContext context;
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  net::steady_timer retry;  // pause after an accept error such as EMFILE, instead of spinning
  std::vector<std::thread> threads;
  bool running = false;

  State(HttpServerOptions options, HttpHandler handler)
      : ioc(std::max(1, options.io_threads)), acceptor(net::make_strand(ioc)), retry(acceptor.get_executor()) {
    context.options = std::move(options);
    context.handler = std::move(handler);
  }

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](boost::system::error_code ec, tcp::socket socket) {
      if (!acceptor.is_open()) return;
      if (ec) {
        if (ec == net::error::operation_aborted) return;
        log_warn("accept failed: ", ec.message());
        retry.expires_after(std::chrono::milliseconds(100));
        retry.async_wait([this](boost::system::error_code wec) {
          if (!wec) accept();
        });
        return;
      }
      auto connection = std::make_shared<detail::Connection>(std::move(socket), context);
      {
        std::lock_guard lock(context.mutex);
        std::erase_if(context.open, [](const auto& w) { return w.expired(); });
        context.open.push_back(connection);
      }
      if (context.connections.load() > context.options.max_connections) {
        connection->reject_busy();
      } else {
        connection->start();
      }
      accept();
    });
  }

  void close_connections() {
    std::lock_guard lock(context.mutex);
    for (const auto& weak : context.open) {
      if (auto c = weak.lock()) c->close();
    }
  }
};

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler) {
  if (!options.error_body) {
    options.error_body = [](int, const std::string& message) { return message; };
  }
  state_ = std::make_shared<State>(std::move(options), std::move(handler));
}

HttpServer::~HttpServer() { stop(); }

uint16_t HttpServer::start() {
  State& s = *state_;
  if (s.running) fail(ErrorCode::kInvalidArgument, "the HTTP server is already running");
  const HttpServerOptions& o = s.context.options;
  boost::system::error_code ec;
  tcp::resolver resolver(s.ioc);
  const auto endpoints = resolver.resolve(o.host, std::to_string(o.port), tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) {
    fail(ErrorCode::kInvalidArgument, "cannot resolve listen address '", o.host, "': ", ec.message());
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    fail(ErrorCode::kUnavailable, "cannot listen on ", o.host, ":", o.port, ": ", ec.message());
  }
  port_ = s.acceptor.local_endpoint().port();
  s.work.emplace(s.ioc.get_executor());
  s.accept();
  for (int i = 0; i < std::max(1, o.io_threads); ++i) s.threads.emplace_back([&s] { s.ioc.run(); });
  s.running = true;
  return port_;
}

void HttpServer::stop_accepting() {
  auto s = state_;
  net::post(s->acceptor.get_executor(), [s] {
    boost::system::error_code ignored;
    s->acceptor.close(ignored);
    s->retry.cancel();
  });
}

void HttpServer::set_closing() { state_->context.closing = true; }

void HttpServer::stop() {
  State& s = *state_;
  if (!s.running) return;
  stop_accepting();
  set_closing();
  // Closing a connection fires its disconnect callback, so the handler's owner can release the
  // exchanges it holds; wait for that (they reference connections, which reference the context).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (s.context.connections.load() != 0 || s.context.exchanges.load() != 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      log_error("HTTP server stop: ", s.context.connections.load(), " connections and ", s.context.exchanges.load(),
                " requests still open after 10 s; stopping anyway");
      s.ioc.stop();
      break;
    }
    s.close_connections();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  s.work.reset();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
  s.running = false;
}

size_t HttpServer::connections() const { return state_->context.connections.load(); }

size_t HttpServer::in_flight() const { return state_->context.in_flight.load(); }

}  // namespace mixserve::serve

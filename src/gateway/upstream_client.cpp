#include "gateway/upstream_client.h"

#include <atomic>
#include <chrono>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace mixserve::gateway {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

namespace {

// A pooled idle connection older than this is dropped rather than reused (servers close idle
// keep-alive connections; mixserve serve after its request timeout, 30 s by default).
constexpr auto kMaxIdle = std::chrono::seconds(15);
constexpr size_t kMaxIdlePerUpstream = 256;

std::chrono::milliseconds millis(double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); }

struct Conn {
  explicit Conn(net::io_context& ioc) : stream(ioc) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  SteadyClock::time_point idle_since;
};

}  // namespace

struct UpstreamClient::State {
  net::io_context ioc;
  net::executor_work_guard<net::io_context::executor_type> work{ioc.get_executor()};
  std::vector<std::thread> threads;
  mutable std::mutex pool_mutex;
  std::map<std::string, std::vector<std::unique_ptr<Conn>>> pool;  // destroyed before ioc

  std::unique_ptr<Conn> take(const std::string& key) {
    std::lock_guard lock(pool_mutex);
    auto& list = pool[key];
    while (!list.empty()) {
      auto conn = std::move(list.back());
      list.pop_back();
      if (SteadyClock::now() - conn->idle_since < kMaxIdle) return conn;
    }
    return nullptr;
  }
  void put(const std::string& key, std::unique_ptr<Conn> conn) {
    conn->idle_since = SteadyClock::now();
    std::lock_guard lock(pool_mutex);
    auto& list = pool[key];
    if (list.size() < kMaxIdlePerUpstream) list.push_back(std::move(conn));
  }
};

namespace {

class Exchange : public UpstreamCall, public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(UpstreamClient::State* state, UpstreamRequest request, UpstreamHandler handler)
      : state_(state), req_(std::move(request)), handler_(std::move(handler)), strand_(net::make_strand(state->ioc)) {
    key_ = req_.endpoint.host + ":" + std::to_string(req_.endpoint.port);
    msg_.method_string(req_.method);
    msg_.target(req_.target);
    msg_.version(11);
    msg_.set(http::field::host, key_);
    msg_.set(http::field::user_agent, "mixserve-gateway");
    for (const auto& [name, value] : req_.headers) msg_.set(name, value);
    if (!req_.body.empty() || req_.method == "POST") {
      if (msg_[http::field::content_type].empty()) msg_.set(http::field::content_type, "application/json");
      msg_.body() = req_.body;
      msg_.prepare_payload();
    }
    msg_.keep_alive(true);
  }

  void start() {
    net::post(strand_, [self = shared_from_this()] { self->open(); });
  }

  void cancel() override {
    net::post(strand_, [self = shared_from_this()] {
      self->cancelled_ = true;
      if (self->conn_) {
        beast::error_code ignored;
        self->conn_->stream.socket().close(ignored);
      }
    });
  }

 private:
  template <typename F>
  auto on_strand(F&& f) {
    return net::bind_executor(strand_, std::forward<F>(f));
  }

  void open() {
    if (cancelled_) return finish("cancelled");
    conn_ = state_->take(key_);
    reused_ = conn_ != nullptr;
    if (reused_) return write();
    open_fresh();
  }

  // A new connection: resolve, then connect.
  void open_fresh() {
    conn_ = std::make_unique<Conn>(state_->ioc);
    auto resolver = std::make_shared<tcp::resolver>(strand_);
    resolver->async_resolve(req_.endpoint.host, std::to_string(req_.endpoint.port),
                            on_strand([self = shared_from_this(), resolver](beast::error_code ec,
                                                                            tcp::resolver::results_type results) {
                              if (ec) return self->finish("cannot resolve " + self->key_ + ": " + ec.message());
                              self->connect(results);
                            }));
  }

  void connect(const tcp::resolver::results_type& results) {
    if (cancelled_) return finish("cancelled");
    conn_->stream.expires_after(millis(req_.connect_timeout_s));
    conn_->stream.async_connect(results, on_strand([self = shared_from_this()](beast::error_code ec, const auto&) {
                                  if (ec) return self->finish("cannot connect to " + self->key_ + ": " + ec.message());
                                  beast::error_code ignored;
                                  self->conn_->stream.socket().set_option(tcp::no_delay(true), ignored);
                                  self->write();
                                }));
  }

  // A reused connection that fails before any response byte was closed by the upstream while idle:
  // open a fresh one once.
  bool retry_fresh() {
    if (!reused_ || retried_ || got_header_ || cancelled_) return false;
    retried_ = true;
    reused_ = false;
    open_fresh();
    return true;
  }

  void write() {
    parser_.emplace();
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // Beast 1.74: not boost::none
    conn_->stream.expires_after(millis(req_.first_byte_timeout_s));
    http::async_write(conn_->stream, msg_, on_strand([self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) {
                          if (self->retry_fresh()) return;
                          return self->finish("write to " + self->key_ + ": " + ec.message());
                        }
                        self->read_header();
                      }));
  }

  void read_header() {
    http::async_read_header(conn_->stream, conn_->buffer, *parser_,
                            on_strand([self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) {
                                if (self->retry_fresh()) return;
                                return self->finish("read from " + self->key_ + ": " + ec.message());
                              }
                              self->got_header_ = true;
                              serve::HttpHeaders headers;
                              for (const auto& f : self->parser_->get()) {
                                std::string name(f.name_string());
                                for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                                headers.emplace_back(std::move(name), std::string(f.value()));
                              }
                              if (self->handler_.on_header) {
                                self->handler_.on_header(static_cast<int>(self->parser_->get().result_int()), headers);
                              }
                              self->read_body();
                            }));
  }

  void read_body() {
    if (cancelled_) return finish("cancelled");
    if (parser_->is_done()) return complete();
    parser_->get().body().data = chunk_;
    parser_->get().body().size = sizeof chunk_;
    conn_->stream.expires_after(millis(req_.idle_timeout_s));
    http::async_read_some(conn_->stream, conn_->buffer, *parser_,
                          on_strand([self = shared_from_this()](beast::error_code ec, size_t) {
                            if (ec == http::error::need_buffer) ec = {};
                            const size_t n = sizeof self->chunk_ - self->parser_->get().body().size;
                            if (n > 0 && self->handler_.on_body &&
                                !self->handler_.on_body(std::string_view(self->chunk_, n))) {
                              self->cancelled_ = true;
                              return self->finish("stopped by the gateway");
                            }
                            if (ec) return self->finish("read from " + self->key_ + ": " + ec.message());
                            self->read_body();
                          }));
  }

  void complete() {
    const bool keep = parser_->get().keep_alive() && conn_->buffer.size() == 0;
    if (keep) state_->put(key_, std::move(conn_));
    conn_.reset();
    done("", true);
  }

  void finish(const std::string& error) {
    if (conn_) {
      beast::error_code ignored;
      conn_->stream.socket().close(ignored);
      conn_.reset();
    }
    done(error, got_header_);
  }

  void done(const std::string& error, bool got_header) {
    if (finished_) return;
    finished_ = true;
    if (handler_.on_done) handler_.on_done(error, got_header);
    handler_ = {};  // drop captured state (the client's exchange) now
  }

  UpstreamClient::State* state_;
  UpstreamRequest req_;
  UpstreamHandler handler_;
  net::strand<net::io_context::executor_type> strand_;
  std::string key_;
  http::request<http::string_body> msg_;
  std::unique_ptr<Conn> conn_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  char chunk_[16384];
  bool reused_ = false;
  bool retried_ = false;
  bool got_header_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
};

}  // namespace

UpstreamClient::UpstreamClient(int threads) : state_(std::make_shared<State>()) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    state_->threads.emplace_back([s = state_.get()] { s->ioc.run(); });
  }
}

UpstreamClient::~UpstreamClient() {
  state_->work.reset();
  state_->ioc.stop();
  for (auto& t : state_->threads) t.join();
  {
    std::lock_guard lock(state_->pool_mutex);
    state_->pool.clear();
  }
}

std::shared_ptr<UpstreamCall> UpstreamClient::send(UpstreamRequest request, UpstreamHandler handler) {
  auto exchange = std::make_shared<Exchange>(state_.get(), std::move(request), std::move(handler));
  exchange->start();
  return exchange;
}

void UpstreamClient::after(double delay_s, std::function<void()> fn) {
  auto timer = std::make_shared<net::steady_timer>(state_->ioc, millis(delay_s));
  timer->async_wait([timer, fn = std::move(fn)](beast::error_code ec) {
    if (!ec) fn();
  });
}

size_t UpstreamClient::idle_connections() const {
  std::lock_guard lock(state_->pool_mutex);
  size_t n = 0;
  for (const auto& [key, list] : state_->pool) n += list.size();
  return n;
}

}  // namespace mixserve::gateway

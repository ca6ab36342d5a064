// The HTTP transport on loopback: keep-alive, pipelining, chunked streaming, limits (body, header,
// slow clients, connections), disconnect notification, and replies from other threads.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "common/error.h"
#include "serve/http_client.h"
#include "serve/http_server.h"
#include "support/raw_socket.h"

namespace mixserve::serve {
namespace {

using testing::RawSocket;
using namespace std::chrono_literals;

// A server whose handler echoes "METHOD path body", streams on /stream, replies late on /late,
// and never replies on /drop.
class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpServerOptions options = {}) {
    options.port = 0;
    options.error_body = [](int status, const std::string& message) {
      return "{\"status\":" + std::to_string(status) + ",\"message\":\"" + message + "\"}";
    };
    server_ = std::make_unique<HttpServer>(options, [this](std::shared_ptr<HttpExchange> ex) { handle(std::move(ex)); });
    port_ = server_->start();
  }

  void handle(std::shared_ptr<HttpExchange> ex) {
    const HttpRequest& r = ex->request();
    if (r.path == "/stream") {
      ex->on_disconnect([this] { disconnects_++; });
      ex->begin_stream(200, "text/event-stream");
      for (int i = 0; i < 3; ++i) ex->write("data: " + std::to_string(i) + "\n\n");
      ex->end_stream();
    } else if (r.path == "/hold") {  // streams one event, then holds the reply until the client goes away
      held_ = ex;
      ex->on_disconnect([this] { disconnects_++; });
      ex->begin_stream(200, "text/event-stream");
      ex->write("data: first\n\n");
    } else if (r.path == "/late") {
      std::thread([ex] {
        std::this_thread::sleep_for(50ms);
        ex->respond(200, "text/plain", "late");
      }).detach();
    } else if (r.path == "/drop") {
      return;  // the exchange dies unanswered
    } else if (r.path == "/throw") {
      throw std::runtime_error("boom");
    } else {
      ex->respond(200, "text/plain", r.method + " " + r.path + " " + r.body, {{"X-Test", "yes"}});
    }
  }

  void TearDown() override {
    held_.reset();
    if (server_) server_->stop();
  }

  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
  std::atomic<int> disconnects_{0};
  std::shared_ptr<HttpExchange> held_;
};

TEST_F(HttpServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  start();
  HttpClient client("127.0.0.1", port_);
  for (int i = 0; i < 20; ++i) {
    const HttpResponse r = client.request("POST", "/echo", "n=" + std::to_string(i));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "POST /echo n=" + std::to_string(i));
    EXPECT_EQ(r.header("x-test"), "yes");
    EXPECT_EQ(r.header("connection"), "keep-alive");
  }
  EXPECT_EQ(server_->connections(), 1u);
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  RawSocket s(port_);
  ASSERT_TRUE(s.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /late HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const std::string all = s.read_all();
  const auto a = all.find("GET /a ");
  const auto b = all.find("late");
  const auto c = all.find("GET /c ");
  ASSERT_NE(a, std::string::npos) << all;
  ASSERT_NE(b, std::string::npos) << all;
  ASSERT_NE(c, std::string::npos) << all;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
}

TEST_F(HttpServerTest, StreamsChunkedBodies) {
  start();
  HttpClient client("127.0.0.1", port_);
  std::string events;
  SseParser sse;
  const HttpResponse r = client.request_streamed("GET", "/stream", "", {}, [&](std::string_view data) {
    sse.feed(data, [&](const std::string& e) { events += e + ";"; });
    return true;
  });
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("transfer-encoding"), "chunked");
  EXPECT_EQ(events, "0;1;2;");
  // The connection stays usable after a streamed reply.
  EXPECT_EQ(client.request("GET", "/after").body, "GET /after ");
}

TEST_F(HttpServerTest, ClientDisconnectMidStreamIsReported) {
  start();
  {
    RawSocket s(port_);
    ASSERT_TRUE(s.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_NE(s.read_until("first").find("first"), std::string::npos);
  }  // closed here
  for (int i = 0; i < 200 && disconnects_ == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(disconnects_.load(), 1);
  EXPECT_TRUE(held_->disconnected());
  held_->write("data: ignored\n\n");  // writes after a disconnect are dropped, not crashes
  held_->end_stream();
}

TEST_F(HttpServerTest, OversizeBodyGets413AndTheServerKeepsServing) {
  HttpServerOptions o;
  o.max_body_bytes = 1000;
  start(o);
  RawSocket s(port_);
  ASSERT_TRUE(s.send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"));
  const std::string reply = s.read_all();
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply;
  EXPECT_NE(reply.find("\"status\":413"), std::string::npos) << reply;
  EXPECT_NE(reply.find("Connection: close"), std::string::npos);
  HttpClient client("127.0.0.1", port_);
  EXPECT_EQ(client.request("POST", "/ok", std::string(900, 'a')).status, 200);
}

TEST_F(HttpServerTest, OversizeChunkedBodyGets413) {
  HttpServerOptions o;
  o.max_body_bytes = 100;
  start(o);
  RawSocket s(port_);
  ASSERT_TRUE(s.send("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + std::string(100, 'a') +
                     "\r\n64\r\n" + std::string(100, 'b') + "\r\n0\r\n\r\n"));
  EXPECT_EQ(s.read_all().rfind("HTTP/1.1 413", 0), 0u);
}

TEST_F(HttpServerTest, HugeHeaderGets431) {
  HttpServerOptions o;
  o.max_header_bytes = 2048;
  start(o);
  RawSocket s(port_);
  ASSERT_TRUE(s.send("GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4096, 'h') + "\r\n\r\n"));
  EXPECT_EQ(s.read_all().rfind("HTTP/1.1 431", 0), 0u);
}

TEST_F(HttpServerTest, MalformedRequestGets400) {
  start();
  for (const std::string bad : {"GET\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                                "\x01\x02\x03 / HTTP/1.1\r\n\r\n"}) {
    RawSocket s(port_);
    ASSERT_TRUE(s.send(bad));
    EXPECT_EQ(s.read_all().rfind("HTTP/1.1 400", 0), 0u) << bad;
  }
  HttpClient client("127.0.0.1", port_);
  EXPECT_EQ(client.request("GET", "/alive").status, 200);
}

TEST_F(HttpServerTest, SlowClientIsCutOffAtTheRequestDeadline) {
  HttpServerOptions o;
  o.request_timeout_s = 0.5;
  start(o);
  RawSocket slow(port_, 5);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(slow.send("GET /x HTTP/1.1\r\nHost: x\r\n"));  // never finishes the header block
  EXPECT_TRUE(slow.closed_by_peer());
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(waited, 0.4);
  EXPECT_LT(waited, 3.0);
  HttpClient client("127.0.0.1", port_);  // others are served meanwhile and after
  EXPECT_EQ(client.request("GET", "/alive").status, 200);
}

TEST_F(HttpServerTest, ConnectionsBeyondTheLimitGet503) {
  HttpServerOptions o;
  o.max_connections = 2;
  start(o);
  RawSocket a(port_), b(port_);
  ASSERT_TRUE(a.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(b.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_NE(a.read_until("GET /a").find("200 OK"), std::string::npos);
  EXPECT_NE(b.read_until("GET /b").find("200 OK"), std::string::npos);
  RawSocket c(port_);
  EXPECT_EQ(c.read_all().rfind("HTTP/1.1 503", 0), 0u);
}

TEST_F(HttpServerTest, UnansweredOrThrowingHandlersGet500) {
  start();
  HttpClient client("127.0.0.1", port_);
  EXPECT_EQ(client.request("GET", "/drop").status, 500);
  EXPECT_EQ(client.request("GET", "/throw").status, 500);
  EXPECT_EQ(client.request("GET", "/fine").status, 200);
}

TEST_F(HttpServerTest, ExpectContinueIsHonoured) {
  start();
  RawSocket s(port_);
  ASSERT_TRUE(s.send("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_NE(s.read_until("\r\n\r\n").find("100 Continue"), std::string::npos);
  ASSERT_TRUE(s.send("hello"));
  EXPECT_NE(s.read_until("hello").find("POST /x hello"), std::string::npos);
}

TEST_F(HttpServerTest, ClosingModeEndsKeepAlive) {
  start();
  HttpClient client("127.0.0.1", port_);
  EXPECT_EQ(client.request("GET", "/a").header("connection"), "keep-alive");
  server_->set_closing();
  EXPECT_EQ(client.request("GET", "/b").header("connection"), "close");
}

TEST_F(HttpServerTest, ManyConcurrentClients) {
  start();
  std::vector<std::future<int>> results;
  for (int t = 0; t < 16; ++t) {
    results.push_back(std::async(std::launch::async, [this, t] {
      HttpClient client("127.0.0.1", port_);
      int ok = 0;
      for (int i = 0; i < 25; ++i) {
        const std::string body = std::to_string(t) + ":" + std::to_string(i);
        ok += client.request("POST", "/e", body).body == "POST /e " + body;
      }
      return ok;
    }));
  }
  for (auto& r : results) EXPECT_EQ(r.get(), 25);
}

TEST(HttpServer, BindingATakenPortFailsClearly) {
  HttpServerOptions o;
  o.port = 0;
  HttpServer a(o, [](std::shared_ptr<HttpExchange>) {});
  o.port = a.start();
  HttpServer b(o, [](std::shared_ptr<HttpExchange>) {});
  EXPECT_THROW(b.start(), Error);
}

TEST(SseParser, JoinsEventsAcrossArbitraryCuts) {
  const std::string stream = "data: {\"a\":1}\n\n: comment\ndata: x\ndata: y\r\n\r\nevent: e\ndata: [DONE]\n\n";
  for (size_t cut = 1; cut < stream.size(); ++cut) {
    SseParser p;
    std::vector<std::string> events;
    auto on = [&](const std::string& e) { events.push_back(e); };
    p.feed(std::string_view(stream).substr(0, cut), on);
    p.feed(std::string_view(stream).substr(cut), on);
    ASSERT_EQ(events, (std::vector<std::string>{"{\"a\":1}", "x\ny", "[DONE]"})) << cut;
  }
}

}  // namespace
}  // namespace mixserve::serve

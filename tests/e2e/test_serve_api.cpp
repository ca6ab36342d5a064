// End-to-end tests of `mixserve serve` on loopback with a synthetic model: greedy output is the same
// alone and inside a busy batch, streams agree with whole replies, 64 concurrent streams complete
// without losing tokens or KV blocks, the prefix cache saves prefill work, a client disconnect
// cancels its sequence, and /metrics and /v1/node describe the node.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "serve/load_test.h"
#include "support/raw_socket.h"
#include "support/serve_client.h"
#include "support/server_process.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::get_json;
using testing::metric_of;
using testing::post_json;
using testing::post_stream;
using testing::ServerProcess;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;

// One server for the suite: a small synthetic model, 64 sequences, a KV cache that holds them all.
class ServeApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string model = dir_->file("tiny.gguf");
    // The "small" shape with a longer context: fast, yet long generations take a while.
    const auto r = testing::run_command(kBin + " model synth --shape embd=256,layers=4,heads=8,kv_heads=2,ff=704,ctx=2048 "
                                        "--type f32 -o " + model);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    server_ = new ServerProcess({kBin, "serve", "-m", model, "--port", "0", "--max-seqs", "64", "--kv-blocks", "512",
                                 "--request-timeout", "2", "--chip", "cpu-x86"},
                                dir_->file("server.log"));
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "server log:\n" << server_->log();
  }
  static uint16_t port() { return server_->port(); }

  // Waits until the engine is idle again (all sequences finished or cancelled).
  static void wait_idle() {
    for (int i = 0; i < 500; ++i) {
      if (metric_of(port(), "mixserve_running_sequences") == 0 && metric_of(port(), "mixserve_queue_depth") == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  static TempDir* dir_;
  static ServerProcess* server_;
};
TempDir* ServeApi::dir_ = nullptr;
ServerProcess* ServeApi::server_ = nullptr;

json completion(const std::string& prompt, int max_tokens) {
  return {{"model", "tiny"}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
}

json chat(const std::string& system, const std::string& user, int max_tokens) {
  return {{"model", "tiny"},
          {"messages", json::array({{{"role", "system"}, {"content", system}}, {{"role", "user"}, {"content", user}}})},
          {"max_tokens", max_tokens},
          {"temperature", 0}};
}

TEST_F(ServeApi, GreedyOutputIsTheSameAloneAndInABusyBatch) {
  const json request = completion("The quick brown fox jumps over", 24);
  const auto alone = post_json(port(), "/v1/completions", request);
  ASSERT_EQ(alone.status, 200) << alone.raw.body;
  const std::string expected = alone.body["choices"][0]["text"];

  // 16 other requests of different lengths, half of them streamed, keep the batch busy while the
  // same request runs again, joining the batch mid-flight.
  std::vector<std::future<int>> others;
  for (int i = 0; i < 16; ++i) {
    others.push_back(std::async(std::launch::async, [i] {
      const json r = completion("background request " + std::to_string(i) + std::string(i * 3, 'x'), 8 + 5 * i);
      return i % 2 ? post_stream(port(), "/v1/completions", r).status : post_json(port(), "/v1/completions", r).status;
    }));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto busy = post_json(port(), "/v1/completions", request);
  for (auto& f : others) EXPECT_EQ(f.get(), 200);
  ASSERT_EQ(busy.status, 200);
  EXPECT_EQ(busy.body["choices"][0]["text"], expected);
  EXPECT_EQ(busy.body["usage"]["completion_tokens"], alone.body["usage"]["completion_tokens"]);
}

TEST_F(ServeApi, StreamedAndWholeRepliesAgree) {
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    json request = std::string(path) == "/v1/completions" ? completion("Once upon a time", 20)
                                                          : chat("You are terse.", "Tell me a story", 20);
    const auto whole = post_json(port(), path, request);
    ASSERT_EQ(whole.status, 200) << whole.raw.body;
    request["stream_options"] = {{"include_usage", true}};
    const auto streamed = post_stream(port(), path, request);
    ASSERT_EQ(streamed.status, 200);
    EXPECT_TRUE(streamed.done) << path;
    const json& choice = whole.body["choices"][0];
    const std::string text = choice.contains("message") ? choice["message"]["content"] : choice["text"];
    EXPECT_EQ(streamed.text, text) << path;
    EXPECT_EQ(streamed.finish, choice["finish_reason"].get<std::string>()) << path;
    EXPECT_EQ(streamed.usage["completion_tokens"], whole.body["usage"]["completion_tokens"]) << path;
    EXPECT_EQ(streamed.usage["prompt_tokens"], whole.body["usage"]["prompt_tokens"]) << path;
    // Every chunk names the same id; chat streams open with the assistant role.
    for (const json& c : streamed.chunks) EXPECT_EQ(c["id"], streamed.chunks.front()["id"]);
    if (choice.contains("message")) {
      EXPECT_EQ(streamed.chunks.front()["choices"][0]["delta"]["role"], "assistant");
    }
  }
}

TEST_F(ServeApi, SixtyFourConcurrentStreamsCompleteWithoutLossOrLeaks) {
  // Reference texts, one per distinct prompt, from whole replies.
  std::vector<json> requests;
  std::vector<std::string> expected;
  for (int p = 0; p < 4; ++p) {
    requests.push_back(completion("stream prompt number " + std::to_string(p), 12 + 4 * p));
    const auto r = post_json(port(), "/v1/completions", requests.back());
    ASSERT_EQ(r.status, 200);
    expected.push_back(r.body["choices"][0]["text"]);
  }
  std::vector<std::future<testing::StreamResult>> streams;
  for (int i = 0; i < 64; ++i) {
    json r = requests[i % 4];
    r["stream_options"] = {{"include_usage", true}};
    streams.push_back(std::async(std::launch::async, [r] { return post_stream(port(), "/v1/completions", r); }));
  }
  for (int i = 0; i < 64; ++i) {
    const auto s = streams[i].get();
    EXPECT_EQ(s.status, 200);
    EXPECT_TRUE(s.done) << i;
    EXPECT_EQ(s.text, expected[i % 4]) << i;  // nothing lost, duplicated or mixed between streams
    EXPECT_EQ(s.usage["prompt_tokens"].get<int>() + s.usage["completion_tokens"].get<int>(),
              s.usage["total_tokens"].get<int>());
  }
  wait_idle();
  EXPECT_EQ(metric_of(port(), "mixserve_kv_blocks_used"), 0);
  EXPECT_EQ(metric_of(port(), "mixserve_running_sequences"), 0);
}

TEST_F(ServeApi, PrefixCacheSavesPrefillAndKeepsTheOutput) {
  std::string system = "You are a careful assistant for a computing centre.";
  for (int i = 0; i < 12; ++i) system += " Rule " + std::to_string(i) + ": answer precisely and briefly.";
  const double before = metric_of(port(), "mixserve_prefill_tokens_computed_total");
  const auto first = post_json(port(), "/v1/chat/completions", chat(system, "What is a GPU?", 8));
  ASSERT_EQ(first.status, 200) << first.raw.body;
  const double middle = metric_of(port(), "mixserve_prefill_tokens_computed_total");
  const auto second = post_json(port(), "/v1/chat/completions", chat(system, "What is a GPU?", 8));
  ASSERT_EQ(second.status, 200);
  const double after = metric_of(port(), "mixserve_prefill_tokens_computed_total");
  const int prompt = first.body["usage"]["prompt_tokens"];
  ASSERT_GT(prompt, 64);
  // The first request computed all but what earlier tests left in the cache (the template's opening).
  const int first_cached = first.body["usage"]["prompt_tokens_details"]["cached_tokens"];
  EXPECT_LT(first_cached, 32);
  EXPECT_EQ(middle - before, prompt - first_cached);
  const int cached = second.body["usage"]["prompt_tokens_details"]["cached_tokens"];
  EXPECT_GE(cached, prompt - 16);  // every full block of the prompt but the one holding its last token
  EXPECT_EQ(after - middle, prompt - cached);  // the second computed only what the cache lacked
  EXPECT_EQ(second.body["choices"][0]["message"]["content"], first.body["choices"][0]["message"]["content"]);
}

TEST_F(ServeApi, ClientDisconnectCancelsTheSequence) {
  const double cancelled_before = metric_of(port(), "mixserve_requests_cancelled_total");
  {
    testing::RawSocket s(port());
    const std::string body = json{{"model", "tiny"}, {"prompt", "never read"}, {"max_tokens", 2000},
                                  {"stream", true}, {"temperature", 0}}.dump();
    ASSERT_TRUE(s.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body));
    EXPECT_THAT(s.read_until("data: "), HasSubstr("200 OK"));
  }
  double cancelled = cancelled_before;
  for (int i = 0; i < 300 && cancelled == cancelled_before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    cancelled = metric_of(port(), "mixserve_requests_cancelled_total");
  }
  EXPECT_EQ(cancelled, cancelled_before + 1);
  wait_idle();
  EXPECT_EQ(metric_of(port(), "mixserve_kv_blocks_used"), 0);
}

TEST_F(ServeApi, SlowClientsDoNotHoldUpOthers) {
  testing::RawSocket slow(port(), 10);
  ASSERT_TRUE(slow.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mod"));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(post_json(port(), "/v1/completions", completion("meanwhile", 4)).status, 200);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.5);
  EXPECT_TRUE(slow.closed_by_peer());  // cut off at the 2 s request deadline
}

// The load generator of `mixserve bench --serve` against the real server: every request counted,
// decode tokens = all but each request's first, decode time inside the wall time.
TEST_F(ServeApi, LoadTestCountsTokensAndDecodeTime) {
  wait_idle();
  serve::LoadTestOptions o;
  o.port = port();
  o.model = "tiny";
  o.concurrency = 3;
  o.requests_per_client = 2;
  o.prompt_words = 8;
  o.max_tokens = 12;
  const serve::LoadTestResult r = serve::run_load_test(o);
  EXPECT_EQ(r.requests, 6);
  EXPECT_EQ(r.failed, 0) << r.first_error;
  EXPECT_EQ(r.output_tokens, 6 * 12);
  EXPECT_EQ(r.decode_tokens, 6 * 11);
  EXPECT_GT(r.decode_seconds, 0.0);
  EXPECT_LE(r.decode_seconds, r.wall_seconds);
  EXPECT_NEAR(r.decode_tokens_per_s, static_cast<double>(r.decode_tokens) / r.decode_seconds, 1e-9);
  EXPECT_GT(r.ttft_p50, 0.0);
  EXPECT_LE(r.itl_p50, r.itl_p99);
}

TEST_F(ServeApi, ModelsHealthNodeAndMetricsDescribeTheNode) {
  const auto models = get_json(port(), "/v1/models");
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(models.body["data"][0]["id"], "tiny");
  EXPECT_EQ(get_json(port(), "/v1/models/tiny").body["id"], "tiny");
  EXPECT_EQ(get_json(port(), "/v1/models/other").status, 404);
  EXPECT_EQ(get_json(port(), "/health").body["status"], "ok");

  const auto node = get_json(port(), "/v1/node");
  ASSERT_EQ(node.status, 200);
  EXPECT_EQ(node.body["model"]["id"], "tiny");
  EXPECT_EQ(node.body["chip"]["id"], "cpu-x86");
  EXPECT_EQ(node.body["chip"]["domestic"], false);
  EXPECT_EQ(node.body["devices"][0]["id"], "cpu");
  EXPECT_EQ(node.body["capacity"]["max_sequences"], 64);
  EXPECT_EQ(node.body["capacity"]["kv_blocks"], 512);
  EXPECT_EQ(node.body["capacity"]["kv_cache_type"], "f32");
  // 4 layers x (K and V) x 512 blocks x the block's rows x 64 KV dims (2 heads of 32) x 4 bytes.
  EXPECT_EQ(node.body["capacity"]["kv_cache_bytes"],
            4 * 2 * 512 * node.body["capacity"]["kv_block_tokens"].get<int64_t>() * 64 * 4);
  EXPECT_GT(node.body["placement"]["op_table"].size(), 3u);
  EXPECT_EQ(node.body["placement"]["fallbacks_per_step"], 0);
  EXPECT_TRUE(node.body["load"].contains("running"));

  serve::HttpClient client("127.0.0.1", port());
  const auto m = client.request("GET", "/metrics");
  EXPECT_EQ(m.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  for (const char* family : {"mixserve_http_requests_total", "mixserve_prompt_tokens_total",
                             "mixserve_generation_tokens_total", "mixserve_queue_depth", "mixserve_running_sequences",
                             "mixserve_kv_blocks_used", "mixserve_kv_blocks_total",
                             "mixserve_time_to_first_token_seconds_bucket",
                             "mixserve_time_per_output_token_seconds_bucket", "mixserve_op_table_ops"}) {
    EXPECT_THAT(m.body, HasSubstr(std::string(family) + "{model=\"tiny\",chip=\"cpu-x86\",device=\"cpu\"")) << family;
  }
  EXPECT_EQ(testing::metric(m.body, "mixserve_kv_blocks_total"), 512);
}

// --cache-type f16: the node says so, its cache takes half the bytes of the suite's f32 server's, and
// a greedy completion runs (the same tokens as a run of the model with the same cache type).
TEST_F(ServeApi, F16CacheHalvesTheCacheAndServes) {
  ServerProcess f16({kBin, "serve", "-m", dir_->file("tiny.gguf"), "--port", "0", "--max-seqs", "8", "--kv-blocks",
                     "512", "--cache-type", "f16"},
                    dir_->file("server-f16.log"));
  const auto node = get_json(f16.port(), "/v1/node");
  ASSERT_EQ(node.status, 200);
  EXPECT_EQ(node.body["capacity"]["kv_cache_type"], "f16");
  const auto f32_bytes = get_json(port(), "/v1/node").body["capacity"]["kv_cache_bytes"].get<int64_t>();
  EXPECT_EQ(node.body["capacity"]["kv_cache_bytes"].get<int64_t>() * 2, f32_bytes);
  const auto reply = post_json(f16.port(), "/v1/completions", completion("The quick brown fox", 12));
  ASSERT_EQ(reply.status, 200) << reply.raw.body;
  const auto cli = testing::run_command(kBin + " run -m " + dir_->file("tiny.gguf") +
                                        " -p 'The quick brown fox' -n 12 --temp 0 --ignore-eos --cache-type f16");
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ("The quick brown fox" + reply.body["choices"][0]["text"].get<std::string>(),
            cli.out.substr(0, cli.out.size() - 1));
}

}  // namespace
}  // namespace mixserve

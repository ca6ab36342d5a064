// End-to-end tests of what `mixserve serve` refuses and how it stops: a corpus of bad requests
// (tests/data/serve/bad_requests.json) and malformed HTTP, all answered with OpenAI error JSON
// while the server keeps serving; API keys; 429 with Retry-After on a full queue; graceful drain
// and clean ending of streams on SIGTERM.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <future>
#include <thread>

#include "support/raw_socket.h"
#include "support/serve_client.h"
#include "support/server_process.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::get_json;
using testing::post_json;
using testing::post_stream;
using testing::RawSocket;
using testing::ServerProcess;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;

std::string synth(const TempDir& dir, const std::string& shape = "tiny", const std::string& type = "f32") {
  const std::string path = dir.file("tiny.gguf");
  const auto r = testing::run_command(kBin + " model synth --shape " + shape + " --type " + type + " -o " + path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return path;
}

std::vector<std::string> serve_args(const std::string& model, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {kBin, "serve", "-m", model, "--port", "0"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// The error object OpenAI clients parse.
void expect_openai_error(const json& body, const std::string& context) {
  ASSERT_TRUE(body.is_object()) << context;
  ASSERT_TRUE(body.contains("error")) << context << ": " << body.dump();
  EXPECT_TRUE(body["error"]["message"].is_string()) << context;
  EXPECT_FALSE(body["error"]["message"].get<std::string>().empty()) << context;
  EXPECT_TRUE(body["error"]["type"].is_string()) << context;
}

TEST(ServeLimits, BadRequestCorpusGetsErrorsAndTheServerKeepsServing) {
  std::ifstream in(std::string(MIXSERVE_TEST_DATA_DIR) + "/serve/bad_requests.json");
  ASSERT_TRUE(in) << "tests/data/serve/bad_requests.json missing";
  const json corpus = json::parse(in);
  ASSERT_GE(corpus["cases"].size(), 40u);
  TempDir dir;
  ServerProcess server(serve_args(synth(dir)), dir.file("server.log"));
  for (const json& c : corpus["cases"]) {
    const std::string name = c["name"];
    std::string body = c["body"];
    if (c.contains("nested_depth")) {
      const int depth = c["nested_depth"];
      body = std::string(depth, '[') + std::string(depth, ']');
    }
    serve::HttpClient client("127.0.0.1", server.port(), 30);
    const auto r = client.request(c["method"], c["path"], body);
    EXPECT_EQ(r.status, c["status"].get<int>()) << name << ": " << r.body;
    const json reply = json::parse(r.body, nullptr, false);
    expect_openai_error(reply, name);
    if (c.contains("param") && reply.contains("error")) {
      EXPECT_EQ(reply["error"]["param"], c["param"]) << name;
    }
    if (c.contains("code") && reply.contains("error")) {
      EXPECT_EQ(reply["error"]["code"], c["code"]) << name;
    }
    EXPECT_THAT(r.header("content-type"), HasSubstr("application/json")) << name;
  }
  EXPECT_EQ(get_json(server.port(), "/health").status, 200);
  EXPECT_EQ(post_json(server.port(), "/v1/completions", {{"model", "tiny"}, {"prompt", "still fine"}}).status, 200);
}

TEST(ServeLimits, MalformedHttpGetsJsonErrors) {
  TempDir dir;
  ServerProcess server(serve_args(synth(dir), {"--max-body", "4096"}), dir.file("server.log"));
  struct Case {
    const char* name;
    std::string bytes;
    const char* status;
  };
  const std::string big = std::string(8000, 'a');
  const std::string bad_utf8 = "{\"model\":\"tiny\",\"prompt\":\"\xff\xfe\"}";
  const std::vector<Case> cases = {
      {"oversize body", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 8000\r\n\r\n" + big, "413"},
      {"huge header", "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(40000, 'p') + "\r\n\r\n", "431"},
      {"garbage request line", "HELLO\r\n\r\n", "400"},
      {"bad content length", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n", "400"},
      {"invalid UTF-8 in JSON",
       "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(bad_utf8.size()) + "\r\n\r\n" +
           bad_utf8,
       "400"},
  };
  for (const Case& c : cases) {
    RawSocket s(server.port());
    ASSERT_TRUE(s.send(c.bytes) || std::string(c.status) == "413") << c.name;
    const std::string reply = s.read_until("}}");
    EXPECT_EQ(reply.substr(0, 12), std::string("HTTP/1.1 ") + c.status) << c.name << ": " << reply;
    const auto body = json::parse(reply.substr(std::min(reply.size(), reply.find("\r\n\r\n") + 4)), nullptr, false);
    expect_openai_error(body, c.name);
  }
  EXPECT_EQ(get_json(server.port(), "/health").status, 200);
}

TEST(ServeLimits, ApiKeysGuardTheApi) {
  TempDir dir;
  std::ofstream(dir.file("keys")) << "# team keys\nsk-test-0123456789\n\n  sk-other-abcdefgh  \n";
  ServerProcess server(serve_args(synth(dir), {"--api-key-file", dir.file("keys")}), dir.file("server.log"));
  const json request = {{"model", "tiny"}, {"prompt", "hi"}, {"max_tokens", 2}};
  const auto none = post_json(server.port(), "/v1/completions", request);
  EXPECT_EQ(none.status, 401);
  expect_openai_error(none.body, "no key");
  EXPECT_EQ(none.body["error"]["code"], "invalid_api_key");
  EXPECT_EQ(post_json(server.port(), "/v1/completions", request, "sk-wrong-000000000").status, 401);
  EXPECT_EQ(get_json(server.port(), "/v1/models", "sk-test-012345678").status, 401);  // a prefix is not the key
  EXPECT_EQ(post_json(server.port(), "/v1/completions", request, "sk-test-0123456789").status, 200);
  EXPECT_EQ(get_json(server.port(), "/v1/node", "sk-other-abcdefgh").status, 200);
  EXPECT_EQ(get_json(server.port(), "/health").status, 200);  // probes need no key
}

TEST(ServeLimits, MissingApiKeyFileIsAStartError) {
  TempDir dir;
  const auto r = testing::run_command(kBin + " serve -m " + synth(dir) + " --port 0 --api-key-file " + dir.file("none"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("API key file"));
}

TEST(ServeLimits, FullQueueGets429WithRetryAfter) {
  TempDir dir;
  // A 2048-token context, so the first request runs long enough (1000 tokens) to hold the only slot.
  ServerProcess server(serve_args(synth(dir, "embd=256,layers=4,heads=8,kv_heads=2,ff=704,ctx=2048"),
                                  {"--alias", "tiny", "--max-seqs", "1", "--max-queue", "1"}),
                       dir.file("server.log"));
  const json request = {{"model", "tiny"}, {"prompt", "busy"}, {"max_tokens", 8}, {"temperature", 0}};
  json first = request;
  first["max_tokens"] = 1000;
  first["ignore_eos"] = true;
  std::vector<std::future<testing::JsonReply>> replies;
  replies.push_back(std::async(std::launch::async, [&] { return post_json(server.port(), "/v1/completions", first); }));
  // Only once it runs do the others arrive: one of them waits in the queue, the rest are refused
  // (without this wait, all eight could reach the queue before the engine takes the first).
  for (int i = 0; i < 500; ++i) {
    if (get_json(server.port(), "/v1/node").body["load"]["running"] == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (int i = 1; i < 8; ++i) {
    replies.push_back(std::async(std::launch::async, [&] { return post_json(server.port(), "/v1/completions", request); }));
  }
  int ok = 0, refused = 0;
  for (auto& f : replies) {
    const auto r = f.get();
    if (r.status == 200) ++ok;
    if (r.status == 429) {
      ++refused;
      EXPECT_EQ(r.raw.header("retry-after"), "1");
      expect_openai_error(r.body, "429");
    }
  }
  EXPECT_GE(ok, 2);
  EXPECT_GE(refused, 1);
  EXPECT_EQ(ok + refused, 8);
}

TEST(ServeLimits, SigtermLetsStreamsInFlightFinish) {
  TempDir dir;
  const std::string model = synth(dir, "embd=512,layers=8,heads=8,kv_heads=8,ff=1536,ctx=2048", "q8_0");
  ServerProcess server(serve_args(model, {"--drain-timeout", "60"}), dir.file("server.log"));
  const json request = {{"model", "tiny"}, {"prompt", "drain me"}, {"max_tokens", 200}, {"temperature", 0}};
  auto stream = std::async(std::launch::async, [&] { return post_stream(server.port(), "/v1/completions", request); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  server.signal(SIGTERM);
  const auto s = stream.get();
  EXPECT_EQ(s.status, 200);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.finish, "length");
  EXPECT_TRUE(s.error.empty()) << s.error;
  EXPECT_EQ(server.wait(30), 0) << server.log();
  EXPECT_THAT(server.log(), HasSubstr("server stopped"));
}

TEST(ServeLimits, SigtermPastTheDrainTimeoutEndsStreamsCleanly) {
  TempDir dir;
  const std::string model = synth(dir, "embd=512,layers=8,heads=8,kv_heads=8,ff=1536,ctx=4096", "q8_0");
  ServerProcess server(serve_args(model, {"--drain-timeout", "0.2"}), dir.file("server.log"));
  const json request = {{"model", "tiny"}, {"prompt", "long"}, {"max_tokens", 4000}, {"temperature", 0}};
  auto stream = std::async(std::launch::async, [&] { return post_stream(server.port(), "/v1/completions", request); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  server.signal(SIGTERM);
  const auto s = stream.get();
  EXPECT_EQ(s.status, 200);
  EXPECT_TRUE(s.done);                              // the stream still ends with [DONE]
  EXPECT_THAT(s.error, HasSubstr("shutting down"));  // after an error event saying why
  EXPECT_EQ(server.wait(30), 0) << server.log();
}

}  // namespace
}  // namespace mixserve

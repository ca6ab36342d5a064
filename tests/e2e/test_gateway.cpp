// End-to-end tests of `mixserve gateway` over real `mixserve serve` nodes on loopback: proxying with
// the x-mixserve-* headers, streaming, fleet and explain endpoints, prefix affinity, draining, nodes
// joining and leaving, and failover when a node is killed under load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <thread>

#include "e2e/gateway_fleet.h"
#include "support/serve_client.h"

namespace mixserve {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::GatewayFleet;
using testing::get_json;
using testing::post_json;
using testing::post_stream;
using testing::TempDir;

json completion(const std::string& prompt, int max_tokens = 8) {
  return {{"model", "tiny"}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
}

TEST(Gateway, ProxiesWithRouteHeadersAndTheSameOutputAsTheNode) {
  TempDir dir;
  GatewayFleet fleet(dir, {{"a1", "huawei-ascend-910b", {}}, {"n1", "nvidia-h20", {}}});
  fleet.start_gateway();
  const auto direct = post_json(fleet.node_port(0), "/v1/completions", completion("The fleet"));
  ASSERT_EQ(direct.status, 200) << direct.raw.body;
  const auto via = post_json(fleet.port(), "/v1/completions", completion("The fleet"));
  ASSERT_EQ(via.status, 200) << via.raw.body;
  EXPECT_EQ(via.body["choices"][0]["text"], direct.body["choices"][0]["text"]);
  EXPECT_EQ(via.body["usage"], direct.body["usage"]);
  const std::string upstream = via.raw.header("x-mixserve-upstream");
  EXPECT_TRUE(upstream == "a1" || upstream == "n1") << upstream;
  EXPECT_EQ(via.raw.header("x-mixserve-chip"), upstream == "a1" ? "huawei-ascend-910b" : "nvidia-h20");
  EXPECT_THAT(via.raw.header("x-mixserve-route"), HasSubstr(upstream));

  // Chat: streamed equals whole; the usage chunk only reaches clients that asked for it.
  json chat = {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "hello"}}}}, {"max_tokens", 6},
               {"temperature", 0}};
  const auto whole = post_json(fleet.port(), "/v1/chat/completions", chat);
  ASSERT_EQ(whole.status, 200) << whole.raw.body;
  json streamed_req = chat;
  streamed_req["stream"] = true;
  const auto s1 = post_stream(fleet.port(), "/v1/chat/completions", streamed_req);
  EXPECT_EQ(s1.status, 200);
  EXPECT_TRUE(s1.done);
  EXPECT_EQ(s1.text, whole.body["choices"][0]["message"]["content"].get<std::string>());
  EXPECT_TRUE(s1.usage.is_null()) << "usage chunk sent though not asked for";
  streamed_req["stream_options"] = {{"include_usage", true}};
  const auto s2 = post_stream(fleet.port(), "/v1/chat/completions", streamed_req);
  EXPECT_TRUE(s2.done);
  EXPECT_EQ(s2.usage["prompt_tokens"], whole.body["usage"]["prompt_tokens"]);
  EXPECT_EQ(s2.usage["completion_tokens"], whole.body["usage"]["completion_tokens"]);

  // Models, fleet and route explanation.
  const auto models = get_json(fleet.port(), "/v1/models");
  ASSERT_EQ(models.status, 200);
  ASSERT_EQ(models.body["data"].size(), 1u);
  EXPECT_EQ(models.body["data"][0]["id"], "tiny");
  const auto f = get_json(fleet.port(), "/v1/fleet");
  ASSERT_EQ(f.status, 200);
  ASSERT_EQ(f.body["upstreams"].size(), 2u);
  for (const auto& u : f.body["upstreams"]) {
    EXPECT_EQ(u["healthy"], true) << u.dump();
    EXPECT_EQ(u["origin"], u["name"] == "a1" ? "domestic" : "foreign");
    EXPECT_EQ(u["load"]["capacity"], 16.0) << "capacity learnt from /v1/node";
  }
  const auto ex = get_json(fleet.port(), "/v1/route/explain?model=tiny&prompt=The%20fleet");
  ASSERT_EQ(ex.status, 200) << ex.raw.body;
  EXPECT_EQ(ex.body["candidates"].size(), 2u);
  EXPECT_TRUE(ex.body["chosen"].is_string());

  // Errors: unknown model, bad JSON, wrong method, unknown route.
  EXPECT_EQ(post_json(fleet.port(), "/v1/completions", {{"model", "nope"}, {"prompt", "x"}}).status, 404);
  serve::HttpClient client("127.0.0.1", fleet.port(), 10);
  const auto bad = client.request("POST", "/v1/completions", "{not json");
  EXPECT_EQ(bad.status, 400);
  EXPECT_TRUE(json::parse(bad.body, nullptr, false).contains("error"));
  EXPECT_EQ(client.request("GET", "/v1/completions").status, 405);
  EXPECT_EQ(client.request("GET", "/v1/nothing").status, 404);
  // An upstream's own verdict on a bad request is passed on, not retried.
  const auto refused = post_json(fleet.port(), "/v1/completions", {{"model", "tiny"}, {"prompt", "x"}, {"max_tokens", -5}});
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(refused.raw.header("x-mixserve-attempts"), "1");
  EXPECT_GT(testing::metric_of(fleet.port(), "mixserve_gateway_outcomes_total", {"outcome=\"ok\""}), 0);
}

TEST(Gateway, SamePromptPrefixGoesToTheSameUpstream) {
  TempDir dir;
  GatewayFleet fleet(dir, {{"a1", "huawei-ascend-910b", {}}, {"a2", "huawei-ascend-910b", {}}, {"n1", "nvidia-h20", {}}});
  fleet.start_gateway();
  std::map<std::string, std::set<std::string>> homes;
  for (int round = 0; round < 3; ++round) {
    for (int p = 0; p < 6; ++p) {
      // Longer than the 256 characters that form the affinity key; the question after it varies.
      std::string system = "System prompt number " + std::to_string(p) + ":";
      while (system.size() < 300) system += " you are a helpful assistant.";
      const auto r = post_json(fleet.port(), "/v1/completions", completion(system + " Question " + std::to_string(round), 2));
      ASSERT_EQ(r.status, 200);
      homes[system].insert(r.raw.header("x-mixserve-upstream"));
    }
  }
  std::set<std::string> used;
  for (const auto& [prompt, ups] : homes) {
    EXPECT_EQ(ups.size(), 1u) << "prefix '" << prompt << "' went to " << ups.size() << " upstreams";
    used.insert(ups.begin(), ups.end());
  }
  EXPECT_GE(used.size(), 2u) << "affinity should spread different prefixes";
}

TEST(Gateway, DrainingAnUpstreamLetsItsStreamFinishAndSendsNewWorkElsewhere) {
  TempDir dir;
  // A model with a 2048-token context, so one stream runs long enough to drain its node meanwhile.
  GatewayFleet fleet(dir, {{"a1", "huawei-ascend-910b", {}}, {"a2", "huawei-ascend-910b", {}}},
                     "embd=256,layers=4,heads=8,kv_heads=2,ff=704,ctx=2048");
  dir.write("admin.tok", "admin-secret-1234\n");
  fleet.start_gateway("admin_token_file: admin.tok\n");
  const std::string admin = "admin-secret-1234";
  std::atomic<bool> streaming{false};
  std::string upstream, body;
  std::thread t([&] {
    serve::HttpClient client("127.0.0.1", fleet.port(), 60);
    const json req = {{"model", "tiny"}, {"prompt", "A long story"}, {"max_tokens", 1500}, {"ignore_eos", true},
                      {"stream", true}};
    const auto r = client.request_streamed("POST", "/v1/completions", req.dump(), {}, [&](std::string_view data) {
      body.append(data);
      streaming = true;
      return true;
    });
    upstream = r.header("x-mixserve-upstream");
  });
  while (!streaming) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Drain whichever upstream took the stream (the other one is the only candidate left).
  const auto fleet_now = get_json(fleet.port(), "/v1/fleet").body;
  std::string busy, idle;
  for (const auto& u : fleet_now["upstreams"]) {
    (u["load"]["in_flight"].get<int>() > 0 ? busy : idle) = u["name"].get<std::string>();
  }
  ASSERT_FALSE(busy.empty());
  const auto drained = post_json(fleet.port(), "/admin/upstreams/" + busy + "/drain", json::object(), admin);
  ASSERT_EQ(drained.status, 200);
  EXPECT_EQ(drained.body["draining"], true);
  for (int i = 0; i < 4; ++i) {
    const auto r = post_json(fleet.port(), "/v1/completions", completion("other " + std::to_string(i), 2));
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.raw.header("x-mixserve-upstream"), idle);
  }
  EXPECT_EQ(get_json(fleet.port(), "/v1/fleet").body["upstreams"][busy == "a1" ? 0 : 1]["load"]["in_flight"], 1)
      << "the drained upstream's stream is still running";
  t.join();
  EXPECT_EQ(upstream, busy);
  EXPECT_NE(body.find("\"finish_reason\":\"length\""), std::string::npos) << "the stream ran to its end";
  EXPECT_NE(body.find("data: [DONE]"), std::string::npos);
  EXPECT_EQ(body.find("\"error\""), std::string::npos);
}

TEST(Gateway, NodesJoinWithATokenHeartbeatAndLeave) {
  TempDir dir;
  dir.write("join.tok", "join-secret-1234\n");
  GatewayFleet fleet(dir, {});
  fleet.start_gateway("join_token_file: join.tok\nheartbeat_timeout_s: 1.5\nhealth: {interval_s: 0.3}\n");
  const std::string gw = "http://127.0.0.1:" + std::to_string(fleet.port());
  auto node = [&](const std::string& name, const std::string& chip, const std::string& token_file) {
    return std::make_unique<testing::ServerProcess>(
        std::vector<std::string>{MIXSERVE_BIN, "serve", "-m", fleet.model(), "--alias", "tiny", "--port", "0", "--chip",
                                 chip, "-t", "1", "--join", gw, "--join-token-file", token_file, "--node-name", name},
        dir.file(name + ".log"));
  };
  auto c1 = node("c1", "cambricon-mlu590", dir.file("join.tok"));
  auto h1 = node("h1", "nvidia-h800", dir.file("join.tok"));
  auto upstream_names = [&] {
    std::set<std::string> names;
    const json f = get_json(fleet.port(), "/v1/fleet").body;  // named: a temporary would die before the loop
    for (const auto& u : f["upstreams"]) names.insert(u["name"].get<std::string>());
    return names;
  };
  // A node prints its "on http://" line only once it has joined.
  ASSERT_EQ(upstream_names(), (std::set<std::string>{"c1", "h1"})) << c1->log() << fleet.gateway().log();
  EXPECT_EQ(get_json(fleet.port(), "/v1/fleet").body["upstreams"][0]["joined"], true);
  const auto r = post_json(fleet.port(), "/v1/completions", completion("joined", 2));
  EXPECT_EQ(r.status, 200) << r.raw.body;

  // A wrong token is refused, and the node does not start.
  dir.write("wrong.tok", "not-the-token-99\n");
  EXPECT_THROW(node("bad", "nvidia-h20", dir.file("wrong.tok")), std::runtime_error);

  // SIGTERM: the node leaves at once. kill -9: removed after missed heartbeats.
  h1->signal(SIGTERM);
  EXPECT_EQ(h1->wait(20), 0);
  EXPECT_EQ(upstream_names(), (std::set<std::string>{"c1"}));
  c1->signal(SIGKILL);
  c1->wait(5);
  for (int i = 0; i < 50 && !upstream_names().empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(upstream_names().empty());
}

TEST(Gateway, KillingANodeUnderLoadLosesNoRequest) {
  TempDir dir;
  GatewayFleet fleet(dir, {{"a1", "huawei-ascend-910b", {}}, {"a2", "huawei-ascend-910b", {}}, {"n1", "nvidia-h20", {}}});
  fleet.start_gateway("ledger: ledger.db\nusage_interval_s: 0.5\nhealth: {interval_s: 0.5, failure_threshold: 2}\n"
                      "retry: {max_attempts: 4, backoff_s: 0.02}\n");
  std::atomic<bool> stop{false};
  std::atomic<int> whole_ok{0}, whole_failed{0}, streams_done{0}, streams_error{0}, streams_cut{0};
  std::vector<std::string> failures;
  std::mutex failures_mutex;
  std::vector<std::thread> clients;
  for (int c = 0; c < 6; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; !stop; ++i) {
        json req = completion("client " + std::to_string(c) + " request " + std::to_string(i), 24);
        req["ignore_eos"] = true;
        if (c % 2 == 0) {
          const auto r = post_json(fleet.port(), "/v1/completions", req);
          if (r.status == 200 && r.body["usage"]["completion_tokens"] == 24) {
            ++whole_ok;
          } else {
            ++whole_failed;
            std::lock_guard lock(failures_mutex);
            failures.push_back(std::to_string(r.status) + " " + r.raw.body);
          }
        } else {
          req["stream"] = true;
          const auto s = post_stream(fleet.port(), "/v1/completions", req);
          if (s.done && s.error.empty()) ++streams_done;
          else if (s.done && !s.error.empty()) ++streams_error;
          else ++streams_cut;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  fleet.node(2).signal(SIGKILL);  // n1
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(whole_failed.load(), 0) << (failures.empty() ? "" : failures.front());
  EXPECT_GT(whole_ok.load(), 10);
  EXPECT_EQ(streams_cut.load(), 0) << "every stream must end with [DONE] (after an error event when it failed)";
  EXPECT_GT(streams_done.load(), 5);
  const auto f = get_json(fleet.port(), "/v1/fleet");
  for (const auto& u : f.body["upstreams"]) {
    if (u["name"] == "n1") {
      EXPECT_EQ(u["healthy"], false);
    }
  }
  // Every request has an outcome: ok + stream errors = what the clients saw.
  const double ok = testing::metric_of(fleet.port(), "mixserve_gateway_outcomes_total", {"outcome=\"ok\""});
  EXPECT_EQ(ok, whole_ok + streams_done);
  fleet.gateway().signal(SIGTERM);
  EXPECT_EQ(fleet.gateway().wait(30), 0);
  const auto verify = testing::run_command(std::string(MIXSERVE_BIN) + " ledger verify --ledger " + dir.file("ledger.db"));
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  const auto show = testing::run_command(std::string(MIXSERVE_BIN) + " ledger show --ledger " + dir.file("ledger.db") + " --json");
  EXPECT_THAT(show.out, HasSubstr("usage_sample"));
  EXPECT_THAT(show.out, HasSubstr("served_tokens"));
}

}  // namespace
}  // namespace mixserve

// End-to-end test of applying a placement plan: a `mixserve serve --models-dir` host joins the gateway,
// the gateway's POST /admin/placement/apply sends it the plan's replicas, and the host loads and
// unloads replicas to match; the node's admin API refuses missing and wrong tokens.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "e2e/gateway_fleet.h"
#include "support/serve_client.h"

namespace mixserve {
namespace {

using nlohmann::json;
using testing::GatewayFleet;
using testing::get_json;
using testing::post_json;
using testing::TempDir;

std::set<std::string> served_models(uint16_t port) {
  std::set<std::string> ids;
  const json models = get_json(port, "/v1/models").body;
  for (const auto& m : models["data"]) ids.insert(m["id"].get<std::string>());
  return ids;
}

json plan_of(const std::vector<std::tuple<std::string, std::string, int>>& entries) {
  json models = json::array();
  for (const auto& [model, node, replicas] : entries) {
    models.push_back({{"name", model}, {"assignments", {{{"node", node}, {"replicas", replicas}}}}});
  }
  return {{"models", models}};
}

TEST(GatewayPlacement, ApplyingAPlanLoadsAndUnloadsReplicasOnTheNode) {
  TempDir dir;
  GatewayFleet fleet(dir, {});
  std::filesystem::create_directories(dir.file("models"));
  std::filesystem::copy_file(fleet.model(), dir.file("models/m1.gguf"));
  std::filesystem::copy_file(fleet.model(), dir.file("models/m2.gguf"));
  dir.write("join.tok", "join-token-00001\n");
  dir.write("admin.tok", "admin-token-0001\n");
  dir.write("node.tok", "node-token-00001\n");
  fleet.start_gateway("join_token_file: join.tok\nadmin_token_file: admin.tok\nnode_admin_token_file: node.tok\n");
  testing::ServerProcess host({MIXSERVE_BIN, "serve", "-m", dir.file("models/m1.gguf"), "--models-dir", dir.file("models"),
                               "--admin-token-file", dir.file("node.tok"), "--port", "0", "-t", "1", "--chip",
                               "huawei-ascend-910b", "--node-name", "a1", "--join",
                               "http://127.0.0.1:" + std::to_string(fleet.port()), "--join-token-file", dir.file("join.tok")},
                              dir.file("host.log"));
  EXPECT_EQ(served_models(fleet.port()), (std::set<std::string>{"m1"}));
  const json f = get_json(fleet.port(), "/v1/fleet").body;
  ASSERT_EQ(f["upstreams"].size(), 1u);
  EXPECT_EQ(f["upstreams"][0]["name"], "a1/m1");
  EXPECT_EQ(f["upstreams"][0]["node"], "a1");
  const std::string admin_url = f["upstreams"][0]["admin_url"];
  const uint16_t admin_port = static_cast<uint16_t>(std::stoi(admin_url.substr(admin_url.rfind(':') + 1)));

  // The node's admin API: missing, wrong and the gateway's own admin token are refused.
  for (const std::string& token : {std::string(), std::string("wrong-token-0001"), std::string("admin-token-0001")}) {
    serve::HttpClient client("127.0.0.1", admin_port, 10);
    serve::HttpHeaders h;
    if (!token.empty()) h.emplace_back("authorization", "Bearer " + token);
    EXPECT_EQ(client.request("GET", "/admin/models", "", h).status, 401) << token;
    EXPECT_EQ(client.request("PUT", "/admin/models", R"({"models":{"m2":1}})", h).status, 401) << token;
  }
  // The gateway's apply endpoint needs its admin token.
  EXPECT_EQ(post_json(fleet.port(), "/admin/placement/apply", plan_of({{"m2", "a1", 1}})).status, 401);
  EXPECT_EQ(post_json(fleet.port(), "/admin/placement/apply", plan_of({{"m2", "a1", 1}}), "node-token-00001").status, 401);
  EXPECT_EQ(post_json(fleet.port(), "/admin/placement/apply", json{{"not", "a plan"}}, "admin-token-0001").status, 400);

  // m1 x1 + m2 x2 on a1, and a node the gateway does not know.
  const auto applied = post_json(fleet.port(), "/admin/placement/apply",
                                 plan_of({{"m1", "a1", 1}, {"m2", "a1", 2}, {"m3", "nowhere", 1}}), "admin-token-0001");
  ASSERT_EQ(applied.status, 200) << applied.raw.body;
  ASSERT_EQ(applied.body["nodes"].size(), 2u);
  for (const auto& n : applied.body["nodes"]) {
    EXPECT_EQ(n["status"], n["node"] == "a1" ? "applied" : "unreachable") << n.dump();
  }
  EXPECT_EQ(served_models(fleet.port()), (std::set<std::string>{"m1", "m2"}));
  const auto r2 = post_json(fleet.port(), "/v1/completions", {{"model", "m2"}, {"prompt", "hi"}, {"max_tokens", 2}});
  EXPECT_EQ(r2.status, 200) << r2.raw.body;
  EXPECT_THAT(r2.raw.header("x-mixserve-upstream"), ::testing::StartsWith("a1/m2"));

  // Only m2 x1: m1 and the second m2 replica are unloaded; m1 is no longer served.
  const auto second = post_json(fleet.port(), "/admin/placement/apply", plan_of({{"m2", "a1", 1}}), "admin-token-0001");
  ASSERT_EQ(second.status, 200) << second.raw.body;
  EXPECT_EQ(second.body["nodes"][0]["actions"].size(), 2u) << second.raw.body;
  EXPECT_EQ(served_models(fleet.port()), (std::set<std::string>{"m2"}));
  EXPECT_EQ(post_json(fleet.port(), "/v1/completions", {{"model", "m1"}, {"prompt", "hi"}, {"max_tokens", 2}}).status, 404);

  // A model without a file is refused by the node, and nothing else changes.
  const auto missing = post_json(fleet.port(), "/admin/placement/apply", plan_of({{"m2", "a1", 1}, {"m9", "a1", 1}}),
                                 "admin-token-0001");
  ASSERT_EQ(missing.status, 200);
  EXPECT_EQ(missing.body["nodes"][0]["status"], "refused");
  EXPECT_THAT(missing.body["nodes"][0]["error"].get<std::string>(), ::testing::HasSubstr("m9"));
  EXPECT_EQ(served_models(fleet.port()), (std::set<std::string>{"m2"}));

  // Plan and apply in one step: `mixserve place --apply` on a fleet file naming the node.
  dir.write("fleet.yaml",
                      "nodes:\n  - {name: a1, devices: [{chip: huawei-ascend-910b, count: 2}]}\n");
  dir.write("demand.yaml",
                      "models:\n"
                      "  - {name: m1, weights_gib: 0.01, stacks: [cann], demand_tokens_per_s: 10}\n"
                      "  - {name: m2, weights_gib: 0.01, stacks: [cann], demand_tokens_per_s: 10}\n");
  const auto placed = testing::run_command(std::string(MIXSERVE_BIN) + " place --fleet " + dir.file("fleet.yaml") +
                                           " --demand " + dir.file("demand.yaml") + " --apply http://127.0.0.1:" +
                                           std::to_string(fleet.port()) + " --admin-token-file " + dir.file("admin.tok"));
  EXPECT_EQ(placed.exit_code, 0) << placed.out << placed.err;
  EXPECT_THAT(placed.out, ::testing::HasSubstr("applied"));
  EXPECT_EQ(served_models(fleet.port()), (std::set<std::string>{"m1", "m2"}));
}

}  // namespace
}  // namespace mixserve

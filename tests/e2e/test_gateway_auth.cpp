// End-to-end tests of the gateway's security: tenant keys on the API, the admin token on admin
// paths, join tokens for nodes (each refusing missing and wrong tokens, and the token of another
// role), and per-tenant request-rate and body-size limits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "e2e/gateway_fleet.h"
#include "support/serve_client.h"

namespace mixserve {
namespace {

using nlohmann::json;
using testing::GatewayFleet;
using testing::TempDir;

struct Call {
  std::string method;
  std::string path;
  std::string body;
};

int status_of(uint16_t port, const Call& c, const std::string& token) {
  serve::HttpClient client("127.0.0.1", port, 10);
  serve::HttpHeaders headers;
  if (!token.empty()) headers.emplace_back("authorization", "Bearer " + token);
  return client.request(c.method, c.path, c.body, headers).status;
}

class GatewayAuth : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.write("acme.keys", "acme-key-000001\n");
    dir_.write("slow.keys", "slow-key-000001\n");
    dir_.write("admin.tok", "admin-token-0001\n");
    dir_.write("join.tok", "join-token-00001\n");
    fleet_ = std::make_unique<GatewayFleet>(dir_, std::vector<testing::NodeSpec>{{"a1", "huawei-ascend-910b", {}}});
    fleet_->start_gateway(
        "admin_token_file: admin.tok\njoin_token_file: join.tok\n"
        "tenants:\n"
        "  - {name: acme, key_file: acme.keys}\n"
        "  - {name: slow, key_file: slow.keys, requests_per_s: 0.5, burst: 2, max_body_bytes: 200}\n");
  }
  uint16_t port() const { return fleet_->port(); }

  TempDir dir_;
  std::unique_ptr<GatewayFleet> fleet_;
  const std::string tenant_ = "acme-key-000001";
  const std::string admin_ = "admin-token-0001";
  const std::string join_ = "join-token-00001";
};

TEST_F(GatewayAuth, EveryProtectedPathRefusesMissingWrongAndOtherRolesTokens) {
  const std::string completion = R"({"model":"tiny","prompt":"hi","max_tokens":2})";
  const std::string join_body =
      R"({"name":"x1","url":"http://127.0.0.1:9","chip":"nvidia-h20","devices":1,"models":["tiny"]})";
  const std::vector<std::pair<Call, std::string>> cases = {
      {{"POST", "/v1/completions", completion}, tenant_},
      {{"POST", "/v1/chat/completions", R"({"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":2})"}, tenant_},
      {{"GET", "/v1/models", ""}, tenant_},
      {{"GET", "/v1/route/explain?model=tiny", ""}, tenant_},
      {{"GET", "/v1/fleet", ""}, admin_},
      {{"GET", "/admin/upstreams", ""}, admin_},
      {{"POST", "/admin/upstreams/a1/drain", ""}, admin_},
      {{"POST", "/admin/upstreams/a1/undrain", ""}, admin_},
      {{"POST", "/admin/placement/apply", R"({"models":[]})"}, admin_},
      {{"POST", "/v1/join", join_body}, join_},
      {{"POST", "/v1/leave", R"({"name":"x1"})"}, join_},
  };
  for (const auto& [call, right] : cases) {
    const std::string what = call.method + " " + call.path;
    EXPECT_EQ(status_of(port(), call, ""), 401) << what << " without a token";
    EXPECT_EQ(status_of(port(), call, "wrong-token-12345"), 401) << what << " with a wrong token";
    // Another role's token: tenants cannot administer or join; admins and nodes are not tenants.
    for (const std::string& other : {tenant_, admin_, join_}) {
      if (other == right) continue;
      const bool fleet_view = call.path == "/v1/fleet" && other == tenant_;  // tenants may read the fleet
      if (!fleet_view) {
        EXPECT_EQ(status_of(port(), call, other), 401) << what << " with another role's token";
      }
    }
    EXPECT_EQ(status_of(port(), call, right), 200) << what << " with the right token";
  }
}

TEST_F(GatewayAuth, TenantRateAndBodyLimits) {
  const Call c{"POST", "/v1/completions", R"({"model":"tiny","prompt":"hi","max_tokens":1})"};
  // Burst of 2, then 429 with Retry-After; the other tenant is not affected.
  EXPECT_EQ(status_of(port(), c, "slow-key-000001"), 200);
  EXPECT_EQ(status_of(port(), c, "slow-key-000001"), 200);
  serve::HttpClient client("127.0.0.1", port(), 10);
  const auto limited = client.request(c.method, c.path, c.body, {{"authorization", "Bearer slow-key-000001"}});
  EXPECT_EQ(limited.status, 429);
  EXPECT_FALSE(limited.header("retry-after").empty());
  EXPECT_EQ(status_of(port(), c, tenant_), 200);
  // Body over the tenant's 200 bytes.
  const std::string big = R"({"model":"tiny","max_tokens":1,"prompt":"hi","user":")" + std::string(300, 'u') + R"("})";
  const auto too_big = client.request("POST", "/v1/completions", big, {{"authorization", "Bearer slow-key-000001"}});
  EXPECT_EQ(too_big.status, 413);
  EXPECT_EQ(status_of(port(), {"POST", "/v1/completions", big}, tenant_), 200);
}

}  // namespace
}  // namespace mixserve

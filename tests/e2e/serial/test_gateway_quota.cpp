// End-to-end tests of the gateway's quota controller over real nodes: the domestic node is made
// slower (one sequence at a time against eight on the foreign node), and sustained load must keep
// the served-token share at or above the threshold in every window while running as much foreign
// work as the rule allows; enforce mode refuses rather than break the rule, audit mode serves and
// records the violation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <mutex>
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
using Clock = std::chrono::steady_clock;

constexpr double kWindowS = 2.0;

struct Served {
  double t = 0;  // seconds since the load started, when the reply arrived
  bool domestic = false;
  double tokens = 0;
};

struct LoadResult {
  std::vector<Served> served;
  std::vector<std::string> errors;
  double seconds = 0;
  double domestic_busy_fraction = 0;  // share of fleet samples with a domestic request in flight
};

std::string policy_yaml(double threshold, const std::string& mode) {
  return "rules:\n  - name: national\n    basis: served_tokens\n    min_domestic_share: " + std::to_string(threshold) +
         "\n    mode: " + mode + "\n";
}

// `clients` closed-loop clients for `seconds`, sampling /v1/fleet every 100 ms.
LoadResult run_load(uint16_t port, int clients, double seconds) {
  LoadResult out;
  std::mutex mutex;
  std::atomic<bool> stop{false};
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; !stop; ++i) {
        const json req = {{"model", "tiny"}, {"prompt", "client " + std::to_string(c) + " says " + std::to_string(i)},
                          {"max_tokens", 24}, {"ignore_eos", true}};
        const auto r = post_json(port, "/v1/completions", req);
        const double t = std::chrono::duration<double>(Clock::now() - t0).count();
        std::lock_guard lock(mutex);
        if (r.status != 200) {
          out.errors.push_back(std::to_string(r.status) + " " + r.raw.body);
          continue;
        }
        out.served.push_back({t, r.raw.header("x-mixserve-origin") == "domestic",
                              r.body["usage"]["total_tokens"].get<double>()});
      }
    });
  }
  int samples = 0, busy = 0;
  while (std::chrono::duration<double>(Clock::now() - t0).count() < seconds) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto f = get_json(port, "/v1/fleet");
    if (f.status != 200) continue;
    bool domestic_busy = false;
    for (const auto& u : f.body["upstreams"]) {
      if (u["origin"] == "domestic" && u["load"]["in_flight"].get<int>() > 0) domestic_busy = true;
    }
    // Skip the first half second: the load is still ramping up.
    if (std::chrono::duration<double>(Clock::now() - t0).count() > 0.5) {
      ++samples;
      busy += domestic_busy ? 1 : 0;
    }
  }
  stop = true;
  for (auto& t : threads) t.join();
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  out.domestic_busy_fraction = samples > 0 ? static_cast<double>(busy) / samples : 0;
  return out;
}

// The lowest domestic share over every sliding window ending at a reply, once a full window has passed.
double lowest_window_share(const std::vector<Served>& served) {
  double lowest = 1.0;
  for (const auto& end : served) {
    if (end.t < kWindowS) continue;
    double d = 0, total = 0;
    for (const auto& s : served) {
      if (s.t > end.t - kWindowS && s.t <= end.t) {
        total += s.tokens;
        d += s.domestic ? s.tokens : 0;
      }
    }
    if (total > 0) lowest = std::min(lowest, d / total);
  }
  return lowest;
}

GatewayFleet slow_domestic_fleet(const TempDir& dir) {
  return GatewayFleet(dir, {{"d1", "huawei-ascend-910b", {"--max-seqs", "1"}}, {"f1", "nvidia-h800", {"--max-seqs", "8"}}});
}

std::string quota_config(double queue_timeout_s) {
  return "policy: policy.yaml\nquota: {window_s: " + std::to_string(kWindowS) + ", queue_timeout_s: " +
         std::to_string(queue_timeout_s) + ", margin: 0.02}\nhealth: {interval_s: 0.5}\n";
}

TEST(GatewayQuota, HalfDomesticInEveryWindowAtNearlyTheBestThroughputTheRuleAllows) {
  TempDir dir;
  auto fleet = slow_domestic_fleet(dir);
  dir.write("policy.yaml", policy_yaml(0.5, "enforce"));
  fleet.start_gateway(quota_config(30));
  const LoadResult r = run_load(fleet.port(), 10, 6.0);
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  double d = 0, f = 0;
  for (const auto& s : r.served) (s.domestic ? d : f) += s.tokens;
  ASSERT_GT(d, 0);
  ASSERT_GT(f, 0) << "the rule allows foreign work; none was sent";
  EXPECT_GE(lowest_window_share(r.served), 0.5);
  // The domestic node is the binding resource (busy all along), and the foreign node can take more
  // than the rule allows, so the best throughput under the rule is domestic tokens / threshold.
  EXPECT_GE(r.domestic_busy_fraction, 0.9);
  const double best = d / 0.5;
  const double achieved = d + f;
  EXPECT_GE(achieved, 0.9 * best) << "domestic " << d << " foreign " << f << " tokens in " << r.seconds << " s";
  std::cout << "[ measured ] domestic share " << d / (d + f) << ", throughput " << achieved / r.seconds
            << " tok/s = " << achieved / best * 100 << "% of the best under the rule (" << best / r.seconds
            << " tok/s), domestic busy " << r.domestic_busy_fraction * 100 << "% of samples\n";
}

TEST(GatewayQuota, DomesticOnlyRuleSendsNothingAbroadAndRefusesWhenDomesticIsGone) {
  TempDir dir;
  auto fleet = slow_domestic_fleet(dir);
  dir.write("policy.yaml", policy_yaml(1.0, "enforce"));
  fleet.start_gateway(quota_config(1.0));
  const LoadResult r = run_load(fleet.port(), 4, 3.0);
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  ASSERT_GT(r.served.size(), 5u);
  for (const auto& s : r.served) EXPECT_TRUE(s.domestic);
  EXPECT_EQ(lowest_window_share(r.served), 1.0);
  // Domestic capacity gone: requests wait the queue timeout, then 429 naming the quota; the foreign
  // node, though idle and healthy, takes nothing.
  fleet.node(0).signal(SIGKILL);
  fleet.node(0).wait(5);
  for (int i = 0; i < 50; ++i) {  // the next health check (every 0.5 s) notices
    if (get_json(fleet.port(), "/v1/fleet").body["upstreams"][0]["healthy"] == false) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto refused = post_json(fleet.port(), "/v1/completions", {{"model", "tiny"}, {"prompt", "x"}, {"max_tokens", 2}});
  EXPECT_EQ(refused.status, 429) << refused.raw.body;
  EXPECT_EQ(refused.body["error"]["code"], "domestic_quota");
  EXPECT_FALSE(refused.raw.header("retry-after").empty());
  EXPECT_LE(testing::metric_of(fleet.port(), "mixserve_gateway_tokens_total", {"origin=\"foreign\""}), 0)
      << "no foreign series (or zero) expected";
}

TEST(GatewayQuota, AuditModeServesAbroadAndRecordsTheViolation) {
  TempDir dir;
  auto fleet = slow_domestic_fleet(dir);
  dir.write("policy.yaml", policy_yaml(1.0, "audit"));
  fleet.start_gateway(quota_config(30) + "ledger: ledger.db\n");
  const LoadResult r = run_load(fleet.port(), 6, 2.0);
  ASSERT_TRUE(r.errors.empty()) << r.errors.front();
  size_t foreign = 0;
  for (const auto& s : r.served) foreign += s.domestic ? 0 : 1;
  EXPECT_GT(foreign, 0u) << "audit mode must not hold work back";
  EXPECT_GT(testing::metric_of(fleet.port(), "mixserve_gateway_quota_decisions_total", {"decision=\"audit_violation\""}), 0);
  const auto fleet_json = get_json(fleet.port(), "/v1/fleet").body;
  EXPECT_EQ(fleet_json["quota"]["rules"][0]["compliant"], false);
  fleet.gateway().signal(SIGTERM);
  ASSERT_EQ(fleet.gateway().wait(30), 0);
  const auto show = testing::run_command(std::string(MIXSERVE_BIN) + " ledger show --json --ledger " + dir.file("ledger.db"));
  EXPECT_NE(show.out.find("quota_audit_violation"), std::string::npos);
}

}  // namespace
}  // namespace mixserve

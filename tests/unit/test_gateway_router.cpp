// Gateway routing (rank_upstreams, affinity_key), the upstream's circuit breaker and load cap, and the
// UpstreamSet (add, join, remove). Time points are passed explicitly; nothing sleeps.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "gateway/router.h"
#include "gateway/upstream.h"

namespace mixserve::gateway {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using UpstreamPtr = std::shared_ptr<Upstream>;

UpstreamConfig config_of(const std::string& name, std::vector<std::string> models = {"m"}, int64_t max_in_flight = 64,
                         uint16_t port = 8000, std::string chip = "chip-x") {
  UpstreamConfig c;
  c.name = name;
  c.endpoint = Endpoint{"10.0.0.1", port};
  c.chip = std::move(chip);
  c.devices = 1;
  c.models = std::move(models);
  c.max_in_flight = max_in_flight;
  return c;
}

UpstreamPtr make(const std::string& name, bool domestic = true, std::vector<std::string> models = {"m"},
                 int64_t max_in_flight = 64) {
  return std::make_shared<Upstream>(config_of(name, std::move(models), max_in_flight), domestic,
                                    domestic ? "CN" : "US", false);
}

Clock::duration secs(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

QuotaDecision any_origin() { return QuotaDecision{true, false, "ok"}; }
QuotaDecision domestic_only() { return QuotaDecision{false, false, "rule 'r' would break"}; }

RouteRanking rank(const std::vector<UpstreamPtr>& all, const std::string& key = "",
                  const QuotaDecision& quota = any_origin(), const RoutingWeights& weights = RoutingWeights{},
                  Clock::time_point now = Clock::now()) {
  return rank_upstreams(all, "m", key, weights, quota, now);
}

std::vector<std::string> names(const RouteRanking& r) {
  std::vector<std::string> out;
  for (const auto& s : r.ranked) out.push_back(s.state.name);
  return out;
}

const ScoredUpstream& cand(const RouteRanking& r, const std::string& name) {
  for (const auto& s : r.ranked) {
    if (s.state.name == name) return s;
  }
  throw std::runtime_error("no candidate " + name);
}

std::string home_of(const std::vector<UpstreamPtr>& all, const std::string& key) {
  const auto r = rank(all, key);
  for (const auto& s : r.ranked) {
    if (s.affinity) return s.state.name;
  }
  return "";
}

// ---- rank_upstreams ----

TEST(Router, FasterUpstreamPreferred) {
  auto slow = make("a-slow"), fast = make("b-fast");
  slow->record_served(100, 50.0, 0.2);
  fast->record_served(100, 100.0, 0.2);
  const auto r = rank({slow, fast});
  EXPECT_EQ(names(r), (std::vector<std::string>{"b-fast", "a-slow"}));
  EXPECT_DOUBLE_EQ(cand(r, "b-fast").speed_term, 1.0);
  EXPECT_DOUBLE_EQ(cand(r, "a-slow").speed_term, 0.5);
  EXPECT_DOUBLE_EQ(cand(r, "b-fast").score, 1.0);
  EXPECT_DOUBLE_EQ(cand(r, "a-slow").score, 0.5);
  ASSERT_NE(r.best(), nullptr);
  EXPECT_EQ(r.best()->state.name, "b-fast");
  // The speed weight scales the term.
  RoutingWeights w;
  w.speed = 2;
  EXPECT_DOUBLE_EQ(cand(rank({slow, fast}, "", any_origin(), w), "a-slow").score, 1.0);
}

TEST(Router, UnmeasuredUpstreamCountsAsFastest) {
  auto measured = make("a"), fresh = make("b");
  measured->record_served(10, 80.0, 0.2);
  const auto r = rank({measured, fresh});
  EXPECT_DOUBLE_EQ(cand(r, "b").speed_term, 1.0);
  EXPECT_DOUBLE_EQ(cand(r, "a").speed_term, 1.0);
  // Equal scores fall back to the name.
  EXPECT_EQ(names(r), (std::vector<std::string>{"a", "b"}));
}

TEST(Router, SpeedIsAMovingAverage) {
  auto u = make("a");
  EXPECT_FALSE(u->snapshot().speed.has_value());
  u->record_served(10, 100.0, 0.25);
  EXPECT_DOUBLE_EQ(*u->snapshot().speed, 100.0) << "first sample taken as is";
  u->record_served(10, 20.0, 0.25);
  EXPECT_DOUBLE_EQ(*u->snapshot().speed, 0.75 * 100 + 0.25 * 20);
  u->record_served(10, std::nullopt, 0.25);
  u->record_served(10, 0.0, 0.25);
  EXPECT_DOUBLE_EQ(*u->snapshot().speed, 80.0) << "no or zero speed leaves the average alone";
  EXPECT_EQ(u->snapshot().requests_ok, 4);
  EXPECT_DOUBLE_EQ(u->snapshot().served_tokens, 40);
}

TEST(Router, LoadedUpstreamPenalisedByQueueWeight) {
  auto a = make("a"), b = make("b");
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(a->acquire());
  auto r = rank({a, b});
  EXPECT_EQ(r.best()->state.name, "b");
  EXPECT_DOUBLE_EQ(cand(r, "a").load_term, 16.0 / 64.0) << "no capacity reported: max_in_flight";
  EXPECT_DOUBLE_EQ(cand(r, "a").score, 1.0 - 0.25);
  EXPECT_DOUBLE_EQ(cand(r, "b").load_term, 0.0);
  // A capacity reported by the node replaces max_in_flight.
  a->update_from_node({}, 32, 0, 0);
  r = rank({a, b});
  EXPECT_DOUBLE_EQ(cand(r, "a").load_term, 0.5);
  // With the queue weight at zero the load no longer matters.
  RoutingWeights w;
  w.queue = 0;
  r = rank({a, b}, "", any_origin(), w);
  EXPECT_DOUBLE_EQ(cand(r, "a").score, cand(r, "b").score);
  EXPECT_EQ(r.best()->state.name, "a");
  // Releasing the load restores it.
  for (int i = 0; i < 16; ++i) a->release();
  r = rank({a, b});
  EXPECT_DOUBLE_EQ(cand(r, "a").load_term, 0.0);
}

TEST(Router, LoadCanOutweighSpeed) {
  auto fast = make("fast"), slow = make("slow");
  fast->record_served(1, 100.0, 0.2);
  slow->record_served(1, 80.0, 0.2);
  EXPECT_EQ(rank({fast, slow}).best()->state.name, "fast");
  for (int i = 0; i < 32; ++i) ASSERT_TRUE(fast->acquire());  // load 0.5 > speed gap 0.2
  EXPECT_EQ(rank({fast, slow}).best()->state.name, "slow");
}

TEST(Router, KvUsePenalised) {
  auto a = make("a"), b = make("b");
  a->update_from_node({}, 0, 0, 0.8);
  auto r = rank({a, b});
  EXPECT_EQ(r.best()->state.name, "b");
  EXPECT_DOUBLE_EQ(cand(r, "a").kv_term, 0.8);
  EXPECT_DOUBLE_EQ(cand(r, "a").score, 1.0 - 0.5 * 0.8);
  // kv_use is clamped to [0, 1].
  a->update_from_node({}, 0, 0, 1.7);
  EXPECT_DOUBLE_EQ(a->snapshot().kv_use, 1.0);
  b->update_from_node({}, 0, 0, -3);
  EXPECT_DOUBLE_EQ(b->snapshot().kv_use, 0.0);
}

TEST(Router, AffinitySameKeySameUpstream) {
  std::vector<UpstreamPtr> all = {make("u0"), make("u1"), make("u2"), make("u3")};
  const std::string key = "You are a helpful assistant. Summarise the following text";
  const auto first = rank(all, key);
  ASSERT_NE(first.best(), nullptr);
  const std::string chosen = first.best()->state.name;
  EXPECT_TRUE(first.best()->affinity);
  EXPECT_DOUBLE_EQ(first.best()->score, 1.0 + RoutingWeights{}.affinity);
  int flagged = 0;
  for (const auto& s : first.ranked) flagged += s.affinity ? 1 : 0;
  EXPECT_EQ(flagged, 1) << "exactly one prefix home";
  for (int i = 0; i < 20; ++i) EXPECT_EQ(rank(all, key).best()->state.name, chosen);
  // The home does not depend on the order the upstreams are listed in.
  std::vector<UpstreamPtr> reversed(all.rbegin(), all.rend());
  EXPECT_EQ(rank(reversed, key).best()->state.name, chosen);
  // No key: no home.
  for (const auto& s : rank(all, "").ranked) EXPECT_FALSE(s.affinity);
}

TEST(Router, AffinitySpreadsKeysOverUpstreams) {
  std::vector<UpstreamPtr> all = {make("node-a"), make("node-b"), make("node-c"), make("node-d")};
  std::map<std::string, int> count;
  for (int i = 0; i < 1000; ++i) ++count[rank(all, "prompt number " + std::to_string(i)).best()->state.name];
  ASSERT_EQ(count.size(), 4u);
  for (const auto& [name, n] : count) {
    EXPECT_GE(n, 150) << name;
    EXPECT_LE(n, 350) << name;
  }
}

TEST(Router, RemovingANonHomeUpstreamKeepsEveryHome) {
  std::vector<UpstreamPtr> all;
  for (int i = 0; i < 5; ++i) all.push_back(make("n" + std::to_string(i)));
  int moved_with_home = 0;
  for (int k = 0; k < 300; ++k) {
    const std::string key = "shared system prompt variant " + std::to_string(k);
    const std::string home = home_of(all, key);
    ASSERT_FALSE(home.empty());
    for (size_t drop = 0; drop < all.size(); ++drop) {
      std::vector<UpstreamPtr> rest;
      for (size_t i = 0; i < all.size(); ++i) {
        if (i != drop) rest.push_back(all[i]);
      }
      const std::string new_home = home_of(rest, key);
      if (all[drop]->name() == home) {
        EXPECT_NE(new_home, home);
        ++moved_with_home;
      } else {
        EXPECT_EQ(new_home, home) << "key " << k << " moved when " << all[drop]->name() << " left";
      }
    }
    // Adding an upstream moves a key only to the newcomer.
    std::vector<UpstreamPtr> more = all;
    more.push_back(make("n-new"));
    const std::string after_add = home_of(more, key);
    EXPECT_TRUE(after_add == home || after_add == "n-new") << after_add;
  }
  EXPECT_EQ(moved_with_home, 300);
}

TEST(Router, AffinityBonusYieldsToHeavyLoad) {
  std::vector<UpstreamPtr> all = {make("p"), make("q")};
  const std::string key = "abc";
  const std::string home = home_of(all, key);
  const auto& loaded = home == "p" ? all[0] : all[1];
  for (int i = 0; i < 48; ++i) ASSERT_TRUE(loaded->acquire());  // load 0.75 > affinity 0.5
  const auto r = rank(all, key);
  EXPECT_NE(r.best()->state.name, home);
  EXPECT_TRUE(cand(r, home).affinity) << "the home stays the home; it just loses on score";
}

TEST(Router, QuotaDomesticOnlyPutsDomesticFirst) {
  auto dom = make("dom", true), fgn = make("fgn", false);
  fgn->record_served(1, 200.0, 0.2);
  dom->record_served(1, 50.0, 0.2);
  auto r = rank({dom, fgn});
  EXPECT_EQ(r.best()->state.name, "fgn") << "any origin: the faster foreign one wins";
  r = rank({dom, fgn}, "", domestic_only());
  EXPECT_EQ(names(r), (std::vector<std::string>{"dom", "fgn"}));
  EXPECT_TRUE(cand(r, "dom").allowed);
  EXPECT_FALSE(cand(r, "fgn").allowed);
  ASSERT_NE(r.best(), nullptr);
  EXPECT_EQ(r.best()->state.name, "dom");
  EXPECT_TRUE(r.best()->state.domestic);
  EXPECT_FALSE(r.quota.foreign_allowed);
  // Only foreign upstreams: nothing usable, but they are still listed.
  r = rank({fgn}, "", domestic_only());
  EXPECT_EQ(r.best(), nullptr);
  ASSERT_EQ(r.ranked.size(), 1u);
  EXPECT_FALSE(r.ranked[0].allowed);
  EXPECT_TRUE(r.any_serves);
  EXPECT_TRUE(r.any_healthy);
  // A domestic upstream that is unavailable does not make foreign usable.
  dom->set_draining(true);
  EXPECT_EQ(rank({dom, fgn}, "", domestic_only()).best(), nullptr);
}

TEST(Router, DrainingAndOpenCircuitAreNotAvailable) {
  auto fast_draining = make("a"), open = make("b"), ok = make("c");
  fast_draining->record_served(1, 500.0, 0.2);
  open->record_served(1, 400.0, 0.2);
  ok->record_served(1, 10.0, 0.2);
  fast_draining->set_draining(true);
  const auto now = Clock::now();
  for (int i = 0; i < 3; ++i) open->record_failure("refused", 3, 5, now);
  auto r = rank({fast_draining, open, ok}, "", any_origin(), RoutingWeights{}, now);
  ASSERT_NE(r.best(), nullptr);
  EXPECT_EQ(r.best()->state.name, "c");
  EXPECT_EQ(r.ranked.back().available, false);
  EXPECT_FALSE(cand(r, "a").available);
  EXPECT_FALSE(cand(r, "b").available);
  EXPECT_TRUE(cand(r, "c").available);
  EXPECT_TRUE(r.any_healthy);
  // Without "c": nothing usable and nothing healthy.
  r = rank({fast_draining, open}, "", any_origin(), RoutingWeights{}, now);
  EXPECT_EQ(r.best(), nullptr);
  EXPECT_TRUE(r.any_serves);
  EXPECT_FALSE(r.any_healthy);
  EXPECT_EQ(r.summary(), "no usable upstream");
  // An unhealthy upstream (failed check) is unavailable too; one at its cap is unavailable but healthy.
  auto sick = make("sick");
  sick->set_healthy(false);
  auto full = make("full", true, {"m"}, 1);
  ASSERT_TRUE(full->acquire());
  r = rank({sick}, "", any_origin(), RoutingWeights{}, now);
  EXPECT_EQ(r.best(), nullptr);
  EXPECT_FALSE(r.any_healthy);
  r = rank({full}, "", any_origin(), RoutingWeights{}, now);
  EXPECT_EQ(r.best(), nullptr);
  EXPECT_TRUE(r.any_healthy) << "at its cap, not failed: the request should wait, not 503";
  // The open circuit becomes usable (half-open) once its time is up.
  r = rank({open}, "", any_origin(), RoutingWeights{}, now + secs(5));
  ASSERT_NE(r.best(), nullptr);
  EXPECT_EQ(r.best()->state.circuit, Circuit::kHalfOpen);
}

TEST(Router, UpstreamNotServingTheModelIsAbsent) {
  auto a = make("a", true, {"m"}), b = make("b", true, {"other"});
  auto r = rank({a, b});
  EXPECT_EQ(names(r), (std::vector<std::string>{"a"}));
  r = rank_upstreams({a, b}, "nobody", "", RoutingWeights{}, any_origin(), Clock::now());
  EXPECT_TRUE(r.ranked.empty());
  EXPECT_FALSE(r.any_serves);
  EXPECT_FALSE(r.any_healthy);
  EXPECT_EQ(r.best(), nullptr);
  EXPECT_TRUE(r.to_json().at("chosen").is_null());
}

TEST(Router, ModelsLearntFromTheNodeOnlyWhenNotConfigured) {
  auto learnt = make("learnt", true, {}), fixed = make("fixed", true, {"m"});
  EXPECT_FALSE(learnt->serves("m"));
  learnt->update_from_node({"m", "m2"}, 4, 0, 0);
  fixed->update_from_node({"m2"}, 4, 0, 0);
  EXPECT_TRUE(learnt->serves("m"));
  EXPECT_TRUE(learnt->serves("m2"));
  EXPECT_TRUE(fixed->serves("m"));
  EXPECT_FALSE(fixed->serves("m2")) << "configured models win over the node's report";
  learnt->update_from_node({}, 4, 0, 0);
  EXPECT_TRUE(learnt->serves("m")) << "an empty report does not forget the models";
}

TEST(Router, SummaryNamesTheChoice) {
  std::vector<UpstreamPtr> all = {make("alpha", true), make("beta", false)};
  auto r = rank(all, "");
  ASSERT_NE(r.best(), nullptr);
  std::string s = r.summary();
  EXPECT_NE(s.find(r.best()->state.name), std::string::npos) << s;
  EXPECT_NE(s.find("score=1.000"), std::string::npos) << s;
  EXPECT_NE(s.find("quota: any origin"), std::string::npos) << s;
  EXPECT_EQ(s.find("prefix home"), std::string::npos) << s;
  r = rank(all, "some key", domestic_only());
  s = r.summary();
  EXPECT_NE(s.find("alpha"), std::string::npos) << s;
  EXPECT_NE(s.find("domestic only"), std::string::npos) << s;
  if (r.best()->affinity) {
    EXPECT_NE(s.find("prefix home"), std::string::npos) << s;
  }
  QuotaDecision audit{true, true, "audit"};
  EXPECT_NE(rank(all, "", audit).summary().find("audit"), std::string::npos);
}

TEST(Router, ToJsonListsEveryCandidate) {
  auto a = make("a", true), b = make("b", false), c = make("c", true);
  c->set_draining(true);
  b->record_served(1, 100.0, 0.2);
  const auto r = rank({a, b, c}, "k", domestic_only());
  const json j = r.to_json();
  EXPECT_EQ(j.at("chosen"), "a");
  EXPECT_EQ(j.at("summary"), r.summary());
  EXPECT_FALSE(j.at("quota").at("foreign_allowed").get<bool>());
  EXPECT_EQ(j.at("quota").at("reason"), "rule 'r' would break");
  const auto& list = j.at("candidates");
  ASSERT_EQ(list.size(), 3u);
  std::map<std::string, json> by_name;
  for (const auto& e : list) by_name[e.at("upstream").get<std::string>()] = e;
  ASSERT_EQ(by_name.size(), 3u);
  EXPECT_EQ(list[0].at("upstream"), "a") << "ranked order";
  EXPECT_EQ(by_name["a"].at("origin"), "domestic");
  EXPECT_EQ(by_name["b"].at("origin"), "foreign");
  EXPECT_FALSE(by_name["b"].at("allowed_by_quota").get<bool>());
  EXPECT_TRUE(by_name["b"].at("available").get<bool>());
  EXPECT_FALSE(by_name["c"].at("available").get<bool>());
  EXPECT_TRUE(by_name["c"].at("draining").get<bool>());
  EXPECT_EQ(by_name["a"].at("circuit"), "closed");
  EXPECT_EQ(by_name["a"].at("chip"), "chip-x");
  int homes = 0;
  for (const auto& e : list) {
    for (const char* k : {"score", "speed", "load", "kv", "prefix_home"}) EXPECT_TRUE(e.contains(k)) << k;
    homes += e.at("prefix_home").get<bool>() ? 1 : 0;
  }
  EXPECT_EQ(homes, 1);
}

// ---- affinity_key ----

TEST(RouterAffinityKey, PromptStringsAndArrays) {
  EXPECT_EQ(affinity_key(json{{"prompt", "abcdef"}}, 3), "abc");
  EXPECT_EQ(affinity_key(json{{"prompt", "abcdef"}}, 100), "abcdef");
  EXPECT_EQ(affinity_key(json{{"prompt", "abcdef"}}, 6), "abcdef");
  EXPECT_EQ(affinity_key(json{{"prompt", json::array({"ab", "cd"})}}, 100), R"(["ab","cd"])");
  EXPECT_EQ(affinity_key(json{{"prompt", json::array({1, 2, 3})}}, 100), "[1,2,3]");
  EXPECT_EQ(affinity_key(json{{"prompt", json::array({1, 2, 3})}}, 4), "[1,2");
  EXPECT_EQ(affinity_key(json{{"model", "m"}}, 100), "");
  EXPECT_EQ(affinity_key(json::object(), 100), "");
  // Same prefix, different tails beyond the limit: same key.
  EXPECT_EQ(affinity_key(json{{"prompt", std::string(300, 'x') + "tail one"}}, 256),
            affinity_key(json{{"prompt", std::string(300, 'x') + "other tail"}}, 256));
  EXPECT_EQ(affinity_key(json{{"prompt", std::string(300, 'x')}}, 256).size(), 256u);
}

TEST(RouterAffinityKey, ChatMessages) {
  const json body = {{"messages", json::array({{{"role", "system"}, {"content", "be brief"}},
                                               {{"role", "user"}, {"content", "hi"}}})}};
  EXPECT_EQ(affinity_key(body, 1000), "system:be brief\nuser:hi\n");
  EXPECT_EQ(affinity_key(body, 10), "system:be ");
  // Content parts (arrays) are taken as JSON text; non-object messages are skipped.
  const json parts = {{"messages", json::array({json("junk"), {{"role", "user"},
                                                               {"content", json::array({{{"type", "text"},
                                                                                         {"text", "x"}}})}}})}};
  EXPECT_EQ(affinity_key(parts, 1000), R"(user:[{"text":"x","type":"text"}])" "\n");
  // messages that is not a list gives no key.
  EXPECT_EQ(affinity_key(json{{"messages", "hello"}}, 100), "");
  // A long conversation is cut to the limit.
  json many = {{"messages", json::array()}};
  for (int i = 0; i < 100; ++i) many["messages"].push_back({{"role", "user"}, {"content", "message " + std::to_string(i)}});
  EXPECT_EQ(affinity_key(many, 50).size(), 50u);
  EXPECT_EQ(affinity_key(many, 50).substr(0, 15), "user:message 0\n");
  // Changing a late message does not change the key.
  json changed = many;
  changed["messages"][99]["content"] = "something else";
  EXPECT_EQ(affinity_key(many, 50), affinity_key(changed, 50));
}

// ---- circuit breaker ----

TEST(UpstreamCircuit, OpensAfterThresholdFailuresNotBefore) {
  auto u = make("u");
  const auto t0 = Clock::now();
  EXPECT_TRUE(u->available(t0));
  u->record_failure("boom 1", 3, 5, t0);
  u->record_failure("boom 2", 3, 5, t0);
  EXPECT_EQ(u->snapshot().circuit, Circuit::kClosed);
  EXPECT_TRUE(u->available(t0)) << "two failures of three";
  u->record_failure("boom 3", 3, 5, t0);
  const auto s = u->snapshot();
  EXPECT_EQ(s.circuit, Circuit::kOpen);
  EXPECT_EQ(s.last_error, "boom 3");
  EXPECT_EQ(s.requests_failed, 3);
  EXPECT_FALSE(u->available(t0));
  EXPECT_FALSE(u->available(t0 + secs(4.999)));
  EXPECT_EQ(u->snapshot().circuit, Circuit::kOpen);
}

TEST(UpstreamCircuit, HalfOpenAllowsExactlyOneTrialThenSuccessCloses) {
  auto u = make("u");
  const auto t0 = Clock::now();
  for (int i = 0; i < 2; ++i) u->record_failure("x", 2, 5, t0);
  ASSERT_FALSE(u->available(t0));
  const auto t1 = t0 + secs(5);
  EXPECT_TRUE(u->available(t1));
  EXPECT_EQ(u->snapshot().circuit, Circuit::kHalfOpen);
  EXPECT_TRUE(u->acquire()) << "the trial";
  EXPECT_FALSE(u->acquire()) << "only one trial at a time";
  EXPECT_FALSE(u->available(t1));
  EXPECT_EQ(u->snapshot().in_flight, 1);
  u->release();
  u->record_success();
  EXPECT_EQ(u->snapshot().circuit, Circuit::kClosed);
  EXPECT_TRUE(u->available(t1));
  EXPECT_TRUE(u->acquire());
  EXPECT_TRUE(u->acquire());
  EXPECT_EQ(u->snapshot().in_flight, 2);
  // Closed again: a single failure does not reopen it.
  u->record_failure("y", 2, 5, t1);
  EXPECT_EQ(u->snapshot().circuit, Circuit::kClosed);
}

TEST(UpstreamCircuit, FailedTrialReopensWithDoubledTime) {
  auto u = make("u");
  const auto t0 = Clock::now();
  for (int i = 0; i < 3; ++i) u->record_failure("x", 3, 5, t0);
  // Trial at +5 s fails: open for 10 s.
  auto t = t0 + secs(5);
  ASSERT_TRUE(u->available(t));
  ASSERT_TRUE(u->acquire());
  u->release();
  u->record_failure("trial failed", 3, 5, t);
  EXPECT_EQ(u->snapshot().circuit, Circuit::kOpen);
  EXPECT_FALSE(u->available(t + secs(5)));
  EXPECT_FALSE(u->available(t + secs(9.99)));
  EXPECT_TRUE(u->available(t + secs(10)));
  // Each failed trial doubles the time, up to 60 s.
  double expected = 10;
  for (int round = 0; round < 5; ++round) {
    t += secs(expected);
    ASSERT_TRUE(u->available(t));
    ASSERT_EQ(u->snapshot().circuit, Circuit::kHalfOpen);
    u->record_failure("trial failed", 3, 5, t);
    expected = std::min(60.0, expected * 2);
    SCOPED_TRACE(expected);
    EXPECT_FALSE(u->available(t + secs(expected - 0.01)));
    EXPECT_TRUE(u->available(t + secs(expected)));
  }
  EXPECT_DOUBLE_EQ(expected, 60);
  // A success resets the doubling: the next opening lasts open_s again.
  u->record_success();
  t += secs(100);
  for (int i = 0; i < 3; ++i) u->record_failure("x", 3, 5, t);
  EXPECT_FALSE(u->available(t + secs(4.99)));
  EXPECT_TRUE(u->available(t + secs(5)));
}

TEST(UpstreamCircuit, HealthCheckFailureDuringHalfOpenReopens) {
  auto u = make("u");
  const auto t0 = Clock::now();
  u->record_failure("x", 1, 2, t0);
  ASSERT_TRUE(u->available(t0 + secs(2)));
  u->record_failure("health check: refused", 1, 2, t0 + secs(2), false);
  const auto s = u->snapshot();
  EXPECT_EQ(s.circuit, Circuit::kOpen);
  EXPECT_EQ(s.requests_failed, 1) << "a failed check is not a failed request";
  EXPECT_EQ(s.last_error, "health check: refused");
  EXPECT_FALSE(u->available(t0 + secs(5.99)));
  EXPECT_TRUE(u->available(t0 + secs(6)));
}

// After a failed trial the circuit is open for twice open_s. A request that was already in flight and
// fails afterwards (or a failing health check) hits the `consecutive_failures_ >= threshold` branch
// and re-opens with plain open_s, so the doubled time is cut short.
TEST(UpstreamCircuit, LateFailureWhileOpenDoesNotShortenDoubledOpenTime) {
  auto u = make("u");
  const auto t0 = Clock::now();
  for (int i = 0; i < 3; ++i) u->record_failure("x", 3, 5, t0);
  const auto t1 = t0 + secs(5);
  ASSERT_TRUE(u->available(t1));
  u->record_failure("trial failed", 3, 5, t1);  // open until t1 + 10 s
  ASSERT_FALSE(u->available(t1 + secs(9)));
  u->record_failure("late failure of an older request", 3, 5, t1 + secs(1));
  EXPECT_FALSE(u->available(t1 + secs(7))) << "the doubled open time (until t1 + 10 s) was cut to t1 + 6 s";
}

TEST(UpstreamCircuit, SuccessResetsTheFailureCount) {
  auto u = make("u");
  const auto t0 = Clock::now();
  u->record_failure("a", 3, 5, t0);
  u->record_failure("b", 3, 5, t0);
  u->record_success();
  u->record_failure("c", 3, 5, t0);
  u->record_failure("d", 3, 5, t0);
  EXPECT_EQ(u->snapshot().circuit, Circuit::kClosed);
  EXPECT_TRUE(u->available(t0));
  u->record_failure("e", 3, 5, t0);
  EXPECT_EQ(u->snapshot().circuit, Circuit::kOpen);
}

TEST(UpstreamCircuit, MaxInFlightCapsAcquire) {
  auto u = make("u", true, {"m"}, 2);
  const auto t0 = Clock::now();
  EXPECT_TRUE(u->acquire());
  EXPECT_TRUE(u->available(t0));
  EXPECT_TRUE(u->acquire());
  EXPECT_FALSE(u->available(t0)) << "at its cap";
  EXPECT_FALSE(u->acquire());
  EXPECT_EQ(u->snapshot().in_flight, 2) << "a refused acquire counts nothing";
  u->release();
  EXPECT_TRUE(u->available(t0));
  EXPECT_TRUE(u->acquire());
  EXPECT_EQ(u->snapshot().in_flight, 2);
}

TEST(UpstreamCircuit, DrainingAndHealth) {
  auto u = make("u");
  const auto t0 = Clock::now();
  u->set_draining(true);
  EXPECT_FALSE(u->available(t0));
  EXPECT_TRUE(u->snapshot().draining);
  u->set_draining(false);
  EXPECT_TRUE(u->available(t0));
  u->set_healthy(false);
  EXPECT_FALSE(u->available(t0));
  u->record_success();
  EXPECT_TRUE(u->snapshot().healthy) << "a success marks it healthy";
  EXPECT_TRUE(u->available(t0));
  u->heartbeat(t0 + secs(3));
  EXPECT_EQ(u->last_heartbeat(), t0 + secs(3));
}

TEST(UpstreamCircuit, SnapshotToJson) {
  UpstreamConfig c = config_of("gpu-1", {"m", "m2"}, 8, 8123, "nvidia-h20");
  c.devices = 4;
  auto u = std::make_shared<Upstream>(c, false, "US", true);
  const auto t0 = Clock::now();
  ASSERT_TRUE(u->acquire());
  u->update_from_node({}, 16, 3, 0.25);
  u->record_served(120, 40.0, 0.2);
  u->record_failure("connect refused", 1, 5, t0);
  json j = u->snapshot().to_json();
  EXPECT_EQ(j.at("name"), "gpu-1");
  EXPECT_EQ(j.at("url"), "http://10.0.0.1:8123");
  EXPECT_EQ(j.at("chip"), "nvidia-h20");
  EXPECT_EQ(j.at("origin"), "foreign");
  EXPECT_EQ(j.at("country"), "US");
  EXPECT_EQ(j.at("devices"), 4);
  EXPECT_TRUE(j.at("joined").get<bool>());
  EXPECT_EQ(j.at("models"), json::array({"m", "m2"}));
  EXPECT_TRUE(j.at("healthy").get<bool>());
  EXPECT_EQ(j.at("circuit"), "open");
  EXPECT_FALSE(j.at("draining").get<bool>());
  EXPECT_EQ(j.at("last_error"), "connect refused");
  EXPECT_EQ(j.at("load").at("in_flight"), 1);
  EXPECT_EQ(j.at("load").at("max_in_flight"), 8);
  EXPECT_DOUBLE_EQ(j.at("load").at("capacity").get<double>(), 16);
  EXPECT_DOUBLE_EQ(j.at("load").at("node_queue").get<double>(), 3);
  EXPECT_DOUBLE_EQ(j.at("load").at("kv_use").get<double>(), 0.25);
  EXPECT_EQ(j.at("requests_ok"), 1);
  EXPECT_EQ(j.at("requests_failed"), 1);
  EXPECT_DOUBLE_EQ(j.at("served_tokens").get<double>(), 120);
  EXPECT_DOUBLE_EQ(j.at("speed_tokens_per_s").get<double>(), 40);
  j = make("fresh")->snapshot().to_json();
  EXPECT_TRUE(j.at("speed_tokens_per_s").is_null());
  EXPECT_EQ(j.at("origin"), "domestic");
  EXPECT_EQ(j.at("circuit"), "closed");
  EXPECT_FALSE(j.at("joined").get<bool>());
  EXPECT_EQ(circuit_name(Circuit::kHalfOpen), "half-open");
  EXPECT_EQ(circuit_name(Circuit::kOpen), "open");
  EXPECT_EQ(circuit_name(Circuit::kClosed), "closed");
}

// ---- UpstreamSet ----

std::shared_ptr<Upstream> joined(const std::string& name, uint16_t port, std::vector<std::string> models = {"m"}) {
  return std::make_shared<Upstream>(config_of(name, std::move(models), 64, port), true, "CN", true);
}

TEST(UpstreamSet, AddRefusesDuplicateNames) {
  UpstreamSet set;
  set.add(make("a"));
  set.add(make("b"));
  try {
    set.add(make("a"));
    FAIL() << "duplicate accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("'a'"), std::string::npos) << e.what();
  }
  ASSERT_EQ(set.all().size(), 2u);
  EXPECT_EQ(set.all()[0]->name(), "a");
  EXPECT_EQ(set.all()[1]->name(), "b");
  EXPECT_EQ(set.find("zzz"), nullptr);
}

TEST(UpstreamSet, JoinAddsKeepsOrReplaces) {
  UpstreamSet set;
  set.add(make("static"));
  auto first = joined("node-1", 9001);
  auto [u1, fresh1] = set.join(first);
  EXPECT_TRUE(fresh1);
  EXPECT_EQ(u1, first);
  EXPECT_EQ(set.all().size(), 2u);
  // Same node again (a heartbeat re-join): the existing object is kept with its state.
  ASSERT_TRUE(first->acquire());
  auto [u2, fresh2] = set.join(joined("node-1", 9001));
  EXPECT_FALSE(fresh2);
  EXPECT_EQ(u2, first);
  EXPECT_EQ(set.find("node-1"), first);
  EXPECT_EQ(set.find("node-1")->snapshot().in_flight, 1);
  // Changed URL: replaced in place; the old object lives on for requests in flight.
  auto moved = joined("node-1", 9002);
  auto [u3, fresh3] = set.join(moved);
  EXPECT_TRUE(fresh3);
  EXPECT_EQ(u3, moved);
  EXPECT_EQ(set.find("node-1"), moved);
  EXPECT_EQ(set.find("node-1")->snapshot().url, "http://10.0.0.1:9002");
  EXPECT_EQ(first->snapshot().in_flight, 1);
  ASSERT_EQ(set.all().size(), 2u);
  EXPECT_EQ(set.all()[1], moved) << "replaced in place, order kept";
  // Changed chip or device count also replaces.
  UpstreamConfig other_chip = config_of("node-1", {"m"}, 64, 9002, "chip-y");
  EXPECT_TRUE(set.join(std::make_shared<Upstream>(other_chip, true, "CN", true)).second);
  UpstreamConfig more_devices = other_chip;
  more_devices.devices = 8;
  EXPECT_TRUE(set.join(std::make_shared<Upstream>(more_devices, true, "CN", true)).second);
  EXPECT_EQ(set.find("node-1")->config().devices, 8);
}

// A node that restarts with another model and re-joins at the same URL, chip and device count keeps
// its old Upstream (join compares url, chip and devices only), and the health checker cannot fix
// the model list because configured models win over the node's report: the gateway keeps routing
// the old model to it and answers 404 for the new one.
TEST(UpstreamSet, JoinWithChangedModelsServesTheNewModel) {
  UpstreamSet set;
  (void)set.join(joined("node-1", 9001, {"qwen-7b"}));
  const auto [u, fresh] = set.join(joined("node-1", 9001, {"llama-8b"}));
  EXPECT_TRUE(fresh);
  EXPECT_TRUE(set.find("node-1")->serves("llama-8b"));
  EXPECT_FALSE(set.find("node-1")->serves("qwen-7b"));
}

TEST(UpstreamSet, Remove) {
  UpstreamSet set;
  auto a = make("a");
  set.add(a);
  set.add(make("b"));
  ASSERT_TRUE(a->acquire());
  EXPECT_TRUE(set.remove("a"));
  EXPECT_FALSE(set.remove("a"));
  EXPECT_FALSE(set.remove("nope"));
  EXPECT_EQ(set.find("a"), nullptr);
  ASSERT_EQ(set.all().size(), 1u);
  EXPECT_EQ(set.all()[0]->name(), "b");
  EXPECT_EQ(a->snapshot().in_flight, 1) << "requests in flight keep their reference";
  set.add(make("a"));  // the name is free again
  EXPECT_EQ(set.all().size(), 2u);
}

TEST(UpstreamBusyTime, CountsTheTimeARequestWasOpenOnce) {
  auto u = make("busy");
  EXPECT_EQ(u->take_busy_seconds(Clock::now()), 0.0) << "idle: no busy time";
  ASSERT_TRUE(u->acquire());
  ASSERT_TRUE(u->acquire());  // overlapping requests count the wall time once
  std::this_thread::sleep_for(milliseconds(30));
  const double first = u->take_busy_seconds(Clock::now());
  EXPECT_GE(first, 0.029);
  EXPECT_LT(first, 1.0);
  std::this_thread::sleep_for(milliseconds(20));
  u->release();
  u->release();
  const double second = u->take_busy_seconds(Clock::now());
  EXPECT_GE(second, 0.019) << "the stretch after the first take, up to the last release";
  EXPECT_LT(second, 1.0);
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(u->take_busy_seconds(Clock::now()), 0.0) << "idle again";
}

}  // namespace
}  // namespace mixserve::gateway

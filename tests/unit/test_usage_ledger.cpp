// Usage from the ledger's usage_sample records (policy::usage_from_ledger): exact sums per (node, chip),
// prorating at the window bounds (adjacent windows add up), unknown nodes and chips, malformed payloads
// naming the seq, tampered ledgers refused, and rules evaluated on the result.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "common/error.h"
#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "policy/evaluate.h"
#include "policy/ledger.h"
#include "policy/policy.h"
#include "policy/report.h"
#include "policy/usage.h"
#include "support/ledger_edit.h"
#include "support/test_support.h"

namespace mixserve::policy {
namespace {

using nlohmann::json;
using testing::TempDir;

constexpr int64_t kMinute = 60'000'000;
// 2026-11-01T00:00:00Z in microseconds since the epoch.
const int64_t kBase = *ledger_time_micros("2026-11-01T00:00:00.000000Z");

// The ledger time `minutes` after kBase.
std::string at(double minutes) {
  return ledger_time_from_micros(kBase + static_cast<int64_t>(minutes * kMinute));
}

// A payload as the gateway's usage recorder writes it (src/gateway/usage_recorder.cpp).
json sample(const std::string& node, const std::string& chip, double from_min, double to_min, double tokens,
            double hours, bool domestic) {
  return {{"source", "gateway"}, {"node", node},          {"chip", chip},
          {"domestic", domestic}, {"from", at(from_min)}, {"to", at(to_min)},
          {"served_tokens", tokens}, {"device_hours", hours}, {"requests", 3}};
}

const char* kFleet = R"(home_country: CN
nodes:
  - {name: a1, pool: inference, devices: [{chip: huawei-ascend-910b, count: 8}]}
  - {name: n1, pool: inference, devices: [{chip: nvidia-h20, count: 8}]}
  - {name: t1, pool: training, devices: [{chip: nvidia-h20, count: 8}, {chip: cambricon-mlu590, count: 8}]}
  - {name: old, state: retired, devices: [{chip: nvidia-h20, count: 8}]}
)";

struct LedgerFixture {
  fleet::Catalogue catalogue = fleet::Catalogue::builtin();
  fleet::Fleet fleet = fleet::parse_fleet(kFleet, "fleet.yaml", catalogue);
  TempDir dir;
  std::string path = dir.file("ledger.db");
  Ledger ledger = Ledger::open(path);
  // Appends with the record time at the end of the sample's period, as the gateway does.
  int64_t add(const json& payload, double written_min) {
    return ledger.append_at(RecordKind::kUsageSample, payload, at(written_min));
  }
  LedgerUsage usage(const std::string& from = "", const std::string& to = "") const {
    return usage_from_ledger(ledger, from, to, fleet, catalogue);
  }
};

const UsageEntry* entry(const LedgerUsage& u, const std::string& node, const std::string& chip) {
  for (const auto& e : u.usage.entries) {
    if (e.node == node && e.chip == chip) return &e;
  }
  return nullptr;
}

TEST(UsageLedger, SumsEverySamplePerNodeAndChipExactly) {
  LedgerFixture s;
  s.add(sample("n1", "nvidia-h20", 0, 1, 1000, 0.25, false), 1);
  s.ledger.append_at(RecordKind::kNote, {{"text", "other kinds are not usage"}}, at(1.5));
  s.add(sample("a1", "huawei-ascend-910b", 0, 1, 3000, 0.5, true), 1);
  s.add(sample("n1", "nvidia-h20", 1, 2, 500.5, 0.125, false), 2);
  s.add(sample("t1", "cambricon-mlu590", 1, 2, 7, 1, true), 2);
  s.add(sample("t1", "nvidia-h20", 1, 2, 11, 2, false), 2);
  s.add(sample("a1", "huawei-ascend-910b", 2, 3, 0, 0.5, true), 3);
  const auto u = s.usage();
  EXPECT_EQ(u.samples, 6);
  EXPECT_EQ(u.prorated, 0);
  ASSERT_EQ(u.usage.entries.size(), 4u);
  // Ordered by node, then chip.
  EXPECT_EQ(u.usage.entries[0].node, "a1");
  EXPECT_EQ(u.usage.entries[1].node, "n1");
  EXPECT_EQ(u.usage.entries[2].chip, "cambricon-mlu590");
  EXPECT_EQ(u.usage.entries[3].chip, "nvidia-h20");
  EXPECT_EQ(entry(u, "a1", "huawei-ascend-910b")->served_tokens, 3000);
  EXPECT_EQ(entry(u, "a1", "huawei-ascend-910b")->device_hours, 1.0);
  EXPECT_EQ(entry(u, "n1", "nvidia-h20")->served_tokens, 1500.5);
  EXPECT_EQ(entry(u, "n1", "nvidia-h20")->device_hours, 0.375);
  EXPECT_EQ(entry(u, "t1", "nvidia-h20")->device_hours, 2);
  EXPECT_EQ(u.usage.from, at(0)) << "an open window reports the samples' extent";
  EXPECT_EQ(u.usage.to, at(3));
  EXPECT_TRUE(u.warnings.empty()) << u.warnings.front();
}

TEST(UsageLedger, SamplesStraddlingABoundCountInProportion) {
  LedgerFixture s;
  s.add(sample("a1", "huawei-ascend-910b", 0, 60, 3600, 1, true), 60);
  s.add(sample("n1", "nvidia-h20", 60, 120, 600, 2, false), 120);
  // Window [15 min, 45 min): half of the first sample, nothing of the second.
  auto u = s.usage(at(15), at(45));
  EXPECT_EQ(u.samples, 1);
  EXPECT_EQ(u.prorated, 1);
  ASSERT_EQ(u.usage.entries.size(), 1u);
  EXPECT_DOUBLE_EQ(u.usage.entries[0].served_tokens, 1800);
  EXPECT_DOUBLE_EQ(u.usage.entries[0].device_hours, 0.5);
  EXPECT_EQ(u.usage.from, at(15));
  EXPECT_EQ(u.usage.to, at(45));
  // [45 min, 90 min): the last quarter of the first, the first half of the second.
  u = s.usage(at(45), at(90));
  EXPECT_EQ(u.prorated, 2);
  EXPECT_DOUBLE_EQ(entry(u, "a1", "huawei-ascend-910b")->served_tokens, 900);
  EXPECT_DOUBLE_EQ(entry(u, "n1", "nvidia-h20")->served_tokens, 300);
  EXPECT_DOUBLE_EQ(entry(u, "n1", "nvidia-h20")->device_hours, 1);
  // A window that touches a sample only at its end does not count it: [to, ...) begins after it.
  u = s.usage(at(120), "");
  EXPECT_EQ(u.samples, 0);
  EXPECT_TRUE(u.usage.entries.empty());
  ASSERT_EQ(u.warnings.size(), 1u);
  EXPECT_NE(u.warnings[0].find("no usage_sample"), std::string::npos) << u.warnings[0];
}

TEST(UsageLedger, AdjacentWindowsAddUpToTheWhole) {
  LedgerFixture s;
  std::mt19937 rng(20261206);
  double t = 0, total = 0;
  for (int i = 0; i < 40; ++i) {
    const double len = 1 + rng() % 30;
    const double tokens = 1 + rng() % 5000;
    s.add(sample(i % 2 ? "a1" : "n1", i % 2 ? "huawei-ascend-910b" : "nvidia-h20", t, t + len, tokens, len / 60,
                 i % 2 == 1),
          t + len);
    total += tokens;
    t += len + rng() % 3;  // sometimes a gap
  }
  for (int trial = 0; trial < 20; ++trial) {
    const double cut = 1 + rng() % static_cast<int>(t - 1);
    const auto before = s.usage("", at(cut));
    const auto after = s.usage(at(cut), "");
    double sum = 0;
    for (const auto* u : {&before, &after}) {
      for (const auto& e : u->usage.entries) sum += e.served_tokens;
    }
    EXPECT_NEAR(sum, total, 1e-9 * total) << "cut at minute " << cut;
    EXPECT_LE(before.prorated + after.prorated, 2) << "at most one sample straddles the cut, counted on each side";
  }
}

TEST(UsageLedger, APeriodCountsWhateverTheRecordTime) {
  LedgerFixture s;
  // Written two hours after its period ended, i.e. after the window end: still counted for its period.
  s.add(sample("a1", "huawei-ascend-910b", 30, 90, 600, 1, true), 210);
  const auto u = s.usage(at(0), at(60));
  EXPECT_EQ(u.samples, 1);
  EXPECT_DOUBLE_EQ(u.usage.entries.at(0).served_tokens, 300);
  // An instant (from == to) counts wholly in the window holding it.
  LedgerFixture z;
  z.add(sample("a1", "huawei-ascend-910b", 10, 10, 42, 0, true), 10);
  EXPECT_EQ(z.usage(at(10), at(11)).samples, 1);
  EXPECT_EQ(z.usage(at(9), at(10)).samples, 0) << "the window end is exclusive";
}

TEST(UsageLedger, UnknownNodeIsAnErrorNamingTheNodeAndSeqs) {
  LedgerFixture s;
  s.add(sample("a1", "huawei-ascend-910b", 0, 1, 10, 0.1, true), 1);
  s.add(sample("ghost", "nvidia-h20", 0, 1, 10, 0.1, false), 1);
  s.add(sample("ghost", "nvidia-h20", 1, 2, 10, 0.1, false), 2);
  s.add(sample("phantom", "nvidia-h20", 1, 2, 10, 0.1, false), 2);
  s.add(sample("a1", "huawei-ascend-910b", 100, 101, 10, 0.1, true), 101);
  try {
    s.usage();
    FAIL() << "usage of nodes outside the fleet was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string what = e.what();
    EXPECT_NE(what.find("'ghost' (seqs 2, 3)"), std::string::npos) << what;
    EXPECT_NE(what.find("'phantom' (seq 4)"), std::string::npos) << what;
    EXPECT_NE(what.find("fleet file"), std::string::npos) << what;
  }
  // Outside the window they are not read.
  const auto u = s.usage(at(50), "");
  EXPECT_EQ(u.samples, 1);
}

TEST(UsageLedger, UnknownChipIsAnErrorUnlessTheFleetListsIt) {
  LedgerFixture s;
  s.add(sample("a1", "huawei-ascend-910b", 0, 1, 10, 0.1, true), 1);
  s.add(sample("n1", "acme-x1", 0, 1, 10, 0.1, false), 1);
  try {
    s.usage();
    FAIL() << "an unknown chip was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("ledger record 2 (usage_sample): unknown chip id 'acme-x1'"),
              std::string::npos)
        << e.what();
  }
  fleet::FleetOptions allow;
  allow.allow_unknown_chips = true;
  const auto fl = fleet::parse_fleet("nodes:\n  - {name: n1, devices: [{chip: acme-x1, count: 1}]}\n  - {name: a1}\n",
                                     "f.yaml", s.catalogue, allow);
  const auto u = usage_from_ledger(s.ledger, "", "", fl, s.catalogue);
  EXPECT_EQ(u.samples, 2) << "a chip the fleet keeps as unknown is counted (as foreign, by evaluate)";
}

TEST(UsageLedger, MalformedPayloadsAreErrorsNamingTheSeq) {
  auto with = [](const char* key, const json& value) {
    auto p = sample("a1", "huawei-ascend-910b", 0, 1, 10, 0.1, true);
    if (value.is_discarded()) {
      p.erase(key);
    } else {
      p[key] = value;
    }
    return p;
  };
  const json gone = json(json::value_t::discarded);
  const json cases[] = {
      json::array({1, 2}),
      with("node", gone),
      with("node", ""),
      with("chip", 7),
      with("from", "yesterday"),
      with("to", gone),
      with("to", at(-5)),
      with("served_tokens", -1),
      with("device_hours", "lots"),
      [&] {
        auto p = with("served_tokens", gone);
        p.erase("device_hours");
        return p;
      }(),
      with("domestic", "yes"),
  };
  for (const auto& bad : cases) {
    LedgerFixture s;
    s.add(sample("a1", "huawei-ascend-910b", 0, 1, 10, 0.1, true), 1);
    s.ledger.append_at(RecordKind::kNote, bad, at(1));  // other kinds are never read
    s.add(bad, 2);
    try {
      s.usage();
      ADD_FAILURE() << "accepted " << bad.dump();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
      EXPECT_NE(std::string(e.what()).find("ledger record 3 (usage_sample)"), std::string::npos) << e.what();
    }
    // Written after the window end, a malformed sample is a warning naming it, not a failure.
    const auto u = s.usage("", at(1.5));
    EXPECT_EQ(u.samples, 1);
    ASSERT_FALSE(u.warnings.empty()) << bad.dump();
    EXPECT_NE(u.warnings[0].find("ledger record 3"), std::string::npos) << u.warnings[0];
  }
  // Whole-second times are accepted.
  LedgerFixture s;
  auto p = sample("a1", "huawei-ascend-910b", 0, 1, 10, 0.1, true);
  p["from"] = "2026-11-01T00:00:00Z";
  s.add(p, 1);
  EXPECT_EQ(s.usage().samples, 1);
}

TEST(UsageLedger, ATamperedLedgerIsRefused) {
  LedgerFixture s;
  s.add(sample("a1", "huawei-ascend-910b", 0, 1, 10, 0.1, true), 1);
  s.add(sample("n1", "nvidia-h20", 0, 1, 9000, 0.1, false), 1);
  s.add(sample("a1", "huawei-ascend-910b", 1, 2, 10, 0.1, true), 2);
  EXPECT_EQ(s.usage().samples, 3);
  // Someone shrinks the foreign tokens after the fact.
  testing::edit_ledger_behind_triggers(s.path, "UPDATE records SET payload = replace(payload, '9000.0', '9.0') WHERE seq = 2");
  const auto ledger = Ledger::open(s.path, LedgerOpenMode::kExisting);
  try {
    usage_from_ledger(ledger, "", "", s.fleet, s.catalogue);
    FAIL() << "usage was taken from a tampered ledger";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    const std::string what = e.what();
    EXPECT_NE(what.find("not intact"), std::string::npos) << what;
    EXPECT_NE(what.find("record 2"), std::string::npos) << what;
  }
}

TEST(UsageLedger, WarningsForOverruledFlagsRetiredNodesAndChipsNotInstalled) {
  LedgerFixture s;
  s.add(sample("n1", "nvidia-h20", 0, 1, 10, 0.1, true), 1);  // the writer thought it domestic
  s.add(sample("old", "nvidia-h20", 0, 1, 10, 0.1, false), 1);
  s.add(sample("a1", "cambricon-mlu590", 0, 1, 10, 0.1, true), 1);
  const auto u = s.usage();
  EXPECT_EQ(u.samples, 3);
  ASSERT_EQ(u.warnings.size(), 3u);
  std::string all;
  for (const auto& w : u.warnings) all += w + "\n";
  EXPECT_NE(all.find("usage_sample 1 marks nvidia-h20 as domestic; the catalogue (home country CN) says foreign"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("node 'old' is retired"), std::string::npos) << all;
  EXPECT_NE(all.find("node 'a1' has no cambricon-mlu590"), std::string::npos) << all;
}

TEST(UsageLedger, RulesOnLedgerUsageGiveTheExpectedVerdicts) {
  LedgerFixture s;
  // Tokens: a1 3000 (domestic), n1 1000 (foreign) -> 75 %; hours: 1 and 1 -> 50 %.
  s.add(sample("a1", "huawei-ascend-910b", 0, 60, 3000, 1, true), 60);
  s.add(sample("n1", "nvidia-h20", 0, 60, 1000, 1, false), 60);
  // Retired nodes never count, whatever they served.
  s.add(sample("old", "nvidia-h20", 0, 60, 1e6, 100, false), 60);
  // The training pool: only foreign work in the second hour.
  s.add(sample("t1", "nvidia-h20", 60, 120, 500, 0.5, false), 120);
  const auto policy = parse_policy(R"(rules:
  - {name: tokens-70, basis: served_tokens, min_domestic_share: 0.7}
  - {name: hours-60, basis: device_hours, min_domestic_share: 0.6}
  - {name: inference-tokens, basis: served_tokens, scope: "pool:inference", min_domestic_share: 0.75}
)",
                                   "policy.yaml");
  auto u = s.usage(at(0), at(60));
  auto ev = evaluate(policy, s.fleet, s.catalogue, &u.usage);
  ASSERT_EQ(ev.results.size(), 3u);
  EXPECT_EQ(ev.results[0].outcome, Outcome::kCompliant);
  EXPECT_DOUBLE_EQ(*ev.results[0].share, 0.75);
  EXPECT_DOUBLE_EQ(ev.results[0].denominator, 4000);
  EXPECT_EQ(ev.results[1].outcome, Outcome::kViolation);
  EXPECT_DOUBLE_EQ(*ev.results[1].share, 0.5);
  EXPECT_EQ(ev.results[2].outcome, Outcome::kCompliant) << "exactly 75 % meets 0.75";
  EXPECT_EQ(ev.exit_code(), 1);
  // Over both hours the training pool's foreign tokens pull the centre below 70 %: 3000 / 4500.
  u = s.usage();
  ev = evaluate(policy, s.fleet, s.catalogue, &u.usage);
  EXPECT_EQ(ev.results[0].outcome, Outcome::kViolation);
  EXPECT_DOUBLE_EQ(*ev.results[0].share, 3000.0 / 4500);
  EXPECT_EQ(ev.results[2].outcome, Outcome::kCompliant) << "the inference pool is unchanged";
  // Half of the second hour, prorated: 3000 / (4000 + 250).
  u = s.usage(at(0), at(90));
  ev = evaluate(policy, s.fleet, s.catalogue, &u.usage);
  EXPECT_DOUBLE_EQ(*ev.results[0].share, 3000.0 / 4250);
}

TEST(UsageLedger, BadWindowsAreRejected) {
  LedgerFixture s;
  EXPECT_THROW(s.usage(at(10), at(5)), Error);
  EXPECT_THROW(s.usage(at(10), at(10)), Error);
  EXPECT_THROW(s.usage("2026-11-01", ""), Error) << "the API takes ledger times; the CLI converts";
}

}  // namespace
}  // namespace mixserve::policy

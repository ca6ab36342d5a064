// Reports over the compliance ledger: series, violations and their durations, compliant fraction,
// the CSV/JSON/HTML renderings, malformed payloads, tampered ledgers, measure() of every basis, and the
// usage series summed from usage_sample records.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>

#include "common/error.h"
#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "policy/ledger.h"
#include "policy/measure.h"
#include "policy/report.h"
#include "policy/usage.h"
#include "support/ledger_edit.h"
#include "support/test_support.h"

namespace mixserve::policy {
namespace {

using nlohmann::json;
using testing::TempDir;

constexpr double kHour = 3600, kDay = 86400;

// One rule's numbers in a hand-built payload; the verdict is computed here, independently of evaluate().
struct R {
  std::string name, scope, basis;
  double num, den, threshold;
  std::string mode = "enforce";
};

json rule_json(const R& r) {
  const bool counted = r.den > 0;
  const bool ok = !counted || r.num / r.den >= r.threshold;
  return {{"rule", r.name},
          {"scope", r.scope},
          {"basis", r.basis},
          {"share", counted ? json(r.num / r.den) : json(nullptr)},
          {"numerator", r.num},
          {"denominator", r.den},
          {"threshold", r.threshold},
          {"strict", false},
          {"compliant", ok},
          {"outcome", !counted            ? "not-applicable"
                      : ok                ? "compliant"
                      : r.mode == "audit" ? "audit-violation"
                                          : "violation"},
          {"mode", r.mode},
          {"margin", nullptr},
          {"explanation", "x"}};
}

json payload(const std::vector<R>& rules, const json& measurements = nullptr) {
  json j{{"exit_code", 0}, {"fleet", "f.yaml"}, {"policy", "p.yaml"}, {"usage", ""}, {"changes", json::array()}};
  j["rules"] = json::array();
  for (const auto& r : rules) j["rules"].push_back(rule_json(r));
  if (!measurements.is_null()) j["measurements"] = measurements;
  return j;
}

json measure_json(const std::string& scope, const std::string& basis, double num, double den) {
  return {{"scope", scope},   {"basis", basis},     {"share", den > 0 ? json(num / den) : json(nullptr)},
          {"numerator", num}, {"denominator", den}, {"unweighed", 0}};
}

R a(double num) {
  return {"national-50", "center", "device_count", num, 16, 0.5};
}
R b(double num) {
  return {"inference-70", "pool:inference", "peak_fp16_tflops", num, 10, 0.7, "audit"};
}
R c(double num, double den = 8) {
  return {"pudong-60", "project:pudong", "device_count", num, den, 0.6};
}

// The history of the header comment of each test: A violates day 1..2, B twice (the second ongoing),
// C from day 1.5 until it becomes not-applicable on day 3. Records of other kinds are interleaved.
std::string make_history(const TempDir& dir) {
  const auto path = dir.file("history.db");
  auto l = Ledger::open(path);
  const json m0 = json::array(
      {measure_json("pool:inference", "device_count", 2, 4), measure_json("center", "memory_gib", 100, 400),
       measure_json("center", "device_count", 10, 16), measure_json("project:pudong", "device_count", 6, 8)});
  l.append_at(RecordKind::kPolicyEvaluation, payload({a(10), b(8), c(6)}, m0), "2026-11-01T00:00:00.000000Z");
  l.append_at(RecordKind::kNote, {{"text", "drained a node"}}, "2026-11-01T06:00:00.000000Z");
  l.append_at(RecordKind::kPolicyEvaluation, payload({a(7), b(6), c(6)}), "2026-11-02T00:00:00.000000Z");
  l.append_at(RecordKind::kPolicyEvaluation, payload({a(6), b(8), c(3)}), "2026-11-02T12:00:00.000000Z");
  l.append_at(RecordKind::kPolicyEvaluation, payload({a(9), b(5), c(3)}), "2026-11-03T00:00:00.000000Z");
  l.append_at(RecordKind::kPolicyEvaluation, payload({a(8), b(5), c(0, 0)}), "2026-11-04T00:00:00.000000Z");
  l.append_at(RecordKind::kFleetChange, {{"change", "add"}}, "2026-11-05T00:00:00.000000Z");
  return path;
}

const RuleSeries& series(const Report& r, const std::string& name) {
  for (const auto& s : r.rules) {
    if (s.rule == name) return s;
  }
  throw std::runtime_error("no series " + name);
}

TEST(ReportTime, ParsesTheThreeFormsAndRejectsOthers) {
  EXPECT_EQ(parse_report_time("2026-11-25", "--from"), "2026-11-25T00:00:00.000000Z");
  EXPECT_EQ(parse_report_time("2026-11-25T18:30:05Z", "--from"), "2026-11-25T18:30:05.000000Z");
  EXPECT_EQ(parse_report_time("2026-11-25T18:30:05.123456Z", "--to"), "2026-11-25T18:30:05.123456Z");
  for (const char* bad : {"", "yesterday", "2026-02-30", "2026-13-01", "2026-1-1", "2026-11-25T18:30:05",
                          "2026-11-25 18:30:05Z", "2026-11-25T25:00:00Z", "2026-11-25T18:30:05.12Z"}) {
    try {
      parse_report_time(bad, "--to");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("--to"), std::string::npos) << e.what();
    }
  }
}

TEST(ReportTime, MicrosecondsSinceTheEpoch) {
  EXPECT_EQ(ledger_time_micros("1970-01-01T00:00:00.000000Z"), 0);
  EXPECT_EQ(ledger_time_micros("1970-01-02T00:00:01.000002Z"), 86'401'000'002LL);
  // 2000-03-01 is 11017 days after the epoch (30 years, 7 of them leap, plus Jan and a 29-day Feb).
  EXPECT_EQ(ledger_time_micros("2000-03-01T00:00:00.000000Z"), 11017LL * 86400 * 1000000);
  EXPECT_EQ(ledger_time_micros("2026-11-01T00:00:00Z"), std::nullopt);
}

TEST(ReportTime, HumanDurations) {
  EXPECT_EQ(human_duration(0), "0 s");
  EXPECT_EQ(human_duration(59.4), "59 s");
  EXPECT_EQ(human_duration(60), "1 min");
  EXPECT_EQ(human_duration(125), "2 min 5 s");
  EXPECT_EQ(human_duration(3725), "1 h 2 min");
  EXPECT_EQ(human_duration(90061), "1 d 1 h");
  EXPECT_EQ(human_duration(2 * kDay), "2 d");
}

TEST(Report, SeriesPerRuleOrderedByTimeIgnoringOtherKinds) {
  TempDir dir;
  const auto report = build_report(Ledger::open(make_history(dir)), "", "");
  EXPECT_TRUE(report.verify.ok);
  EXPECT_EQ(report.records, 7);
  EXPECT_EQ(report.evaluations, 5);
  EXPECT_EQ(report.from, "2026-11-01T00:00:00.000000Z");
  EXPECT_EQ(report.to, "2026-11-05T00:00:00.000000Z") << "no --to: the last record of any kind ends the window";
  EXPECT_EQ(report.to_source, "last_record");
  ASSERT_EQ(report.rules.size(), 3u);
  const auto& s = series(report, "national-50");
  EXPECT_EQ(s.scope, "center");
  EXPECT_EQ(s.basis, "device_count");
  ASSERT_EQ(s.points.size(), 5u);
  const int64_t seqs[] = {1, 3, 4, 5, 6};
  const double nums[] = {10, 7, 6, 9, 8};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(s.points[i].seq, seqs[i]);
    EXPECT_DOUBLE_EQ(*s.points[i].share, nums[i] / 16);
    EXPECT_DOUBLE_EQ(s.points[i].threshold, 0.5);
    EXPECT_EQ(s.points[i].compliant, nums[i] / 16 >= 0.5);
  }
  EXPECT_EQ(series(report, "inference-70").scope, "pool:inference");
  EXPECT_EQ(series(report, "pudong-60").points.back().share, std::nullopt) << "not-applicable has no share";
}

TEST(Report, ViolationsStartAtNonCompliantAndEndAtTheNextCompliantEvaluation) {
  TempDir dir;
  const auto report = build_report(Ledger::open(make_history(dir)), "", "");
  const auto& sa = series(report, "national-50");
  ASSERT_EQ(sa.violations.size(), 1u);
  EXPECT_EQ(sa.violations[0].start, "2026-11-02T00:00:00.000000Z");
  EXPECT_EQ(sa.violations[0].end, "2026-11-03T00:00:00.000000Z");
  EXPECT_FALSE(sa.violations[0].ongoing);
  EXPECT_DOUBLE_EQ(sa.violations[0].seconds, kDay);
  EXPECT_EQ(sa.violations[0].evaluations, 2);
  EXPECT_EQ(sa.violations[0].start_seq, 3);
  EXPECT_EQ(sa.violations[0].end_seq, 5);
  EXPECT_DOUBLE_EQ(*sa.violations[0].min_share, 6.0 / 16);
  EXPECT_DOUBLE_EQ(*sa.min_share, 6.0 / 16);
  EXPECT_EQ(sa.min_share_time, "2026-11-02T12:00:00.000000Z");
  // Compliant on [day 0, 1) and [day 2, 4) of 4 covered days.
  EXPECT_DOUBLE_EQ(sa.covered_seconds, 4 * kDay);
  EXPECT_DOUBLE_EQ(*sa.compliant_fraction, 0.75);

  const auto& sb = series(report, "inference-70");
  ASSERT_EQ(sb.violations.size(), 2u);
  EXPECT_DOUBLE_EQ(sb.violations[0].seconds, 12 * kHour);
  EXPECT_EQ(sb.violations[0].mode, "audit");
  EXPECT_TRUE(sb.violations[1].ongoing);
  EXPECT_EQ(sb.violations[1].end, report.to);
  EXPECT_EQ(sb.violations[1].end_seq, std::nullopt);
  EXPECT_DOUBLE_EQ(sb.violations[1].seconds, 2 * kDay) << "ongoing: counted to the window end";
  EXPECT_DOUBLE_EQ(sb.violation_seconds, 2.5 * kDay);
  EXPECT_DOUBLE_EQ(*sb.compliant_fraction, 1.5 / 4);

  const auto& sc = series(report, "pudong-60");
  ASSERT_EQ(sc.violations.size(), 1u);
  EXPECT_EQ(sc.violations[0].end, "2026-11-04T00:00:00.000000Z") << "not-applicable counts as compliant";
  EXPECT_DOUBLE_EQ(sc.violations[0].seconds, 1.5 * kDay);
  EXPECT_DOUBLE_EQ(*sc.compliant_fraction, 2.5 / 4);
}

TEST(Report, WindowBoundsClipTheHistory) {
  TempDir dir;
  const auto ledger = Ledger::open(make_history(dir));
  auto report = build_report(ledger, "", "2026-11-06T00:00:00.000000Z");
  EXPECT_EQ(report.to_source, "flag");
  EXPECT_DOUBLE_EQ(series(report, "inference-70").violations.back().seconds, 3 * kDay);
  EXPECT_DOUBLE_EQ(*series(report, "national-50").compliant_fraction, 4.0 / 5);
  // From day 1.5: A's first point is already violating; the violation starts there.
  report = build_report(ledger, "2026-11-02T12:00:00.000000Z", "2026-11-03T06:00:00.000000Z");
  EXPECT_EQ(report.records, 2);
  const auto& sa = series(report, "national-50");
  ASSERT_EQ(sa.violations.size(), 1u);
  EXPECT_EQ(sa.violations[0].start, "2026-11-02T12:00:00.000000Z");
  EXPECT_DOUBLE_EQ(sa.violations[0].seconds, 12 * kHour);
  EXPECT_DOUBLE_EQ(*sa.compliant_fraction, 6.0 / 18);
  // A window with nothing in it.
  report = build_report(ledger, "2030-01-01T00:00:00.000000Z", "");
  EXPECT_TRUE(report.rules.empty());
  EXPECT_EQ(report.to, "");
  EXPECT_NE(report_html(report).find("No policy evaluations"), std::string::npos);
  EXPECT_THROW(build_report(ledger, "2026-11-03T00:00:00.000000Z", "2026-11-02T00:00:00.000000Z"), Error);
}

TEST(Report, OutOfOrderTimesAreSortedAndASinglePointHasNoFraction) {
  TempDir dir;
  auto l = Ledger::open(dir.file("l.db"));
  l.append_at(RecordKind::kPolicyEvaluation, payload({a(4)}), "2026-11-03T00:00:00.000000Z");
  l.append_at(RecordKind::kPolicyEvaluation, payload({a(12)}), "2026-11-01T00:00:00.000000Z");
  auto report = build_report(l, "", "");
  const auto& s = series(report, "national-50");
  ASSERT_EQ(s.points.size(), 2u);
  EXPECT_EQ(s.points[0].seq, 2);
  ASSERT_EQ(s.violations.size(), 1u);
  EXPECT_TRUE(s.violations[0].ongoing);
  EXPECT_DOUBLE_EQ(s.violations[0].seconds, 0) << "ends at the last record, which opened it";
  EXPECT_DOUBLE_EQ(*s.compliant_fraction, 1.0);
  report = build_report(l, "2026-11-02T00:00:00.000000Z", "");
  EXPECT_EQ(series(report, "national-50").compliant_fraction, std::nullopt) << "zero seconds covered";
}

// Random step histories on an hourly grid against a brute force that walks the hours one by one.
TEST(Report, FractionAndDurationsAgreeWithAnHourByHourWalk) {
  std::mt19937 rng(77);
  for (int trial = 0; trial < 40; ++trial) {
    TempDir dir;
    auto l = Ledger::open(dir.file("l.db"));
    const int n = 1 + static_cast<int>(rng() % 12);
    std::vector<int> hours;
    std::vector<bool> ok;
    int h = static_cast<int>(rng() % 5);
    for (int i = 0; i < n; ++i) {
      hours.push_back(h);
      ok.push_back(rng() % 2);
      char t[40];
      std::snprintf(t, sizeof t, "2026-01-%02dT%02d:00:00.000000Z", 1 + h / 24, h % 24);
      l.append_at(RecordKind::kPolicyEvaluation, payload({a(ok.back() ? 9 : 7)}), t);
      h += 1 + static_cast<int>(rng() % 20);
    }
    const int end = hours.back() + static_cast<int>(rng() % 30) + 1;
    char to[40];
    std::snprintf(to, sizeof to, "2026-01-%02dT%02d:00:00.000000Z", 1 + end / 24, end % 24);
    const auto report = build_report(l, "", to);
    const auto& s = series(report, "national-50");
    int good = 0, violating = 0, runs = 0;
    bool prev_bad = false;
    for (int hour = hours.front(), k = 0; hour < end; ++hour) {
      while (k + 1 < n && hours[k + 1] <= hour) ++k;
      good += ok[k];
      violating += !ok[k];
      runs += !ok[k] && !prev_bad;
      prev_bad = !ok[k];
    }
    EXPECT_NEAR(*s.compliant_fraction, static_cast<double>(good) / (end - hours.front()), 1e-12) << trial;
    EXPECT_DOUBLE_EQ(s.violation_seconds, violating * kHour) << trial;
    EXPECT_EQ(static_cast<int>(s.violations.size()), runs) << trial;
  }
}

TEST(Report, MeasurementSeriesPerScopeAndBasis) {
  TempDir dir;
  const auto report = build_report(Ledger::open(make_history(dir)), "", "");
  ASSERT_EQ(report.measurements.size(), 4u);
  EXPECT_EQ(report.measurements[0].scope, "center");
  EXPECT_EQ(report.measurements[0].basis, "device_count");
  EXPECT_EQ(report.measurements[1].basis, "memory_gib");
  EXPECT_EQ(report.measurements[2].scope, "pool:inference");
  EXPECT_EQ(report.measurements[3].scope, "project:pudong");
  ASSERT_EQ(report.measurements[1].points.size(), 1u) << "records without measurements add no points";
  EXPECT_DOUBLE_EQ(*report.measurements[1].points[0].share, 0.25);
  EXPECT_DOUBLE_EQ(report.measurements[1].points[0].denominator, 400);
}

// A minimal RFC 4180 reader, enough to read the report back.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1, std::vector<std::string>(1));
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (quoted) {
      if (ch == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        rows.back().back() += '"';
        ++i;
      } else if (ch == '"') {
        quoted = false;
      } else {
        rows.back().back() += ch;
      }
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      rows.back().emplace_back();
    } else if (ch == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      rows.emplace_back(1);
      ++i;
    } else {
      rows.back().back() += ch;
    }
  }
  if (rows.back().size() == 1 && rows.back()[0].empty()) rows.pop_back();
  return rows;
}

TEST(Report, CsvReadsBackExactly) {
  TempDir dir;
  auto l = Ledger::open(dir.file("l.db"));
  const std::string odd = "odd, \"quoted\"\nname";
  R r{odd, "pool:a,b", "device_count", 1, 3, 0.5};
  l.append_at(RecordKind::kPolicyEvaluation,
              payload({r, a(7)}, json::array({measure_json("center", "device_count", 7, 16)})),
              "2026-11-01T00:00:00.000000Z");
  l.append_at(RecordKind::kPolicyEvaluation, payload({r, a(9)}), "2026-11-02T00:00:00.000000Z");
  const auto report = build_report(l, "", "");
  const auto rows = parse_csv(report_csv(report));
  ASSERT_EQ(rows.size(), 1u + 4 + 1);
  const std::vector<std::string> header{"ledger_intact", "series", "rule",      "scope",     "basis",
                                        "seq",           "time",   "share",     "numerator", "denominator",
                                        "threshold",     "strict", "compliant", "outcome",   "mode"};
  EXPECT_EQ(rows[0], header);
  int odd_rows = 0;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), header.size()) << i;
    EXPECT_EQ(rows[i][0], "true");
    if (rows[i][2] == odd) {
      ++odd_rows;
      EXPECT_EQ(rows[i][3], "pool:a,b");
      EXPECT_EQ(std::stod(rows[i][7]), 1.0 / 3) << "shares read back to the same double";
      EXPECT_EQ(rows[i][12], "false");
    }
  }
  EXPECT_EQ(odd_rows, 2);
  EXPECT_EQ(rows.back()[1], "measurement");
  EXPECT_EQ(rows.back()[2], "");
  EXPECT_EQ(std::stod(rows.back()[7]), 7.0 / 16);
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
  return n;
}

TEST(Report, HtmlHasChartsThresholdViolationsAndEscapedNames) {
  TempDir dir;
  const auto path = make_history(dir);
  {
    auto l = Ledger::open(path);
    R evil{"<script>alert(\"x\")</script>", "project:a&b", "device_count", 1, 4, 0.5};
    l.append_at(RecordKind::kPolicyEvaluation, payload({evil}), "2026-11-04T12:00:00.000000Z");
  }
  const auto report = build_report(Ledger::open(path), "", "");
  const auto html = report_html(report);
  EXPECT_EQ(html.find("<script"), std::string::npos) << "names are escaped and no scripts are emitted";
  EXPECT_NE(html.find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("project:a&amp;b"), std::string::npos);
  // One chart per rule (4) and per measured scope (center, pool, project).
  EXPECT_EQ(count(html, "<svg"), 4u + 3u);
  EXPECT_EQ(count(html, "stroke-dasharray=\"6 4\""), 2u * 4) << "a dashed threshold line and its legend per rule";
  // Violation bands: A 1, B 2, C 1, the evil rule 1 (ongoing).
  EXPECT_EQ(count(html, "class=\"violation\""), 5u);
  EXPECT_NE(html.find("Ledger verified: intact, 8 records"), std::string::npos);
  EXPECT_NE(html.find("1 d 12 h"), std::string::npos) << "durations in human units";
  EXPECT_NE(html.find(">ongoing<"), std::string::npos);
  EXPECT_NE(html.find(">11-02 00:00</text>"), std::string::npos) << "date ticks every 12 h over 4 days";
  EXPECT_NE(html.find(">50%<"), std::string::npos) << "y axis in percent";
}

TEST(Report, TamperedLedgerIsFlaggedInEveryFormat) {
  TempDir dir;
  const auto path = make_history(dir);
  // Someone improves day 1's share after the fact.
  testing::edit_ledger_behind_triggers(path, "UPDATE records SET payload = replace(payload, '\"numerator\":7.0', '\"numerator\":9.0') WHERE seq = 3");
  const auto report = build_report(Ledger::open(path), "", "");
  EXPECT_FALSE(report.verify.ok);
  EXPECT_EQ(report.verify.first_bad_seq, 3);
  EXPECT_NE(report_html(report).find("LEDGER NOT INTACT: record 3"), std::string::npos);
  EXPECT_EQ(report_json(report)["verify"]["ok"], false);
  EXPECT_EQ(report_json(report)["verify"]["first_bad_seq"], 3);
  const auto rows = parse_csv(report_csv(report));
  for (std::size_t i = 1; i < rows.size(); ++i) EXPECT_EQ(rows[i][0], "false");
}

TEST(Report, MalformedPayloadsAreErrorsNamingTheRecord) {
  const json cases[] = {
      json::array({1}),
      json{{"rules", 5}},
      json{{"exit_code", 0}},
      json{{"rules", json::array({json{{"rule", "x"}}})}},
      json{{"rules", json::array({"x"})}},
      [] {
        auto p = payload({a(8)});
        p["rules"][0]["share"] = "half";
        return p;
      }(),
      [] {
        auto p = payload({a(8)});
        p["rules"][0]["share"] = 1.5;
        return p;
      }(),
      [] {
        auto p = payload({a(8)});
        p["rules"][0]["compliant"] = 1;
        return p;
      }(),
      [] {
        auto p = payload({a(8)});
        p["rules"][0].erase("threshold");
        return p;
      }(),
      [] {
        auto p = payload({a(8)});
        p["measurements"] = json::array({json{{"scope", "center"}}});
        return p;
      }(),
      [] {
        auto p = payload({a(8)});
        p["measurements"] = "none";
        return p;
      }(),
  };
  for (const auto& bad : cases) {
    TempDir dir;
    auto l = Ledger::open(dir.file("l.db"));
    l.append_at(RecordKind::kPolicyEvaluation, payload({a(8)}), "2026-11-01T00:00:00.000000Z");
    l.append_at(RecordKind::kNote, bad, "2026-11-01T01:00:00.000000Z");  // other kinds are never read
    l.append_at(RecordKind::kPolicyEvaluation, bad, "2026-11-02T00:00:00.000000Z");
    try {
      build_report(l, "", "");
      ADD_FAILURE() << "accepted " << bad.dump();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
      EXPECT_NE(std::string(e.what()).find("ledger record 3 (policy_evaluation)"), std::string::npos) << e.what();
    }
  }
}

TEST(Report, PayloadMadeUnreadableByTamperingNamesRecordAndDamage) {
  TempDir dir;
  const auto path = make_history(dir);
  testing::edit_ledger_behind_triggers(path, "UPDATE records SET payload = '{not json' WHERE seq = 4");
  try {
    build_report(Ledger::open(path), "", "");
    FAIL() << "accepted a broken payload";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("ledger record 4"), std::string::npos) << what;
    EXPECT_NE(what.find("not intact"), std::string::npos) << what;
  }
}

TEST(Measure, EveryBasisInEveryScopeCountedLikeARule) {
  const auto cat = fleet::Catalogue::builtin();
  const auto fl = fleet::parse_fleet(R"(nodes:
  - {name: a1, pool: inference, project: pd, devices: [{chip: huawei-ascend-910b, count: 8}]}
  - {name: n1, pool: inference, devices: [{chip: nvidia-h20, count: 4}]}
  - {name: n2, pool: training, project: pd, state: idle, devices: [{chip: nvidia-h20, count: 8}]}
  - {name: old, project: legacy, state: retired, devices: [{chip: nvidia-h20, count: 100}]}
)",
                                     "fleet.yaml", cat);
  const auto asc = *cat.find("huawei-ascend-910b");
  const auto h20 = *cat.find("nvidia-h20");
  const auto ms = measure(fl, cat);
  // center, pool:inference, pool:training, project:legacy, project:pd x 3 capacity bases.
  ASSERT_EQ(ms.size(), 5u * 3);
  const char* scopes[] = {"center", "pool:inference", "pool:training", "project:legacy", "project:pd"};
  for (int s = 0; s < 5; ++s) {
    EXPECT_EQ(ms[s * 3].scope.to_string(), scopes[s]);
    EXPECT_EQ(ms[s * 3].basis, Basis::kDeviceCount);
    EXPECT_EQ(ms[s * 3 + 1].basis, Basis::kPeakFp16Tflops);
    EXPECT_EQ(ms[s * 3 + 2].basis, Basis::kMemoryGib);
  }
  EXPECT_DOUBLE_EQ(*ms[0].share, 8.0 / 20) << "retired devices never count; idle ones do";
  EXPECT_DOUBLE_EQ(ms[1].numerator, 8 * asc.fp16_tflops.value);
  EXPECT_DOUBLE_EQ(ms[1].denominator, 8 * asc.fp16_tflops.value + 12 * h20.fp16_tflops.value);
  EXPECT_DOUBLE_EQ(ms[5].denominator, 8 * asc.memory_gib.value + 4 * h20.memory_gib.value);
  EXPECT_DOUBLE_EQ(*ms[6].share, 0.0);
  EXPECT_EQ(ms[9].share, std::nullopt) << "a project of retired nodes only counts nothing";
  EXPECT_DOUBLE_EQ(*ms[12].share, 0.5);
  const auto j = measurements_json(ms);
  EXPECT_EQ(j[9]["share"], nullptr);
  EXPECT_EQ(j[3]["scope"], "pool:inference");
  EXPECT_EQ(j[4]["basis"], "peak_fp16_tflops");

  const auto usage = parse_usage(R"(nodes:
  - {name: a1, devices: [{chip: huawei-ascend-910b, device_hours: 300, served_tokens: 1000}]}
  - {name: n1, devices: [{chip: nvidia-h20, device_hours: 100, served_tokens: 3000}]}
)",
                                 "usage.yaml", fl, cat);
  const auto with_usage = measure(fl, cat, &usage);
  ASSERT_EQ(with_usage.size(), 5u * 5);
  EXPECT_EQ(with_usage[3].basis, Basis::kDeviceHours);
  EXPECT_DOUBLE_EQ(*with_usage[3].share, 0.75);
  EXPECT_EQ(with_usage[4].basis, Basis::kServedTokens);
  EXPECT_DOUBLE_EQ(*with_usage[4].share, 0.25);
}

// A usage_sample payload as the gateway writes it; times are hours after 2026-11-01T00:00Z.
std::string hour(double h) {
  return ledger_time_from_micros(*ledger_time_micros("2026-11-01T00:00:00.000000Z") +
                                 static_cast<int64_t>(h * 3600 * 1e6));
}

json usage_json(const std::string& node, const std::string& chip, double from_h, double to_h, double tokens,
                double hours) {
  return {{"source", "gateway"}, {"node", node},           {"chip", chip},
          {"domestic", false},   {"from", hour(from_h)},   {"to", hour(to_h)},
          {"served_tokens", tokens}, {"device_hours", hours}, {"requests", 1}};
}

// One evaluation with a measured centre device_hours series, then gateway samples (written at the end
// of their periods): a gap from 3 h to 4 h, a CPU sample that never counts.
std::string make_usage_history(const TempDir& dir) {
  const auto path = dir.file("usage.db");
  auto l = Ledger::open(path);
  const auto measured = json::array({measure_json("center", "device_hours", 1, 4)});
  l.append_at(RecordKind::kPolicyEvaluation, payload({a(8)}, measured), hour(0));
  l.append_at(RecordKind::kUsageSample, usage_json("a1", "huawei-ascend-910b", 0, 1, 3000, 1), hour(1));   // seq 2
  l.append_at(RecordKind::kUsageSample, usage_json("n1", "nvidia-h20", 0, 1, 1000, 1), hour(1));           // seq 3
  l.append_at(RecordKind::kUsageSample, usage_json("a1", "cpu-arm", 0, 1, 1e6, 5), hour(1));               // seq 4
  l.append_at(RecordKind::kUsageSample, usage_json("n1", "nvidia-h20", 1, 2, 600, 2), hour(2));            // seq 5
  l.append_at(RecordKind::kUsageSample, usage_json("a1", "huawei-ascend-910b", 1.5, 2.5, 400, 1), hour(2.5));  // 6
  l.append_at(RecordKind::kUsageSample, usage_json("n1", "nvidia-h20", 4, 5, 100, 1), hour(5));            // seq 7
  return path;
}

const MeasureSeries& usage_series_of(const Report& r, const std::string& basis) {
  for (const auto& s : r.measurements) {
    if (s.source == kFromUsageSamples && s.basis == basis) return s;
  }
  throw std::runtime_error("no usage series " + basis);
}

TEST(ReportUsage, SamplesAreSummedPerIntervalWithProratingAtTheWindowEnd) {
  TempDir dir;
  const auto ledger = Ledger::open(make_usage_history(dir));
  ReportOptions hourly;
  hourly.usage_interval_s = 3600;
  const auto report = build_report(ledger, "", hour(2), hourly);
  EXPECT_EQ(report.records, 4) << "seqs 5 to 7 were written at or after --to";
  EXPECT_EQ(report.usage_samples, 5) << "seq 6 straddles --to; seq 7 lies wholly after it";
  // Measured series: the evaluation's center/device_hours first, then the two usage series.
  ASSERT_EQ(report.measurements.size(), 3u);
  EXPECT_EQ(report.measurements[0].source, kFromEvaluations);
  EXPECT_EQ(report.measurements[1].source, kFromUsageSamples);
  EXPECT_EQ(report.measurements[1].basis, "device_hours");
  EXPECT_EQ(report.measurements[2].basis, "served_tokens");
  EXPECT_EQ(report.measurements[1].interval_seconds, 3600);
  const auto& tokens = usage_series_of(report, "served_tokens");
  ASSERT_EQ(tokens.points.size(), 2u);
  EXPECT_EQ(tokens.scope, "center");
  EXPECT_EQ(tokens.points[0].time, hour(0));
  EXPECT_DOUBLE_EQ(*tokens.points[0].share, 0.75) << "3000 of 4000; the CPU's tokens never count";
  EXPECT_DOUBLE_EQ(tokens.points[0].denominator, 4000);
  EXPECT_EQ(tokens.points[0].seq, 4);
  // 1 h to 2 h: 600 foreign, and half of seq 6's 400 domestic tokens.
  EXPECT_EQ(tokens.points[1].time, hour(1));
  EXPECT_DOUBLE_EQ(tokens.points[1].numerator, 200);
  EXPECT_DOUBLE_EQ(*tokens.points[1].share, 0.25);
  EXPECT_EQ(tokens.points[1].seq, 6);
  const auto& hours = usage_series_of(report, "device_hours");
  EXPECT_DOUBLE_EQ(*hours.points[0].share, 0.5);
  EXPECT_DOUBLE_EQ(*hours.points[1].share, 0.5 / 2.5);
}

TEST(ReportUsage, AGapBreaksTheLineAndAnOpenWindowCoversEverySample) {
  TempDir dir;
  const auto ledger = Ledger::open(make_usage_history(dir));
  ReportOptions hourly;
  hourly.usage_interval_s = 3600;
  const auto report = build_report(ledger, "", "", hourly);
  EXPECT_EQ(report.to, hour(5));
  EXPECT_EQ(report.usage_samples, 6);
  const auto& tokens = usage_series_of(report, "served_tokens");
  ASSERT_EQ(tokens.points.size(), 5u);
  const std::optional<double> shares[] = {0.75, 0.25, 1.0, std::nullopt, 0.0};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(tokens.points[i].time, hour(i)) << i;
    EXPECT_EQ(tokens.points[i].share, shares[i]) << i;
  }
  EXPECT_EQ(tokens.points[3].seq, 0) << "a gap point names no record";
  // A window starting mid-sample: the first sample's earlier part is cut off, and intervals start at
  // the window start, not before it.
  const auto late = build_report(ledger, hour(0.5), hour(2), hourly);
  const auto& t2 = usage_series_of(late, "served_tokens");
  EXPECT_EQ(t2.points[0].time, hour(0.5));
  EXPECT_DOUBLE_EQ(t2.points[0].denominator, 2000);
  // Sum over all intervals equals the prorated totals, whatever the width.
  for (int64_t width : {60, 900, 3600, 7200, 86400}) {
    ReportOptions o;
    o.usage_interval_s = width;
    const auto r = build_report(ledger, "", "", o);
    double sum = 0;
    for (const auto& p : usage_series_of(r, "served_tokens").points) sum += p.denominator;
    EXPECT_NEAR(sum, 3000 + 1000 + 600 + 400 + 100, 1e-9) << width;
  }
}

TEST(ReportUsage, JsonCsvAndHtmlCarryTheUsageSeries) {
  TempDir dir;
  ReportOptions hourly;
  hourly.usage_interval_s = 3600;
  const auto report = build_report(Ledger::open(make_usage_history(dir)), "", "", hourly);
  const auto j = report_json(report);
  EXPECT_EQ(j["usage_samples"], 6);
  EXPECT_EQ(j["measurements"][0]["source"], "policy_evaluation");
  EXPECT_EQ(j["measurements"][0]["interval_seconds"], nullptr);
  EXPECT_EQ(j["measurements"][2]["source"], "usage_sample");
  EXPECT_EQ(j["measurements"][2]["interval_seconds"], 3600);
  EXPECT_EQ(j["measurements"][2]["points"][3]["share"], nullptr);
  const auto rows = parse_csv(report_csv(report));
  int usage_rows = 0;
  for (std::size_t i = 1; i < rows.size(); ++i) usage_rows += rows[i][1] == "usage";
  EXPECT_EQ(usage_rows, 2 * 5);
  const auto html = report_html(report);
  // Rule chart, the evaluation's centre chart, the usage chart.
  EXPECT_EQ(count(html, "<svg"), 3u);
  EXPECT_NE(html.find("usage samples, per 1 h"), std::string::npos);
  EXPECT_NE(html.find("6 usage samples"), std::string::npos);
}

TEST(ReportUsage, MalformedSamplesNameTheRecordOrWarnAfterTheWindow) {
  TempDir dir;
  auto l = Ledger::open(dir.file("l.db"));
  l.append_at(RecordKind::kUsageSample, usage_json("a1", "huawei-ascend-910b", 0, 1, 10, 1), hour(1));
  auto bad = usage_json("a1", "huawei-ascend-910b", 1, 2, 10, 1);
  bad.erase("chip");
  l.append_at(RecordKind::kUsageSample, bad, hour(2));
  try {
    build_report(l, "", "");
    FAIL() << "accepted a sample without a chip";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("ledger record 2 (usage_sample): missing \"chip\""), std::string::npos)
        << e.what();
  }
  const auto report = build_report(l, "", hour(1.5));
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_NE(report.warnings[0].find("ledger record 2"), std::string::npos);
  EXPECT_EQ(report_json(report)["warnings"].size(), 1u);
  // Too narrow an interval over a long window is refused.
  auto good = Ledger::open(dir.file("good.db"));
  good.append_at(RecordKind::kUsageSample, usage_json("a1", "huawei-ascend-910b", 0, 1, 10, 1), hour(1));
  ReportOptions narrow;
  narrow.usage_interval_s = 1;
  try {
    build_report(good, hour(0), hour(48), narrow);
    FAIL() << "accepted 172,800 intervals";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
  }
  narrow.usage_interval_s = 60;
  EXPECT_EQ(usage_series_of(build_report(good, hour(0), hour(48), narrow), "served_tokens").points.size(), 61u)
      << "60 one-minute intervals with the sample, then a null point";
}

TEST(ReportUsage, TimeTextAndIntervalChoice) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 200; ++i) {
    const int64_t micros = static_cast<int64_t>(rng() % 4'000'000'000'000'000ULL);  // to about 2096
    const auto text = ledger_time_from_micros(micros);
    ASSERT_TRUE(is_ledger_time(text)) << text;
    EXPECT_EQ(ledger_time_micros(text), micros) << text;
  }
  EXPECT_EQ(ledger_time_from_micros(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(auto_usage_interval(3600), 60);
  EXPECT_EQ(auto_usage_interval(4 * 3600 + 1), 300);
  EXPECT_EQ(auto_usage_interval(kDay), 900);
  EXPECT_EQ(auto_usage_interval(30 * kDay), 3 * 3600);
  EXPECT_EQ(auto_usage_interval(1e10), 30 * 86400) << "the widest step for any longer window";
}

}  // namespace
}  // namespace mixserve::policy

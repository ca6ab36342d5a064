// Compliance reports over the ledger: per rule the share over time against its threshold, violations
// with their durations and the time-weighted compliant fraction; per (scope, basis) the measured share,
// from policy evaluations and from the gateway's usage samples; and whether the ledger verified.
// Rendered as JSON, CSV or self-contained HTML with SVG charts.
// Semantics and the JSON schema: docs/policy.md, "Reports".
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fleet/catalogue.h"
#include "policy/ledger.h"
#include "policy/usage.h"

namespace mixserve::policy {

/// One evaluation of one rule, from a policy_evaluation record.
struct RulePoint {
  int64_t seq = 0;              ///< ledger record
  std::string time;             ///< ledger time, "YYYY-MM-DDTHH:MM:SS.ffffffZ"
  int64_t micros = 0;           ///< `time` as microseconds since 1970-01-01T00:00:00Z
  std::optional<double> share;  ///< null when nothing was counted (not-applicable)
  double numerator = 0;         ///< domestic amount in the basis unit
  double denominator = 0;       ///< domestic + foreign amount
  double threshold = 0;         ///< min_domestic_share in force at that evaluation
  bool strict = false;          ///< share had to be strictly above the threshold
  bool compliant = true;        ///< verdict (not-applicable counts as compliant)
  std::string outcome;          ///< "compliant", "violation", "audit-violation", "not-applicable"
  std::string mode;             ///< "enforce" or "audit"
};

/// A stretch of non-compliance: from a non-compliant evaluation to the next compliant one.
struct Violation {
  std::string start;                ///< time of the first non-compliant evaluation
  std::string end;                  ///< time of the next compliant evaluation, or the window end when ongoing
  bool ongoing = false;             ///< no compliant evaluation followed within the window
  double seconds = 0;               ///< end - start
  int64_t start_seq = 0;            ///< record that opened it
  std::optional<int64_t> end_seq;   ///< record that closed it; nullopt when ongoing
  int evaluations = 0;              ///< non-compliant evaluations inside it
  std::optional<double> min_share;  ///< lowest share seen inside it
  std::string mode;                 ///< mode of the opening evaluation ("enforce" or "audit")
};

/// Everything about one rule over the window. A series is one (rule name, scope, basis); a changed
/// threshold or mode stays in the same series (each point carries its own).
struct RuleSeries {
  std::string rule;                          ///< rule name
  std::string scope;                         ///< "center", "pool:<name>" or "project:<name>"
  std::string basis;                         ///< basis name
  std::vector<RulePoint> points;             ///< ordered by time, then seq
  std::vector<Violation> violations;         ///< in time order
  std::optional<double> compliant_fraction;  ///< compliant time / time covered; nullopt when 0 s covered
  double covered_seconds = 0;                ///< first evaluation to the window end
  double violation_seconds = 0;              ///< sum of the violations' durations
  std::optional<double> min_share;           ///< lowest non-null share
  std::string min_share_time;                ///< when it was seen; empty when min_share is null
};

/// One measurement of a (scope, basis): from a policy_evaluation record's "measurements", or the
/// usage_sample records summed over one interval.
struct MeasurePoint {
  int64_t seq = 0;              ///< ledger record (usage: the last sample counted; 0 for a gap)
  std::string time;             ///< ledger time (usage: the interval start, clipped to the window)
  int64_t micros = 0;           ///< `time` in microseconds since the epoch
  std::optional<double> share;  ///< null when nothing was counted
  double numerator = 0;         ///< domestic amount
  double denominator = 0;       ///< domestic + foreign amount
};

/// Where a measured series comes from.
inline constexpr const char* kFromEvaluations = "policy_evaluation";
/// A measured series summed from usage_sample records.
inline constexpr const char* kFromUsageSamples = "usage_sample";

/// The measured share of one basis in one scope over the window.
struct MeasureSeries {
  std::string scope;                        ///< "center", "pool:<name>" or "project:<name>"
  std::string basis;                        ///< basis name
  std::string source = kFromEvaluations;    ///< kFromEvaluations or kFromUsageSamples
  int64_t interval_seconds = 0;             ///< usage series: width of the summed intervals; 0 otherwise
  std::vector<MeasurePoint> points;         ///< ordered by time, then seq
};

/// How usage_sample records become measured series.
struct ReportOptions {
  const fleet::Catalogue* catalogue = nullptr;  ///< classifies sample chips; nullptr: the built-in catalogue
  std::string home_country = "CN";              ///< chips designed here are domestic
  int64_t usage_interval_s = 0;                 ///< interval width in seconds; 0: chosen from the window
};

/// Most usage intervals one report may hold; an interval this narrow over a long window is a typo.
inline constexpr int64_t kMaxUsageIntervals = 100'000;

/// A whole report.
struct Report {
  std::string ledger;                       ///< ledger path as given
  std::string from;                         ///< window start (inclusive); empty when no bound and no records
  std::string to;                           ///< window end (exclusive when given); empty when no records
  std::string to_source;                    ///< "flag" (--to) or "last_record" (time of the window's last record)
  VerifyResult verify;                      ///< the whole ledger's verify() result
  int64_t records = 0;                      ///< records read in the window, all kinds
  int64_t evaluations = 0;                  ///< policy_evaluation records among them
  int64_t usage_samples = 0;                ///< usage_sample records whose period overlaps the window
  std::vector<RuleSeries> rules;            ///< ordered by rule name, scope, basis
  /// ordered by scope (center, pools, projects), then source (evaluations, usage samples), then basis
  std::vector<MeasureSeries> measurements;
  std::vector<std::string> warnings;        ///< plain-language notes (unreadable samples written after `to`)
};

/// Parses a --from/--to value: "YYYY-MM-DD" (midnight UTC), "YYYY-MM-DDTHH:MM:SSZ" or the ledger form
/// "YYYY-MM-DDTHH:MM:SS.ffffffZ"; returns the ledger form. Throws kInvalidArgument naming `flag`.
std::string parse_report_time(std::string_view text, std::string_view flag);
/// Microseconds since 1970-01-01T00:00:00Z of a ledger time; nullopt when it is not one.
std::optional<int64_t> ledger_time_micros(std::string_view time);
/// A duration in human units: "45 s", "12 min", "3 h 20 min", "2 d 4 h".
std::string human_duration(double seconds);

/// Ledger time "YYYY-MM-DDTHH:MM:SS.ffffffZ" of microseconds since 1970-01-01T00:00:00Z.
std::string ledger_time_from_micros(int64_t micros);
/// The usage interval width for a window of `span_seconds`: the smallest of 1, 5, 15, 30 min, 1, 2, 3,
/// 6, 12 h, 1, 2, 7, 14, 30 d giving at most 240 intervals.
int64_t auto_usage_interval(double span_seconds);

/// The centre's measured share of device_hours and served_tokens (two series, source kFromUsageSamples)
/// per interval of `width_s` seconds aligned to multiples of it since the epoch and clipped to the
/// window [lo, hi) (microseconds, lo < hi). Each sample adds the part of its period inside each interval
/// (usage_overlap), classified by the catalogue (unknown chips foreign, CPUs not counted). Intervals
/// without samples add no point, except the first after ones with samples: a null point that breaks the
/// line. Throws kInvalidArgument when there would be more than kMaxUsageIntervals intervals.
std::vector<MeasureSeries> usage_series(const std::vector<UsageSample>& samples, int64_t lo, int64_t hi,
                                        int64_t width_s, const ReportOptions& options = {});

/// Builds a report of window [from, to) (either bound may be empty) from `records` (ordered by seq):
/// those whose time lies in the window are the window's records; a usage_sample record written after
/// `to` still counts for the part of its period before `to`. Records of other kinds are counted and
/// otherwise ignored. Usage samples become centre series of device_hours and served_tokens per
/// interval (docs/policy.md, "Reports"). Throws kDataLoss naming the seq for a malformed time or
/// payload, kInvalidArgument for a usage interval giving more than kMaxUsageIntervals intervals.
Report build_report(const std::vector<LedgerRecord>& records, const std::string& from, const std::string& to,
                    VerifyResult verify, std::string ledger_path, const ReportOptions& options = {});
/// Verifies `ledger`, reads its records written from `from` on and builds the report.
Report build_report(const Ledger& ledger, const std::string& from, const std::string& to,
                    const ReportOptions& options = {});

/// The report as JSON (schema in docs/policy.md).
nlohmann::json report_json(const Report& report);
/// One CSV row per data point (rule evaluations and measurements) under a header, RFC 4180 quoting.
std::string report_csv(const Report& report);
/// A self-contained HTML page (no scripts): verify banner, summary, violations, SVG charts.
std::string report_html(const Report& report);

}  // namespace mixserve::policy

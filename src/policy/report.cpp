#include "policy/report.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <tuple>
#include <utility>

#include "common/error.h"
#include "policy/usage.h"

namespace mixserve::policy {
namespace {

int digits(std::string_view text, std::size_t pos, std::size_t len) {
  int v = 0;
  for (std::size_t i = pos; i < pos + len; ++i) v = v * 10 + (text[i] - '0');
  return v;
}

// Shown where a scope or basis has no fixed rank: after the known ones, alphabetically.
int scope_rank(const std::string& scope) {
  if (scope == "center") return 0;
  if (scope.rfind("pool:", 0) == 0) return 1;
  if (scope.rfind("project:", 0) == 0) return 2;
  return 3;
}

int basis_rank(const std::string& basis) {
  static const char* kOrder[] = {"device_count", "peak_fp16_tflops", "memory_gib", "device_hours", "served_tokens"};
  for (int i = 0; i < 5; ++i) {
    if (basis == kOrder[i]) return i;
  }
  return 5;
}

// Field readers for payloads: any missing or mistyped field is a data-loss error naming the record.
struct Where {
  int64_t seq;
  std::string what;  // "rules[2]"
};

[[noreturn]] void bad(const Where& w, const std::string& problem) {
  fail(ErrorCode::kDataLoss, "ledger record ", w.seq, " (policy_evaluation): ", w.what.empty() ? "" : w.what + ": ",
       problem);
}

const nlohmann::json& field(const Where& w, const nlohmann::json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end()) bad(w, std::string("missing \"") + key + "\"");
  return *it;
}

std::string get_string(const Where& w, const nlohmann::json& obj, const char* key) {
  const auto& v = field(w, obj, key);
  if (!v.is_string()) bad(w, std::string("\"") + key + "\" is not a string");
  return v.get<std::string>();
}

double get_number(const Where& w, const nlohmann::json& obj, const char* key) {
  const auto& v = field(w, obj, key);
  if (!v.is_number() || !std::isfinite(v.get<double>())) bad(w, std::string("\"") + key + "\" is not a number");
  return v.get<double>();
}

std::optional<double> get_share(const Where& w, const nlohmann::json& obj) {
  const auto& v = field(w, obj, "share");
  if (v.is_null()) return std::nullopt;
  const double share = get_number(w, obj, "share");
  if (share < 0 || share > 1) bad(w, "\"share\" lies outside [0, 1]");
  return share;
}

bool get_bool(const Where& w, const nlohmann::json& obj, const char* key, std::optional<bool> fallback) {
  const auto it = obj.find(key);
  if (it == obj.end() && fallback) return *fallback;
  const auto& v = field(w, obj, key);
  if (!v.is_boolean()) bad(w, std::string("\"") + key + "\" is not true or false");
  return v.get<bool>();
}

using SeriesKey = std::tuple<std::string, std::string, std::string>;

void read_evaluation(const LedgerRecord& record, int64_t micros, std::map<SeriesKey, RuleSeries>& rules,
                     std::map<std::pair<std::string, std::string>, MeasureSeries>& measured) {
  const auto payload = nlohmann::json::parse(record.payload, nullptr, false);
  Where where{record.seq, ""};
  if (payload.is_discarded()) bad(where, "the payload is not valid JSON");
  if (!payload.is_object()) bad(where, "the payload is not a JSON object");
  const auto& list = field(where, payload, "rules");
  if (!list.is_array()) bad(where, "\"rules\" is not a list");
  for (std::size_t i = 0; i < list.size(); ++i) {
    Where w{record.seq, "rules[" + std::to_string(i) + "]"};
    const auto& r = list[i];
    if (!r.is_object()) bad(w, "not an object");
    RulePoint p;
    p.seq = record.seq;
    p.time = record.time;
    p.micros = micros;
    p.share = get_share(w, r);
    p.numerator = get_number(w, r, "numerator");
    p.denominator = get_number(w, r, "denominator");
    p.threshold = get_number(w, r, "threshold");
    p.strict = get_bool(w, r, "strict", false);
    p.compliant = get_bool(w, r, "compliant", std::nullopt);
    p.outcome = r.contains("outcome") ? get_string(w, r, "outcome") : (p.compliant ? "compliant" : "violation");
    p.mode = get_string(w, r, "mode");
    SeriesKey key{get_string(w, r, "rule"), get_string(w, r, "scope"), get_string(w, r, "basis")};
    auto& series = rules[key];
    std::tie(series.rule, series.scope, series.basis) = key;
    series.points.push_back(std::move(p));
  }
  const auto it = payload.find("measurements");
  if (it == payload.end() || it->is_null()) return;  // written before measurements were recorded
  if (!it->is_array()) bad(where, "\"measurements\" is not a list");
  for (std::size_t i = 0; i < it->size(); ++i) {
    Where w{record.seq, "measurements[" + std::to_string(i) + "]"};
    const auto& m = (*it)[i];
    if (!m.is_object()) bad(w, "not an object");
    MeasurePoint p{record.seq,
                   record.time,
                   micros,
                   get_share(w, m),
                   get_number(w, m, "numerator"),
                   get_number(w, m, "denominator")};
    std::pair<std::string, std::string> key{get_string(w, m, "scope"), get_string(w, m, "basis")};
    auto& series = measured[key];
    series.scope = key.first;
    series.basis = key.second;
    series.points.push_back(std::move(p));
  }
}

double seconds_between(int64_t from_micros, int64_t to_micros) {
  return std::max<int64_t>(0, to_micros - from_micros) / 1e6;
}

// Violations, compliant fraction and minimum of one series whose points are sorted by time.
void summarise(RuleSeries& s, const std::string& window_end, int64_t end_micros) {
  Violation* open = nullptr;
  double compliant_seconds = 0;
  for (std::size_t i = 0; i < s.points.size(); ++i) {
    const auto& p = s.points[i];
    const int64_t next = i + 1 < s.points.size() ? s.points[i + 1].micros : end_micros;
    if (p.compliant) compliant_seconds += seconds_between(p.micros, next);
    if (p.share && (!s.min_share || *p.share < *s.min_share)) {
      s.min_share = p.share;
      s.min_share_time = p.time;
    }
    if (!p.compliant) {
      if (!open) {
        s.violations.push_back(Violation{p.time, "", false, 0, p.seq, std::nullopt, 0, std::nullopt, p.mode});
        open = &s.violations.back();
      }
      open->evaluations += 1;
      if (p.share && (!open->min_share || *p.share < *open->min_share)) open->min_share = p.share;
    } else if (open) {
      open->end = p.time;
      open->end_seq = p.seq;
      open->seconds = seconds_between(*ledger_time_micros(open->start), p.micros);
      open = nullptr;
    }
  }
  if (open) {
    open->ongoing = true;
    open->end = window_end;
    open->seconds = seconds_between(*ledger_time_micros(open->start), end_micros);
  }
  for (const auto& v : s.violations) s.violation_seconds += v.seconds;
  s.covered_seconds = s.points.empty() ? 0 : seconds_between(s.points.front().micros, end_micros);
  if (s.covered_seconds > 0) s.compliant_fraction = compliant_seconds / s.covered_seconds;
}

nlohmann::json opt(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json text_or_null(const std::string& s) {
  return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
}

// RFC 4180: a field holding a comma, quote, CR or LF is quoted, with quotes doubled.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    out += c;
    if (c == '"') out += '"';
  }
  return out + "\"";
}

// Shortest text that reads back to the same double.
std::string number_text(double x) {
  return nlohmann::json(x).dump();
}

std::string csv_row(const std::vector<std::string>& fields) {
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + csv_field(fields[i]);
  return line + "\r\n";
}

// Moves every series out of `by_key` into `out`, its points in time order (ties by seq).
template <typename Map, typename Series>
void take_sorted(Map& by_key, std::vector<Series>& out) {
  for (auto& [key, series] : by_key) {
    std::stable_sort(series.points.begin(), series.points.end(), [](const auto& a, const auto& b) {
      return std::tie(a.micros, a.seq) < std::tie(b.micros, b.seq);
    });
    out.push_back(std::move(series));
  }
}

}  // namespace

std::optional<int64_t> ledger_time_micros(std::string_view t) {
  if (!is_ledger_time(t)) return std::nullopt;
  using namespace std::chrono;
  // A day past the month's end (the ledger checks days against 31 only) rolls into the next month,
  // as year_month_day -> sys_days specifies for a valid year and month.
  const year_month_day ymd{year{digits(t, 0, 4)}, month{static_cast<unsigned>(digits(t, 5, 2))},
                           day{static_cast<unsigned>(digits(t, 8, 2))}};
  const int64_t days = sys_days{ymd}.time_since_epoch().count();
  const int64_t secs = days * 86400 + digits(t, 11, 2) * 3600 + digits(t, 14, 2) * 60 + digits(t, 17, 2);
  return secs * 1000000 + digits(t, 20, 6);
}

std::string parse_report_time(std::string_view text, std::string_view flag) {
  std::string t(text);
  if (t.size() == 10) {
    t += "T00:00:00.000000Z";
  } else if (t.size() == 20 && t.back() == 'Z') {
    t = t.substr(0, 19) + ".000000Z";
  }
  bool ok = is_ledger_time(t);
  if (ok) {
    using namespace std::chrono;
    ok = year_month_day{year{digits(t, 0, 4)}, month{static_cast<unsigned>(digits(t, 5, 2))},
                        day{static_cast<unsigned>(digits(t, 8, 2))}}
             .ok();
  }
  if (!ok) {
    fail(ErrorCode::kInvalidArgument, flag, " '", text,
         "' is not a UTC time: use YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM:SS.ffffffZ");
  }
  return t;
}

std::string human_duration(double seconds) {
  const auto total = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  const int64_t d = total / 86400, h = total % 86400 / 3600, m = total % 3600 / 60, s = total % 60;
  auto two = [](int64_t a, const char* ua, int64_t b, const char* ub) {
    return std::to_string(a) + " " + ua + (b ? " " + std::to_string(b) + " " + ub : "");
  };
  if (d > 0) return two(d, "d", h, "h");
  if (h > 0) return two(h, "h", m, "min");
  if (m > 0) return two(m, "min", s, "s");
  return std::to_string(s) + " s";
}

Report build_report(const std::vector<LedgerRecord>& records, const std::string& from, const std::string& to,
                    VerifyResult verify, std::string ledger_path, const ReportOptions& options) {
  for (const auto* bound : {&from, &to}) {
    if (!bound->empty() && !ledger_time_micros(*bound)) {
      fail(ErrorCode::kInvalidArgument, "report window bound '", *bound, "' is not a ledger time");
    }
  }
  if (!from.empty() && !to.empty() && from >= to) {
    fail(ErrorCode::kInvalidArgument, "the report window is empty: --from ", from, " is not before --to ", to);
  }
  if (options.usage_interval_s < 0) {
    fail(ErrorCode::kInvalidArgument, "the usage interval must be a positive number of seconds");
  }
  Report report;
  report.ledger = std::move(ledger_path);
  report.verify = std::move(verify);
  std::map<SeriesKey, RuleSeries> rules;
  std::map<std::pair<std::string, std::string>, MeasureSeries> measured;
  std::vector<UsageSample> samples;
  const std::string usage_kind(record_kind_name(RecordKind::kUsageSample));
  std::string first, last;
  for (const auto& record : records) {
    if (!from.empty() && record.time < from) continue;
    if (!to.empty() && record.time >= to) {
      // Written after the window: only a usage sample, for the part of its period before `to`.
      if (record.kind != usage_kind) continue;
      try {
        samples.push_back(read_usage_sample(record));
      } catch (const Error& e) {
        report.warnings.push_back(std::string(e.what()) + "; written after the window end, not counted");
      }
      continue;
    }
    report.records += 1;
    const auto micros = ledger_time_micros(record.time);
    if (!micros) {
      fail(ErrorCode::kDataLoss, "ledger record ", record.seq, " (", record.kind, "): time '", record.time,
           "' is not a ledger time (YYYY-MM-DDTHH:MM:SS.ffffffZ)");
    }
    if (first.empty() || record.time < first) first = record.time;
    if (last.empty() || record.time > last) last = record.time;
    if (record.kind == usage_kind) {
      samples.push_back(read_usage_sample(record));
      continue;
    }
    if (record.kind != record_kind_name(RecordKind::kPolicyEvaluation)) continue;
    report.evaluations += 1;
    read_evaluation(record, *micros, rules, measured);
  }
  // An open bound reaches as far as the records and the periods of their usage samples.
  for (const auto& s : samples) {
    if (from.empty() && (first.empty() || s.from < first)) first = s.from;
    if (to.empty() && (last.empty() || s.to > last)) last = s.to;
  }
  report.from = from.empty() ? first : from;
  report.to = to.empty() ? last : to;
  report.to_source = to.empty() ? "last_record" : "flag";
  const int64_t end_micros = report.to.empty() ? 0 : ledger_time_micros(report.to).value_or(0);
  take_sorted(rules, report.rules);
  for (auto& series : report.rules) summarise(series, report.to, end_micros);
  take_sorted(measured, report.measurements);
  if (!report.from.empty() && !report.to.empty()) {
    const int64_t lo = *ledger_time_micros(report.from), hi = end_micros;
    std::erase_if(samples, [&](const UsageSample& s) { return usage_overlap(s, lo, hi) <= 0; });
    report.usage_samples = static_cast<int64_t>(samples.size());
    if (!samples.empty()) {
      const int64_t width = options.usage_interval_s > 0 ? options.usage_interval_s
                                                          : auto_usage_interval(static_cast<double>(hi - lo) / 1e6);
      for (auto& series : usage_series(samples, lo, hi, width, options)) {
        report.measurements.push_back(std::move(series));
      }
    }
  }
  std::stable_sort(report.measurements.begin(), report.measurements.end(), [](const auto& a, const auto& b) {
    return std::make_tuple(scope_rank(a.scope), a.scope, a.source != kFromEvaluations, basis_rank(a.basis), a.basis) <
           std::make_tuple(scope_rank(b.scope), b.scope, b.source != kFromEvaluations, basis_rank(b.basis), b.basis);
  });
  return report;
}

Report build_report(const Ledger& ledger, const std::string& from, const std::string& to,
                    const ReportOptions& options) {
  auto verify = ledger.verify();
  std::vector<LedgerRecord> records;
  try {
    // From `from` on, not to `to`: a usage sample written after the window may have begun inside it.
    records = ledger.records(from, "");
    return build_report(records, from, to, verify, ledger.path(), options);
  } catch (const Error& e) {
    if (verify.ok) throw;
    // Tampering can make the content unreadable; say that the ledger is damaged, not only what broke.
    fail(e.code(), e.what(), " (ledger ", ledger.path(),
         " is not intact: ", verify.first_bad_seq ? "record " + std::to_string(*verify.first_bad_seq) + ": " : "",
         verify.problem, ")");
  }
}

nlohmann::json report_json(const Report& report) {
  nlohmann::json j;
  j["report_version"] = 1;
  j["ledger"] = report.ledger;
  j["window"] = {{"from", text_or_null(report.from)}, {"to", text_or_null(report.to)}, {"to_source", report.to_source}};
  const auto& v = report.verify;
  j["verify"] = {{"ok", v.ok},
                 {"records", v.records},
                 {"first_bad_seq", v.first_bad_seq ? nlohmann::json(*v.first_bad_seq) : nlohmann::json(nullptr)},
                 {"problem", v.problem},
                 {"head_count", v.head.count},
                 {"head_hash", v.head.last_hash}};
  j["records"] = report.records;
  j["evaluations"] = report.evaluations;
  j["usage_samples"] = report.usage_samples;
  j["warnings"] = report.warnings;
  auto rules = nlohmann::json::array();
  for (const auto& s : report.rules) {
    nlohmann::json r{{"rule", s.rule}, {"scope", s.scope}, {"basis", s.basis}};
    const auto& last = s.points.back();
    r["mode"] = last.mode;
    r["threshold"] = last.threshold;
    r["strict"] = last.strict;
    r["evaluations"] = s.points.size();
    r["last"] = {
        {"time", last.time}, {"share", opt(last.share)}, {"compliant", last.compliant}, {"outcome", last.outcome}};
    r["min_share"] = opt(s.min_share);
    r["min_share_time"] = text_or_null(s.min_share_time);
    r["compliant_fraction"] = opt(s.compliant_fraction);
    r["covered_seconds"] = s.covered_seconds;
    r["violation_seconds"] = s.violation_seconds;
    auto violations = nlohmann::json::array();
    for (const auto& x : s.violations) {
      violations.push_back({{"start", x.start},
                            {"end", x.end},
                            {"ongoing", x.ongoing},
                            {"seconds", x.seconds},
                            {"duration", human_duration(x.seconds)},
                            {"start_seq", x.start_seq},
                            {"end_seq", x.end_seq ? nlohmann::json(*x.end_seq) : nlohmann::json(nullptr)},
                            {"evaluations", x.evaluations},
                            {"min_share", opt(x.min_share)},
                            {"mode", x.mode}});
    }
    r["violations"] = violations;
    auto points = nlohmann::json::array();
    for (const auto& p : s.points) {
      points.push_back({{"seq", p.seq},
                        {"time", p.time},
                        {"share", opt(p.share)},
                        {"numerator", p.numerator},
                        {"denominator", p.denominator},
                        {"threshold", p.threshold},
                        {"strict", p.strict},
                        {"compliant", p.compliant},
                        {"outcome", p.outcome},
                        {"mode", p.mode}});
    }
    r["points"] = points;
    rules.push_back(std::move(r));
  }
  j["rules"] = rules;
  auto measurements = nlohmann::json::array();
  for (const auto& s : report.measurements) {
    auto points = nlohmann::json::array();
    for (const auto& p : s.points) {
      points.push_back({{"seq", p.seq},
                        {"time", p.time},
                        {"share", opt(p.share)},
                        {"numerator", p.numerator},
                        {"denominator", p.denominator}});
    }
    measurements.push_back({{"scope", s.scope},
                            {"basis", s.basis},
                            {"source", s.source},
                            {"interval_seconds", s.interval_seconds > 0 ? nlohmann::json(s.interval_seconds)
                                                                        : nlohmann::json(nullptr)},
                            {"points", points}});
  }
  j["measurements"] = measurements;
  return j;
}

std::string report_csv(const Report& report) {
  const std::string intact = report.verify.ok ? "true" : "false";
  std::string out = csv_row({"ledger_intact", "series", "rule", "scope", "basis", "seq", "time", "share", "numerator",
                             "denominator", "threshold", "strict", "compliant", "outcome", "mode"});
  auto share = [](const std::optional<double>& s) { return s ? number_text(*s) : std::string(); };
  for (const auto& s : report.rules) {
    for (const auto& p : s.points) {
      out += csv_row({intact, "rule", s.rule, s.scope, s.basis, std::to_string(p.seq), p.time, share(p.share),
                      number_text(p.numerator), number_text(p.denominator), number_text(p.threshold),
                      p.strict ? "true" : "false", p.compliant ? "true" : "false", p.outcome, p.mode});
    }
  }
  for (const auto& s : report.measurements) {
    const std::string series = s.source == kFromUsageSamples ? "usage" : "measurement";
    for (const auto& p : s.points) {
      out += csv_row({intact, series, "", s.scope, s.basis, std::to_string(p.seq), p.time, share(p.share),
                      number_text(p.numerator), number_text(p.denominator), "", "", "", "", ""});
    }
  }
  return out;
}

}  // namespace mixserve::policy

// The HTML rendering of a report: one self-contained page (inline CSS, inline SVG, no scripts) that a
// person can read at a glance: the verify banner first, then the summary, the violations and the charts.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "policy/report.h"

namespace mixserve::policy {
namespace {

std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string fmt(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}

std::string pct(const std::optional<double>& share) {
  return share ? fmt("%.1f%%", *share * 100) : "-";
}

std::string amount(double x) {
  return fmt(x == static_cast<double>(static_cast<int64_t>(x)) ? "%.0f" : "%.2f", x);
}

// "2026-11-25 18:00:00 UTC" from a ledger time.
std::string show_time(const std::string& t) {
  if (t.size() < 19) return t;
  return t.substr(0, 10) + " " + t.substr(11, 8) + " UTC";
}

constexpr int kWidth = 960;
constexpr int kHeight = 290;
constexpr int kLeft = 56;
constexpr int kRight = 20;
constexpr int kTop = 34;
constexpr int kBottom = 40;
constexpr const char* kRed = "#d62728";

struct Sample {
  int64_t micros = 0;
  std::optional<double> value;  // share in [0, 1]; null breaks the line
  bool bad = false;             // drawn as a red marker
  std::string tip;              // hover text (SVG <title>)
};

struct Line {
  std::string label;
  std::string color;
  std::string dash;  // stroke-dasharray; empty for solid
  bool markers = true;
  std::vector<Sample> samples;
};

struct Band {
  int64_t from = 0;
  int64_t to = 0;
  std::string tip;
};

struct Axis {
  int64_t t0 = 0;
  int64_t t1 = 1;
  double x(int64_t t) const {
    return kLeft + static_cast<double>(t - t0) / static_cast<double>(t1 - t0) * (kWidth - kLeft - kRight);
  }
  static double y(double share) { return kTop + (1.0 - share) * (kHeight - kTop - kBottom); }
};

std::string utc_label(int64_t micros, int kind) {
  using namespace std::chrono;
  const sys_seconds t{seconds{micros / 1000000}};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{t - day};
  char buf[32];
  if (kind == 0) {
    std::snprintf(buf, sizeof buf, "%02u-%02u %02d:%02d", static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                  static_cast<int>(hms.minutes().count()));
  } else if (kind == 1) {
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()));
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()));
  }
  return buf;
}

// Date ticks: the smallest step giving at most 8 ticks; hours and days aligned to UTC, months to the 1st.
std::vector<std::pair<int64_t, std::string>> time_ticks(const Axis& axis) {
  constexpr int64_t kMin = 60'000'000, kHour = 60 * kMin, kDay = 24 * kHour;
  const int64_t steps[] = {kMin,      5 * kMin,   15 * kMin, 30 * kMin, kHour,    2 * kHour, 3 * kHour,
                           6 * kHour, 12 * kHour, kDay,      2 * kDay,  7 * kDay, 14 * kDay};
  const int64_t span = axis.t1 - axis.t0;
  std::vector<std::pair<int64_t, std::string>> ticks;
  for (int64_t step : steps) {
    if (span / step > 8) continue;
    for (int64_t t = (axis.t0 + step - 1) / step * step; t <= axis.t1; t += step) {
      ticks.emplace_back(t, utc_label(t, step < kDay ? 0 : 1));
    }
    if (ticks.empty()) ticks.emplace_back(axis.t0, utc_label(axis.t0, 0));
    return ticks;
  }
  using namespace std::chrono;
  const int64_t months = span / (30 * kDay);
  int every = 12 * static_cast<int>((months + 95) / 96);  // whole years, at most 8 ticks
  if (months <= 48) every = months <= 8 ? 1 : months <= 24 ? 3 : 6;
  const year_month_day start{floor<days>(sys_seconds{seconds{axis.t0 / 1000000}})};
  for (auto ym = start.year() / start.month() + std::chrono::months{1};; ym += std::chrono::months{1}) {
    const int64_t t = sys_days{ym / 1}.time_since_epoch().count() * kDay;
    if (t > axis.t1) break;
    if ((static_cast<int>(static_cast<unsigned>(ym.month())) - 1) % every == 0) ticks.emplace_back(t, utc_label(t, 2));
  }
  return ticks;
}

// A step-after line: each sample's value holds until the next sample (or the window end).
std::string step_path(const Axis& axis, const std::vector<Sample>& samples) {
  std::string d;
  bool drawing = false;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto& s = samples[i];
    if (!s.value) {
      drawing = false;
      continue;
    }
    const double x = axis.x(s.micros), y = Axis::y(*s.value);
    d += (drawing ? "V" + fmt("%.1f", y) : "M" + fmt("%.1f", x) + " " + fmt("%.1f", y));
    const int64_t next = i + 1 < samples.size() ? samples[i + 1].micros : axis.t1;
    d += " H" + fmt("%.1f", axis.x(next)) + " ";
    drawing = true;
  }
  return d;
}

std::string svg_chart(const std::string& label, const Axis& axis, const std::vector<Line>& lines,
                      const std::vector<Band>& bands) {
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " + std::to_string(kWidth) + " " +
                  std::to_string(kHeight) + "\" width=\"" + std::to_string(kWidth) + "\" height=\"" +
                  std::to_string(kHeight) + "\" role=\"img\" aria-label=\"" + esc(label) +
                  "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  const double left = kLeft, right = kWidth - kRight, top = kTop, bottom = kHeight - kBottom;
  s += "<rect x=\"" + fmt("%.0f", left) + "\" y=\"" + fmt("%.0f", top) + "\" width=\"" + fmt("%.0f", right - left) +
       "\" height=\"" + fmt("%.0f", bottom - top) + "\" fill=\"#fff\" stroke=\"#999\"/>\n";
  for (const auto& b : bands) {
    const double x0 = axis.x(b.from), x1 = std::max(axis.x(b.to), x0 + 2);
    s += "<rect class=\"violation\" x=\"" + fmt("%.1f", x0) + "\" y=\"" + fmt("%.0f", top) + "\" width=\"" +
         fmt("%.1f", x1 - x0) + "\" height=\"" + fmt("%.0f", bottom - top) + "\" fill=\"" + kRed +
         "\" fill-opacity=\"0.18\"><title>" + esc(b.tip) + "</title></rect>\n";
  }
  for (int p = 0; p <= 100; p += 10) {
    const double y = Axis::y(p / 100.0);
    s += "<line x1=\"" + fmt("%.0f", left) + "\" x2=\"" + fmt("%.0f", right) + "\" y1=\"" + fmt("%.1f", y) +
         "\" y2=\"" + fmt("%.1f", y) + "\" stroke=\"" + (p % 50 == 0 ? "#bbb" : "#e5e5e5") + "\"/>";
    if (p % 10 == 0) {
      s += "<text x=\"" + fmt("%.0f", left - 6) + "\" y=\"" + fmt("%.1f", y + 4) + "\" text-anchor=\"end\">" +
           std::to_string(p) + "%</text>";
    }
    s += "\n";
  }
  for (const auto& [t, text] : time_ticks(axis)) {
    const double x = axis.x(t);
    // Labels at the edges are anchored inward so they are not cut off.
    const char* anchor = x > right - 40 ? "end" : x < left + 40 ? "start" : "middle";
    s += "<line x1=\"" + fmt("%.1f", x) + "\" x2=\"" + fmt("%.1f", x) + "\" y1=\"" + fmt("%.0f", top) + "\" y2=\"" +
         fmt("%.0f", bottom + 4) + "\" stroke=\"#e5e5e5\"/><text x=\"" + fmt("%.1f", x) + "\" y=\"" +
         fmt("%.0f", bottom + 16) + "\" text-anchor=\"" + anchor + "\">" + esc(text) + "</text>\n";
  }
  s += "<text x=\"" + fmt("%.0f", (left + right) / 2) + "\" y=\"" + fmt("%.0f", bottom + 33.0) +
       "\" text-anchor=\"middle\" fill=\"#666\">time (UTC)</text>\n";
  for (const auto& line : lines) {
    s += "<path class=\"series\" d=\"" + step_path(axis, line.samples) + "\" fill=\"none\" stroke=\"" + line.color +
         "\" stroke-width=\"" + (line.dash.empty() ? "2" : "1.5") + "\"" +
         (line.dash.empty() ? std::string() : " stroke-dasharray=\"" + line.dash + "\"") + "><title>" +
         esc(line.label) + "</title></path>\n";
    if (!line.markers) continue;
    for (const auto& p : line.samples) {
      if (!p.value) continue;
      s += "<circle cx=\"" + fmt("%.1f", axis.x(p.micros)) + "\" cy=\"" + fmt("%.1f", Axis::y(*p.value)) +
           "\" r=\"3.5\" fill=\"" + (p.bad ? kRed : line.color) + "\" stroke=\"#fff\"><title>" + esc(p.tip) +
           "</title></circle>\n";
    }
  }
  // Legend, one row above the plot.
  double x = left;
  for (const auto& line : lines) {
    s += "<line x1=\"" + fmt("%.0f", x) + "\" x2=\"" + fmt("%.0f", x + 22) + "\" y1=\"16\" y2=\"16\" stroke=\"" +
         line.color + "\" stroke-width=\"2\"" +
         (line.dash.empty() ? std::string() : " stroke-dasharray=\"" + line.dash + "\"") + "/><text x=\"" +
         fmt("%.0f", x + 27) + "\" y=\"20\">" + esc(line.label) + "</text>\n";
    x += 40 + 6.5 * static_cast<double>(line.label.size());
  }
  if (!bands.empty()) {
    s += "<rect x=\"" + fmt("%.0f", x) + "\" y=\"10\" width=\"22\" height=\"12\" fill=\"" + kRed +
         "\" fill-opacity=\"0.18\"/><text x=\"" + fmt("%.0f", x + 27) + "\" y=\"20\">violation</text>\n";
  }
  return s + "</svg>\n";
}

std::string required_text(const RulePoint& p) {
  return (p.strict ? ">" : "\xe2\x89\xa5") + pct(p.threshold);
}

std::string rule_chart(const RuleSeries& s, const Axis& axis) {
  Line share{"domestic share (" + s.basis + ")", "#1f77b4", "", true, {}};
  Line threshold{"required", "#333", "6 4", false, {}};
  for (const auto& p : s.points) {
    const std::string tip = "seq " + std::to_string(p.seq) + ", " + show_time(p.time) + ": " + pct(p.share) + " (" +
                            amount(p.numerator) + " of " + amount(p.denominator) + "), required " + required_text(p) +
                            ", " + p.outcome;
    share.samples.push_back({p.micros, p.share, !p.compliant, tip});
    threshold.samples.push_back({p.micros, p.threshold, false, ""});
  }
  std::vector<Band> bands;
  for (const auto& v : s.violations) {
    bands.push_back({*ledger_time_micros(v.start), *ledger_time_micros(v.end),
                     "violation from " + show_time(v.start) + (v.ongoing ? ", ongoing" : " to " + show_time(v.end)) +
                         " (" + human_duration(v.seconds) + ")"});
  }
  const std::string label = "Rule " + s.rule + " (" + s.scope + ", " + s.basis + "): domestic share over time";
  return svg_chart(label, axis, {share, threshold}, bands);
}

std::string basis_color(const std::string& basis) {
  if (basis == "device_count") return "#1f77b4";
  if (basis == "peak_fp16_tflops") return "#ff7f0e";
  if (basis == "memory_gib") return "#2ca02c";
  if (basis == "device_hours") return "#9467bd";
  if (basis == "served_tokens") return "#8c564b";
  return "#7f7f7f";
}

const char* kStyle = R"(body{font-family:sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}td.num{text-align:right}.ok{color:#17692b}.bad{color:#b00020;font-weight:bold}
.banner{padding:12px 16px;margin:16px 0;border-radius:4px;font-size:15px}
.banner.ok{background:#e6f4ea;border:1px solid #17692b}
.banner.bad{background:#fde7e9;border:3px solid #b00020;font-size:18px}
figure{margin:16px 0}figcaption{font-weight:bold;margin-bottom:4px}.meta{color:#555}
)";

}  // namespace

std::string report_html(const Report& report) {
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<title>Domestic-share compliance report: " + esc(report.ledger) + "</title>\n<style>\n" + kStyle +
       "</style>\n</head>\n<body>\n<h1>Domestic-share compliance report</h1>\n";
  const bool bounded = !report.from.empty() && !report.to.empty();
  h += "<p class=\"meta\">Ledger <code>" + esc(report.ledger) + "</code>; window " +
       (bounded ? esc(show_time(report.from)) + " to " + esc(show_time(report.to)) +
                      (report.to_source == "last_record" ? " (the last record)" : "")
                : std::string("without records")) +
       "; " + std::to_string(report.records) + " records, " + std::to_string(report.evaluations) +
       " policy evaluations, " + std::to_string(report.usage_samples) + " usage samples.</p>\n";
  const auto& v = report.verify;
  if (v.ok) {
    h += "<div class=\"banner ok\" id=\"verify\">Ledger verified: intact, " + std::to_string(v.records) +
         " records, head " + esc(v.head.last_hash) + ".</div>\n";
  } else {
    h += "<div class=\"banner bad\" id=\"verify\">LEDGER NOT INTACT: " +
         esc(v.first_bad_seq ? "record " + std::to_string(*v.first_bad_seq) + ": " : std::string()) + esc(v.problem) +
         ". The ledger fails verification, so the figures in this report cannot be trusted as evidence.</div>\n";
  }

  for (const auto& w : report.warnings) h += "<p class=\"bad\">Warning: " + esc(w) + "</p>\n";

  h += "<h2>Summary</h2>\n";
  if (report.rules.empty()) {
    h += "<p>No policy evaluations in the window.</p>\n";
  } else {
    h += "<table id=\"summary\"><tr><th>Rule</th><th>Scope</th><th>Basis</th><th>Mode</th><th>Required</th>"
         "<th>Evaluations</th><th>Now</th><th>Last share</th><th>Lowest share</th><th>Time compliant</th>"
         "<th>Violations</th><th>Time in violation</th></tr>\n";
    for (const auto& s : report.rules) {
      const auto& last = s.points.back();
      h += "<tr><td>" + esc(s.rule) + "</td><td>" + esc(s.scope) + "</td><td>" + esc(s.basis) + "</td><td>" +
           esc(last.mode) + "</td><td class=\"num\">" + esc(required_text(last)) + "</td><td class=\"num\">" +
           std::to_string(s.points.size()) + "</td><td class=\"" + (last.compliant ? "ok" : "bad") + "\">" +
           esc(last.outcome) + "</td><td class=\"num\">" + pct(last.share) + "</td><td class=\"num\">" +
           pct(s.min_share) + "</td><td class=\"num\">" + pct(s.compliant_fraction) + "</td><td class=\"num\">" +
           std::to_string(s.violations.size()) + "</td><td class=\"num\">" + human_duration(s.violation_seconds) +
           "</td></tr>\n";
    }
    h += "</table>\n<p class=\"meta\">Time compliant: share of the time from a rule's first evaluation in the window "
         "to the window end during which its latest evaluation was compliant.</p>\n";
  }

  h += "<h2>Violations</h2>\n";
  std::string rows;
  for (const auto& s : report.rules) {
    for (const auto& x : s.violations) {
      rows += "<tr><td>" + esc(s.rule) + "</td><td>" + esc(s.scope) + "</td><td>" + esc(x.mode) + "</td><td>" +
              esc(show_time(x.start)) + "</td><td" +
              (x.ongoing ? " class=\"bad\">ongoing" : ">" + esc(show_time(x.end))) + "</td><td class=\"num\">" +
              human_duration(x.seconds) + (x.ongoing ? " so far" : "") + "</td><td class=\"num\">" + pct(x.min_share) +
              "</td><td class=\"num\">" + std::to_string(x.evaluations) + "</td></tr>\n";
    }
  }
  h += rows.empty() ? "<p class=\"ok\">No violations in the window.</p>\n"
                    : "<table id=\"violations\"><tr><th>Rule</th><th>Scope</th><th>Mode</th><th>Start</th><th>End</th>"
                      "<th>Duration</th><th>Lowest share</th><th>Evaluations</th></tr>\n" +
                          rows + "</table>\n";

  Axis axis;
  if (bounded) {
    axis.t0 = *ledger_time_micros(report.from);
    axis.t1 = *ledger_time_micros(report.to);
  }
  if (axis.t1 <= axis.t0) {  // one instant: show an hour around it
    axis.t0 -= 1'800'000'000;
    axis.t1 = axis.t0 + 3'600'000'000;
  }
  if (!report.rules.empty()) h += "<h2>Rules over time</h2>\n";
  for (const auto& s : report.rules) {
    h += "<figure><figcaption>" + esc(s.rule) + ": " + esc(s.scope) + ", " + esc(s.basis) + ", required " +
         esc(required_text(s.points.back())) + "</figcaption>\n" + rule_chart(s, axis) + "</figure>\n";
  }

  h += "<h2>Measured domestic shares</h2>\n";
  if (report.measurements.empty()) {
    h += "<p>No measurements in the window (records written before measurements were recorded carry none).</p>\n";
  }
  // One chart per scope and source: shares from policy evaluations, then from usage samples.
  for (std::size_t i = 0; i < report.measurements.size();) {
    const auto& first = report.measurements[i];
    const std::string scope = first.scope, source = first.source;
    std::vector<Line> lines;
    for (; i < report.measurements.size() && report.measurements[i].scope == scope &&
           report.measurements[i].source == source;
         ++i) {
      const auto& m = report.measurements[i];
      Line line{m.basis, basis_color(m.basis), "", true, {}};
      for (const auto& p : m.points) {
        line.samples.push_back({p.micros, p.share, false,
                                m.basis + ", seq " + std::to_string(p.seq) + ", " + show_time(p.time) + ": " +
                                    pct(p.share) + " (" + amount(p.numerator) + " of " + amount(p.denominator) + ")"});
      }
      lines.push_back(std::move(line));
    }
    if (source == kFromUsageSamples) {
      const std::string per = human_duration(static_cast<double>(first.interval_seconds));
      h += "<figure><figcaption>" + esc(scope) + ": served through the gateway (usage samples, per " + per +
           ")</figcaption>\n" +
           svg_chart("Domestic share of usage in " + scope + " per " + per, axis, lines, {}) + "</figure>\n";
      continue;
    }
    h += "<figure><figcaption>" + esc(scope) + "</figcaption>\n" +
         svg_chart("Measured domestic share in " + scope + " per basis", axis, lines, {}) + "</figure>\n";
  }
  return h + "</body>\n</html>\n";
}

}  // namespace mixserve::policy

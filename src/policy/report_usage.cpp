// Usage samples as measured series: the centre's domestic share of device_hours and served_tokens per
// interval of the report window (docs/policy.md, "Reports").
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <map>
#include <optional>
#include <utility>

#include "common/error.h"
#include "policy/report.h"

namespace mixserve::policy {
namespace {

// Domestic and total amounts of one usage interval.
struct Interval {
  double domestic[2] = {0, 0};  // device_hours, served_tokens
  double total[2] = {0, 0};
  int64_t last_seq = 0;
  bool counted = false;  // some sample overlaps it
};

}  // namespace

std::vector<MeasureSeries> usage_series(const std::vector<UsageSample>& samples, int64_t lo, int64_t hi,
                                        int64_t width_s, const ReportOptions& options) {
  MIXSERVE_CHECK(width_s > 0 && hi > lo, "usage_series needs a positive width and a non-empty window");
  const int64_t width = width_s * 1'000'000;
  const int64_t origin = (lo >= 0 ? lo : lo - width + 1) / width * width;
  const int64_t count = (hi - origin + width - 1) / width;
  if (count > kMaxUsageIntervals) {
    fail(ErrorCode::kInvalidArgument, "a usage interval of ", width_s, " s makes ", count,
         " intervals over the window (", kMaxUsageIntervals, " at most): choose a wider one");
  }
  const auto builtin = options.catalogue ? fleet::Catalogue() : fleet::Catalogue::builtin();
  const auto& catalogue = options.catalogue ? *options.catalogue : builtin;
  std::map<std::string, std::pair<bool, bool>> chips;  // id -> (counts, domestic)
  std::vector<Interval> intervals(static_cast<std::size_t>(count));
  for (const auto& s : samples) {
    auto [it, fresh] = chips.emplace(s.chip, std::make_pair(true, false));
    if (fresh) {
      const auto spec = catalogue.find(s.chip);
      it->second = {!spec || spec->accelerator, catalogue.is_domestic(s.chip, options.home_country)};
    }
    const auto [counts, domestic] = it->second;
    const int64_t start = std::max(s.from_micros, lo), end = std::min(s.to_micros, hi);
    for (int64_t b = (start - origin) / width; b < count; ++b) {
      const int64_t b_lo = std::max(origin + b * width, lo), b_hi = std::min(origin + (b + 1) * width, hi);
      if (b_lo > start && b_lo >= end) break;  // past the sample; an instant stays in its one interval
      const double fraction = usage_overlap(s, b_lo, b_hi);
      if (fraction <= 0) continue;
      auto& iv = intervals[static_cast<std::size_t>(b)];
      iv.counted = true;
      iv.last_seq = std::max(iv.last_seq, s.seq);
      if (!counts) continue;  // CPUs never count
      const double amounts[2] = {s.device_hours * fraction, s.served_tokens * fraction};
      for (int k = 0; k < 2; ++k) {
        iv.total[k] += amounts[k];
        if (domestic) iv.domestic[k] += amounts[k];
      }
    }
  }
  const char* bases[2] = {"device_hours", "served_tokens"};
  std::vector<MeasureSeries> out;
  for (int k = 0; k < 2; ++k) {
    MeasureSeries series{"center", bases[k], kFromUsageSamples, width_s, {}};
    bool open = false;  // the last point carries data
    for (int64_t b = 0; b < count; ++b) {
      const auto& iv = intervals[static_cast<std::size_t>(b)];
      if (!iv.counted && !open) continue;
      const int64_t at = std::max(origin + b * width, lo);
      MeasurePoint p{iv.last_seq, ledger_time_from_micros(at), at, std::nullopt, iv.domestic[k], iv.total[k]};
      if (iv.counted && iv.total[k] > 0) p.share = iv.domestic[k] / iv.total[k];
      series.points.push_back(std::move(p));
      open = iv.counted;
    }
    out.push_back(std::move(series));
  }
  return out;
}

std::string ledger_time_from_micros(int64_t micros) {
  using namespace std::chrono;
  const sys_time<microseconds> t{microseconds{micros}};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{t - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%06dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()), static_cast<int>(hms.subseconds().count()));
  return buf;
}

int64_t auto_usage_interval(double span_seconds) {
  constexpr int64_t kMin = 60, kHour = 3600, kDay = 86400;
  constexpr int64_t kSteps[] = {kMin,      5 * kMin,   15 * kMin, 30 * kMin, kHour,    2 * kHour, 3 * kHour,
                                6 * kHour, 12 * kHour, kDay,      2 * kDay,  7 * kDay, 14 * kDay, 30 * kDay};
  for (const int64_t step : kSteps) {
    if (span_seconds / static_cast<double>(step) <= 240) return step;
  }
  return kSteps[std::size(kSteps) - 1];
}

}  // namespace mixserve::policy

// Prometheus text exposition format 0.0.4, as specified at
// https://prometheus.io/docs/instrumenting/exposition_formats/ and
// https://prometheus.io/docs/concepts/data_model/ (name and label rules).
#include "serve/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace mixserve::serve {

namespace {

// Whole-number amounts below this go to the integer atomic of a Counter (exact, cheaper).
constexpr double kWholeLimit = 9007199254740992.0;  // 2^53: every smaller integer is a double
// Integral doubles below this print as integers; above it the shortest round-trip form is shorter.
constexpr double kIntegerPrintLimit = 1e15;

bool is_alpha_or_underscore(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_metric_name(std::string_view name) {
  if (name.empty() || is_digit(name[0])) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return is_alpha_or_underscore(c) || is_digit(c) || c == ':'; });
}

// [a-zA-Z_][a-zA-Z0-9_]*
bool valid_label_name(std::string_view name) {
  if (name.empty() || is_digit(name[0])) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return is_alpha_or_underscore(c) || is_digit(c); });
}

std::string_view type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

// HELP text escapes backslash and newline.
void append_help(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// Label values escape backslash, double quote and newline.
void append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, res.ptr);
}

// Integral values without exponent, others in the shortest form that reads back to the same double.
void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else if (v == std::trunc(v) && std::fabs(v) < kIntegerPrintLimit) {
    char buf[24];
    auto res = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(v));
    out.append(buf, res.ptr);
  } else {
    char buf[32];
    auto res = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, res.ptr);
  }
}

// `name suffix{labels} ` (no braces without labels), up to the value.
void append_series_name(std::string& out, std::string_view name, std::string_view suffix, std::string_view labels) {
  out += name;
  out += suffix;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
}

void append_labels(std::string& out, const MetricLabels& labels) {
  for (const auto& [name, value] : labels) {
    if (!out.empty()) out += ',';
    out += name;
    out += "=\"";
    append_label_value(out, value);
    out += '"';
  }
}

void check_label_name(std::string_view metric, std::string_view name) {
  if (!valid_label_name(name)) {
    fail(ErrorCode::kInvalidArgument, "metric ", metric, ": label name '", name,
         "' must match [a-zA-Z_][a-zA-Z0-9_]*");
  }
  if (name.starts_with("__")) {
    fail(ErrorCode::kInvalidArgument, "metric ", metric, ": label name '", name, "' is reserved (starts with __)");
  }
}

void check_bounds(const std::vector<double>& bounds) {
  if (bounds.empty()) {
    fail(ErrorCode::kInvalidArgument, "histogram bounds must not be empty (see latency_buckets())");
  }
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      fail(ErrorCode::kInvalidArgument, "histogram bound ", i, " is not finite (+Inf is implicit)");
    }
    if (i > 0 && !(bounds[i] > bounds[i - 1])) {
      fail(ErrorCode::kInvalidArgument, "histogram bounds must be strictly increasing: bound ", i, " (",
           bounds[i], ") follows ", bounds[i - 1]);
    }
  }
}

// Label names of one series: valid, not reserved, not repeated, not shadowing a constant label.
void check_labels(std::string_view metric, MetricType type, const MetricLabels& labels, const MetricLabels& constant) {
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string& name = labels[i].first;
    check_label_name(metric, name);
    if (type == MetricType::kHistogram && name == "le") {
      fail(ErrorCode::kInvalidArgument, "histogram ", metric, ": label 'le' is reserved for buckets");
    }
    for (size_t j = 0; j < i; ++j) {
      if (labels[j].first == name) fail(ErrorCode::kInvalidArgument, "metric ", metric, ": label '", name, "' given twice");
    }
    for (const auto& c : constant) {
      if (c.first == name) fail(ErrorCode::kInvalidArgument, "metric ", metric, ": label '", name, "' is a constant label");
    }
  }
}

}  // namespace

void Counter::inc(double amount) {
  if (!(amount >= 0.0)) reject_increment(amount);
  if (amount < kWholeLimit && amount == std::trunc(amount)) {
    whole_.fetch_add(static_cast<uint64_t>(amount), std::memory_order_relaxed);
  } else {
    real_.fetch_add(amount, std::memory_order_relaxed);
  }
}

double Counter::value() const {
  return static_cast<double>(whole_.load(std::memory_order_relaxed)) + real_.load(std::memory_order_relaxed);
}

void Counter::reject_increment(double amount) {
  fail(ErrorCode::kInvalidArgument, "counter increment must be a non-negative number, got ", amount);
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  check_bounds(bounds_);
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double x) {
  // First bound with x <= bound; NaN compares false everywhere and lands in +Inf.
  auto it = std::partition_point(bounds_.begin(), bounds_.end(), [x](double b) { return !(x <= b); });
  buckets_[static_cast<size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(x, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::bucket_counts() const {
  std::vector<uint64_t> counts(bounds_.size() + 1);
  for (size_t i = 0; i < counts.size(); ++i) counts[i] = buckets_[i].load(std::memory_order_relaxed);
  return counts;
}

uint64_t Histogram::count() const {
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) total += buckets_[i].load(std::memory_order_relaxed);
  return total;
}

std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0};
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  if (!(start > 0.0) || !std::isfinite(start)) {
    fail(ErrorCode::kInvalidArgument, "exponential_buckets: start must be a finite number > 0, got ", start);
  }
  if (!(factor > 1.0) || !std::isfinite(factor)) {
    fail(ErrorCode::kInvalidArgument, "exponential_buckets: factor must be a finite number > 1, got ", factor);
  }
  if (count < 1 || count > 1000) {
    fail(ErrorCode::kInvalidArgument, "exponential_buckets: count must be in [1, 1000], got ", count);
  }
  std::vector<double> bounds;
  bounds.reserve(static_cast<size_t>(count));
  double b = start;
  for (int i = 0; i < count; ++i, b *= factor) bounds.push_back(b);
  check_bounds(bounds);  // catches overflow to +Inf
  return bounds;
}

struct MetricsRegistry::Series {
  std::string labels;  // constant then series labels, rendered `a="x",b="y"` (no braces)
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
  std::function<double()> fn;  // callback series: read at render time
};

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<double> bounds;    // histograms
  std::vector<std::string> les;  // histograms: rendered bounds, then "+Inf"
  std::string header;            // "# HELP ...\n# TYPE ...\n"
  std::vector<std::unique_ptr<Series>> series;            // registration order
  std::unordered_map<std::string, Series*> by_labels;     // key: sorted series labels, rendered
};

MetricsRegistry::MetricsRegistry(MetricLabels constant_labels) : constant_labels_(std::move(constant_labels)) {
  for (size_t i = 0; i < constant_labels_.size(); ++i) {
    const std::string& name = constant_labels_[i].first;
    check_label_name("(constant labels)", name);
    if (name == "le") fail(ErrorCode::kInvalidArgument, "constant label 'le' is reserved for histogram buckets");
    for (size_t j = 0; j < i; ++j) {
      if (constant_labels_[j].first == name) fail(ErrorCode::kInvalidArgument, "constant label '", name, "' given twice");
    }
  }
}

MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::family(std::string_view name, std::string_view help, MetricType type,
                                                 const MetricLabels& labels, const std::vector<double>* bounds) {
  if (!valid_metric_name(name)) {
    fail(ErrorCode::kInvalidArgument, "metric name '", name, "' must match [a-zA-Z_:][a-zA-Z0-9_:]*");
  }
  check_labels(name, type, labels, constant_labels_);
  std::string key(name);
  if (auto it = family_by_name_.find(key); it != family_by_name_.end()) {
    Family& f = *it->second;
    if (f.type != type) {
      fail(ErrorCode::kInvalidArgument, "metric ", name, " is already registered as a ", type_name(f.type),
           ", not a ", type_name(type));
    }
    if (f.help != help) fail(ErrorCode::kInvalidArgument, "metric ", name, " is already registered with other help text");
    if (bounds != nullptr && f.bounds != *bounds) {
      fail(ErrorCode::kInvalidArgument, "histogram ", name, " is already registered with other bucket bounds");
    }
    return f;
  }
  // A histogram `h` also writes h_bucket, h_sum and h_count: those names must stay free.
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (name.ends_with(suffix)) {
      auto base = family_by_name_.find(std::string(name.substr(0, name.size() - suffix.size())));
      if (base != family_by_name_.end() && base->second->type == MetricType::kHistogram) {
        fail(ErrorCode::kInvalidArgument, "metric ", name, " collides with the series of histogram ", base->first);
      }
    }
    if (type == MetricType::kHistogram && family_by_name_.contains(key + std::string(suffix))) {
      fail(ErrorCode::kInvalidArgument, "histogram ", name, " collides with metric ", name, suffix);
    }
  }
  auto f = std::make_unique<Family>();
  f->name = key;
  f->help = help;
  f->type = type;
  if (bounds != nullptr) {
    check_bounds(*bounds);
    f->bounds = *bounds;
    for (double b : f->bounds) {
      std::string le;
      append_number(le, b);
      f->les.push_back(std::move(le));
    }
    f->les.emplace_back("+Inf");
  }
  f->header = "# HELP " + key + " ";
  append_help(f->header, help);
  f->header += "\n# TYPE " + key + " ";
  f->header += type_name(type);
  f->header += '\n';
  Family& ref = *f;
  families_.push_back(std::move(f));
  family_by_name_.emplace(std::move(key), &ref);
  return ref;
}

MetricsRegistry::Series& MetricsRegistry::series(Family& family, const MetricLabels& labels, bool* created) {
  MetricLabels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  std::string key;
  append_labels(key, sorted);
  if (auto it = family.by_labels.find(key); it != family.by_labels.end()) {
    *created = false;
    return *it->second;
  }
  auto s = std::make_unique<Series>();
  append_labels(s->labels, constant_labels_);
  append_labels(s->labels, sorted);
  Series& ref = *s;
  family.series.push_back(std::move(s));
  family.by_labels.emplace(std::move(key), &ref);
  *created = true;
  return ref;
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help, const MetricLabels& labels) {
  std::lock_guard lock(mutex_);
  bool created = false;
  Series& s = series(family(name, help, MetricType::kCounter, labels, nullptr), labels, &created);
  if (created) s.counter = std::make_unique<Counter>();
  if (!s.counter) fail(ErrorCode::kInvalidArgument, "counter ", name, "{", s.labels, "} is a callback series");
  return *s.counter;
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, const MetricLabels& labels) {
  std::lock_guard lock(mutex_);
  bool created = false;
  Series& s = series(family(name, help, MetricType::kGauge, labels, nullptr), labels, &created);
  if (created) s.gauge = std::make_unique<Gauge>();
  if (!s.gauge) fail(ErrorCode::kInvalidArgument, "gauge ", name, "{", s.labels, "} is a callback series");
  return *s.gauge;
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help, std::vector<double> upper_bounds,
                                      const MetricLabels& labels) {
  std::lock_guard lock(mutex_);
  bool created = false;
  Family& f = family(name, help, MetricType::kHistogram, labels, &upper_bounds);
  Series& s = series(f, labels, &created);
  if (created) s.histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  return *s.histogram;
}

void MetricsRegistry::gauge_fn(std::string_view name, std::string_view help, const MetricLabels& labels,
                               std::function<double()> fn) {
  if (!fn) fail(ErrorCode::kInvalidArgument, "gauge ", name, ": the callback is empty");
  std::lock_guard lock(mutex_);
  bool created = false;
  Series& s = series(family(name, help, MetricType::kGauge, labels, nullptr), labels, &created);
  if (!created) fail(ErrorCode::kInvalidArgument, "gauge ", name, "{", s.labels, "} is already registered");
  s.fn = std::move(fn);
}

void MetricsRegistry::counter_fn(std::string_view name, std::string_view help, const MetricLabels& labels,
                                 std::function<double()> fn) {
  if (!fn) fail(ErrorCode::kInvalidArgument, "counter ", name, ": the callback is empty");
  std::lock_guard lock(mutex_);
  bool created = false;
  Series& s = series(family(name, help, MetricType::kCounter, labels, nullptr), labels, &created);
  if (!created) fail(ErrorCode::kInvalidArgument, "counter ", name, "{", s.labels, "} is already registered");
  s.fn = std::move(fn);
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& f : families_) {
    out += f->header;
    for (const auto& s : f->series) {
      if (f->type == MetricType::kHistogram) {
        std::vector<uint64_t> counts = s->histogram->bucket_counts();
        uint64_t cumulative = 0;
        for (size_t i = 0; i < counts.size(); ++i) {
          cumulative += counts[i];
          out += f->name;
          out += "_bucket{";
          out += s->labels;
          if (!s->labels.empty()) out += ',';
          out += "le=\"";
          out += f->les[i];
          out += "\"} ";
          append_uint(out, cumulative);
          out += '\n';
        }
        // _count is the +Inf bucket of the same snapshot, so the two always agree.
        append_series_name(out, f->name, "_sum", s->labels);
        append_number(out, s->histogram->sum());
        out += '\n';
        append_series_name(out, f->name, "_count", s->labels);
        append_uint(out, cumulative);
        out += '\n';
        continue;
      }
      append_series_name(out, f->name, "", s->labels);
      if (s->fn) {
        append_number(out, s->fn());
      } else if (s->counter) {
        const double real = s->counter->real_.load(std::memory_order_relaxed);
        const uint64_t whole = s->counter->whole_.load(std::memory_order_relaxed);
        if (real == 0.0) {
          append_uint(out, whole);
        } else {
          append_number(out, static_cast<double>(whole) + real);
        }
      } else {
        append_number(out, s->gauge->value());
      }
      out += '\n';
    }
  }
  return out;
}

}  // namespace mixserve::serve

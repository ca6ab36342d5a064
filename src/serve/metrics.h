// A small thread-safe Prometheus metrics registry rendered in the text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/). Registration takes a mutex and
// returns a reference that stays valid for the registry's lifetime; updating a metric through that
// reference is lock-free (relaxed atomics) and never allocates, so the server registers its series
// once and keeps the references.
#pragma once

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mixserve::serve {

/// Label name/value pairs of one series; order does not matter (series identity sorts by name).
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

/// A monotonically increasing count. Whole-number increments use an integer atomic (exact to
/// 2^64); fractional increments (seconds, joules) accumulate in a separate double.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  /// Adds 1.
  void inc() { whole_.fetch_add(1, std::memory_order_relaxed); }
  /// Adds a whole number `n`; throws Error(kInvalidArgument) when `n` is negative.
  template <std::integral T>
  void inc(T n) {
    if constexpr (std::is_signed_v<T>) {
      if (n < 0) reject_increment(static_cast<double>(n));
    }
    whole_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  }
  /// Adds `amount`; throws Error(kInvalidArgument) when it is negative or NaN.
  void inc(double amount);
  /// Current value (whole part plus fractional part).
  double value() const;

 private:
  friend class MetricsRegistry;
  [[noreturn]] static void reject_increment(double amount);
  std::atomic<uint64_t> whole_{0};
  std::atomic<double> real_{0.0};
};

/// A value that goes up and down (queue depth, memory in use).
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  /// Replaces the value.
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  /// Adds `amount` (may be negative).
  void inc(double amount = 1.0) { value_.fetch_add(amount, std::memory_order_relaxed); }
  /// Subtracts `amount`.
  void dec(double amount = 1.0) { value_.fetch_sub(amount, std::memory_order_relaxed); }
  /// Current value.
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

/// Observations counted into fixed buckets (upper bounds inclusive, as Prometheus's `le`).
class Histogram {
 public:
  /// `upper_bounds` must be non-empty, finite and strictly increasing (kInvalidArgument otherwise).
  explicit Histogram(std::vector<double> upper_bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  /// Records one observation. NaN lands in the +Inf bucket only and makes the sum NaN, as in the
  /// Prometheus Go client.
  void observe(double x);
  /// The upper bounds given at construction (without +Inf).
  const std::vector<double>& upper_bounds() const { return bounds_; }
  /// Per-bucket (not cumulative) counts; the last entry is the +Inf bucket.
  std::vector<uint64_t> bucket_counts() const;
  /// Number of observations (the sum of all buckets).
  uint64_t count() const;
  /// Sum of observations.
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 entries
  std::atomic<double> sum_{0.0};
};

/// Default histogram bounds for LLM serving latencies: 1 ms to 60 s, roughly 1-2.5-5 per decade.
std::vector<double> latency_buckets();

/// `count` bounds start, start*factor, ...; needs start > 0, factor > 1, 1 <= count <= 1000.
std::vector<double> exponential_buckets(double start, double factor, int count);

/// Prometheus metric type of a family.
enum class MetricType { kCounter, kGauge, kHistogram };

/// Metric families in registration order; each family has one type and one help text.
class MetricsRegistry {
 public:
  /// Prometheus text format content type, for the HTTP Content-Type header.
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

  /// `constant_labels` (e.g. model, chip, device) are added to every series; names are validated.
  explicit MetricsRegistry(MetricLabels constant_labels = {});
  /// Same, from a braced list (`MetricsRegistry r({{"model", "m"}})` would be ambiguous without it).
  explicit MetricsRegistry(std::initializer_list<std::pair<std::string, std::string>> constant_labels)
      : MetricsRegistry(MetricLabels(constant_labels)) {}
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  /// The counter `name{labels}`, created on first use; the same reference for the same name and
  /// labels. Throws kInvalidArgument on a bad name or label, or when `name` has another type/help.
  Counter& counter(std::string_view name, std::string_view help, const MetricLabels& labels = {});
  /// The gauge `name{labels}`; rules as counter().
  Gauge& gauge(std::string_view name, std::string_view help, const MetricLabels& labels = {});
  /// The histogram `name{labels}`; every series of one name must use the same `upper_bounds`.
  Histogram& histogram(std::string_view name, std::string_view help, std::vector<double> upper_bounds,
                       const MetricLabels& labels = {});
  /// A gauge series whose value `fn` returns at render time. `fn` runs under the registry's lock
  /// and must not call into the registry; its exceptions propagate out of render(). Throws
  /// kInvalidArgument when the series already exists or `fn` is empty.
  void gauge_fn(std::string_view name, std::string_view help, const MetricLabels& labels,
                std::function<double()> fn);
  /// A counter series whose value `fn` returns at render time; rules as gauge_fn().
  void counter_fn(std::string_view name, std::string_view help, const MetricLabels& labels,
                  std::function<double()> fn);

  /// All families in the text exposition format 0.0.4 ("" when nothing is registered).
  std::string render() const;

 private:
  struct Family;
  struct Series;
  Family& family(std::string_view name, std::string_view help, MetricType type, const MetricLabels& labels,
                 const std::vector<double>* bounds);
  Series& series(Family& family, const MetricLabels& labels, bool* created);

  MetricLabels constant_labels_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;                 // registration order
  std::unordered_map<std::string, Family*> family_by_name_;
};

}  // namespace mixserve::serve

// Metrics registry: the rendered text is parsed back by a small parser written here from the
// exposition format spec (https://prometheus.io/docs/instrumenting/exposition_formats/), and values
// are compared with what the test itself fed in.
#include "serve/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"

namespace mixserve::serve {
namespace {

using LabelMap = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  LabelMap labels;
  double value = 0;
  std::string value_text;
};

struct Exposition {
  std::map<std::string, std::string> help;  // unescaped
  std::map<std::string, std::string> type;
  std::vector<std::string> family_order;
  std::vector<Sample> samples;
};

// Parses the text format strictly enough to catch malformed output; ADD_FAILURE on any problem.
double parse_value(const std::string& text) {
  if (text == "+Inf") return std::numeric_limits<double>::infinity();
  if (text == "-Inf") return -std::numeric_limits<double>::infinity();
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(text.empty());
  for (char c : text) {
    EXPECT_TRUE(std::strchr("0123456789.eE+-", c) != nullptr) << "bad number '" << text << "'";
  }
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  EXPECT_EQ(end, text.c_str() + text.size()) << "bad number '" << text << "'";
  return v;
}

bool is_name_char(char c, bool first, bool colon) {
  bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
  return first ? alpha : alpha || (c >= '0' && c <= '9');
}

Exposition parse(const std::string& text) {
  Exposition e;
  EXPECT_TRUE(text.empty() || text.back() == '\n') << "text must end in a newline";
  std::string current;  // family of the last TYPE line
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("# HELP ")) {
      std::string rest = line.substr(7);
      size_t sp = rest.find(' ');
      EXPECT_NE(sp, std::string::npos) << line;
      std::string name = rest.substr(0, sp), raw = rest.substr(sp + 1), help;
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '\\') {
          EXPECT_LT(i + 1, raw.size()) << line;
          char n = raw[++i];
          EXPECT_TRUE(n == '\\' || n == 'n') << line;
          help += n == 'n' ? '\n' : '\\';
        } else {
          help += raw[i];
        }
      }
      EXPECT_FALSE(e.help.contains(name)) << "HELP twice for " << name;
      e.help[name] = help;
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      std::string rest = line.substr(7);
      size_t sp = rest.find(' ');
      EXPECT_NE(sp, std::string::npos) << line;
      current = rest.substr(0, sp);
      EXPECT_FALSE(e.type.contains(current)) << "TYPE twice for " << current;
      EXPECT_TRUE(e.help.contains(current)) << "HELP should come before TYPE for " << current;
      e.type[current] = rest.substr(sp + 1);
      e.family_order.push_back(current);
      continue;
    }
    EXPECT_FALSE(line.starts_with("#")) << line;
    Sample s;
    size_t i = 0;
    while (i < line.size() && is_name_char(line[i], i == 0, true)) s.name += line[i++];
    EXPECT_FALSE(s.name.empty()) << line;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::string lname, lvalue;
        while (i < line.size() && is_name_char(line[i], lname.empty(), false)) lname += line[i++];
        EXPECT_FALSE(lname.empty()) << line;
        EXPECT_TRUE(i + 1 < line.size() && line[i] == '=' && line[i + 1] == '"') << line;
        i += 2;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            char n = line[++i];
            EXPECT_TRUE(n == '\\' || n == '"' || n == 'n') << line;
            lvalue += n == 'n' ? '\n' : n;
          } else {
            lvalue += line[i];
          }
          ++i;
        }
        EXPECT_LT(i, line.size()) << "unterminated label value: " << line;
        ++i;  // closing quote
        EXPECT_FALSE(s.labels.contains(lname)) << "label twice: " << line;
        s.labels[lname] = lvalue;
        if (i < line.size() && line[i] == ',') ++i;
      }
      EXPECT_LT(i, line.size()) << line;
      ++i;  // '}'
    }
    EXPECT_TRUE(i < line.size() && line[i] == ' ') << line;
    s.value_text = line.substr(i + 1);
    EXPECT_EQ(s.value_text.find(' '), std::string::npos) << "no timestamps expected: " << line;
    s.value = parse_value(s.value_text);
    // Every sample belongs to the family of the last TYPE line.
    bool belongs = s.name == current;
    if (e.type[current] == "histogram") {
      belongs = s.name == current + "_bucket" || s.name == current + "_sum" || s.name == current + "_count";
    }
    EXPECT_TRUE(belongs) << s.name << " outside its family " << current;
    e.samples.push_back(s);
  }
  return e;
}

// The one sample with this name and labels; ADD_FAILURE when absent or repeated.
const Sample* find(const Exposition& e, const std::string& name, const LabelMap& labels) {
  const Sample* found = nullptr;
  for (const Sample& s : e.samples) {
    if (s.name == name && s.labels == labels) {
      EXPECT_EQ(found, nullptr) << "duplicate sample " << name;
      found = &s;
    }
  }
  if (found == nullptr) ADD_FAILURE() << "no sample " << name;
  return found;
}

double value_of(const Exposition& e, const std::string& name, const LabelMap& labels = {}) {
  const Sample* s = find(e, name, labels);
  return s != nullptr ? s->value : std::nan("");
}

template <typename Fn>
void expect_invalid(Fn fn) {
  try {
    fn();
    ADD_FAILURE() << "expected Error(kInvalidArgument)";
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), ErrorCode::kInvalidArgument) << err.what();
  }
}

TEST(Metrics, EmptyRegistryRendersNothing) {
  MetricsRegistry r;
  EXPECT_EQ(r.render(), "");
  EXPECT_STREQ(MetricsRegistry::kContentType, "text/plain; version=0.0.4; charset=utf-8");
}

TEST(Metrics, CounterValuesAndRejectedIncrements) {
  MetricsRegistry r;
  Counter& c = r.counter("requests_total", "Requests.");
  c.inc();
  c.inc(5);
  c.inc(uint64_t{3});
  c.inc(2.5);
  c.inc(4.0);
  EXPECT_DOUBLE_EQ(c.value(), 15.5);
  expect_invalid([&] { c.inc(-1); });
  expect_invalid([&] { c.inc(-0.5); });
  expect_invalid([&] { c.inc(std::nan("")); });
  EXPECT_DOUBLE_EQ(c.value(), 15.5);
  Exposition e = parse(r.render());
  EXPECT_EQ(e.type["requests_total"], "counter");
  EXPECT_EQ(e.help["requests_total"], "Requests.");
  EXPECT_EQ(value_of(e, "requests_total"), 15.5);
}

TEST(Metrics, LargeWholeCounterIsExact) {
  MetricsRegistry r;
  Counter& c = r.counter("tokens_total", "Tokens.");
  const uint64_t big = (uint64_t{1} << 60) + 1;  // not representable as a double
  c.inc(big);
  c.inc();
  Exposition e = parse(r.render());
  const Sample* s = find(e, "tokens_total", {});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value_text, std::to_string(big + 1));
}

TEST(Metrics, GaugeSetIncDecAndSpecialValues) {
  MetricsRegistry r;
  Gauge& g = r.gauge("queue_depth", "Waiting requests.");
  g.set(10);
  g.inc();
  g.inc(2.5);
  g.dec(20);
  EXPECT_DOUBLE_EQ(g.value(), -6.5);
  Gauge& inf = r.gauge("special", "Special values.", {{"kind", "pinf"}});
  Gauge& ninf = r.gauge("special", "Special values.", {{"kind", "ninf"}});
  Gauge& nan = r.gauge("special", "Special values.", {{"kind", "nan"}});
  inf.set(std::numeric_limits<double>::infinity());
  ninf.set(-std::numeric_limits<double>::infinity());
  nan.set(std::nan(""));
  Exposition e = parse(r.render());
  EXPECT_EQ(e.type["queue_depth"], "gauge");
  EXPECT_EQ(value_of(e, "queue_depth"), -6.5);
  EXPECT_EQ(find(e, "special", {{"kind", "pinf"}})->value_text, "+Inf");
  EXPECT_EQ(find(e, "special", {{"kind", "ninf"}})->value_text, "-Inf");
  EXPECT_EQ(find(e, "special", {{"kind", "nan"}})->value_text, "NaN");
}

TEST(Metrics, NumbersRoundTripAndIntegersHaveNoExponent) {
  MetricsRegistry r;
  std::mt19937_64 rng(1234);
  std::vector<double> values = {0.1, 1.0 / 3.0, -2.5e-300, 1e300, 5e-324, 123456789.0, -42.0, 0.0,
                                1e14, 999999999999999.0, std::numeric_limits<double>::max()};
  std::uniform_int_distribution<uint64_t> bits;
  while (values.size() < 200) {
    uint64_t b = bits(rng);
    double d;
    std::memcpy(&d, &b, sizeof(d));
    if (std::isfinite(d)) values.push_back(d);
  }
  for (size_t i = 0; i < values.size(); ++i) r.gauge("v", "Values.", {{"i", std::to_string(i)}}).set(values[i]);
  Exposition e = parse(r.render());
  for (size_t i = 0; i < values.size(); ++i) {
    const Sample* s = find(e, "v", {{"i", std::to_string(i)}});
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(std::memcmp(&s->value, &values[i], sizeof(double)) == 0 || (values[i] == 0 && s->value == 0), true)
        << "value " << i << " printed as " << s->value_text;
    if (values[i] == std::trunc(values[i]) && std::fabs(values[i]) < 1e15) {
      EXPECT_EQ(s->value_text.find_first_of(".eE"), std::string::npos) << s->value_text;
    }
  }
}

TEST(Metrics, ConstantLabelsOnEverySeries) {
  MetricsRegistry r({{"model", "tinyllama"}, {"chip", "nvidia-h100"}, {"device", "cpu"}});
  const LabelMap base = {{"model", "tinyllama"}, {"chip", "nvidia-h100"}, {"device", "cpu"}};
  r.counter("a_total", "A.").inc(3);
  r.gauge("b", "B.", {{"pool", "x"}}).set(7);
  r.histogram("c_seconds", "C.", {1.0}).observe(0.5);
  r.gauge_fn("d", "D.", {}, [] { return 9.0; });
  Exposition e = parse(r.render());
  EXPECT_EQ(value_of(e, "a_total", base), 3);
  LabelMap with_pool = base;
  with_pool["pool"] = "x";
  EXPECT_EQ(value_of(e, "b", with_pool), 7);
  LabelMap le = base;
  le["le"] = "1";
  EXPECT_EQ(value_of(e, "c_seconds_bucket", le), 1);
  le["le"] = "+Inf";
  EXPECT_EQ(value_of(e, "c_seconds_bucket", le), 1);
  EXPECT_EQ(value_of(e, "c_seconds_sum", base), 0.5);
  EXPECT_EQ(value_of(e, "c_seconds_count", base), 1);
  EXPECT_EQ(value_of(e, "d", base), 9);
  for (const Sample& s : e.samples) EXPECT_EQ(s.labels.at("model"), "tinyllama") << s.name;
}

TEST(Metrics, DuplicateRegistrationReturnsSameSeries) {
  MetricsRegistry r;
  Counter& a = r.counter("req_total", "Requests.", {{"code", "200"}, {"endpoint", "chat"}});
  Counter& b = r.counter("req_total", "Requests.", {{"endpoint", "chat"}, {"code", "200"}});
  Counter& c = r.counter("req_total", "Requests.", {{"code", "500"}, {"endpoint", "chat"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  Histogram& h1 = r.histogram("lat_seconds", "Latency.", latency_buckets());
  Histogram& h2 = r.histogram("lat_seconds", "Latency.", latency_buckets());
  EXPECT_EQ(&h1, &h2);
  EXPECT_EQ(&r.gauge("g", "G."), &r.gauge("g", "G."));
  a.inc(2);
  b.inc();
  c.inc();
  Exposition e = parse(r.render());
  EXPECT_EQ(value_of(e, "req_total", {{"code", "200"}, {"endpoint", "chat"}}), 3);
  EXPECT_EQ(value_of(e, "req_total", {{"code", "500"}, {"endpoint", "chat"}}), 1);
}

TEST(Metrics, FamiliesAndSeriesInRegistrationOrder) {
  MetricsRegistry r;
  r.gauge("zeta", "Z.", {{"k", "2"}});
  r.counter("alpha_total", "A.");
  r.gauge("zeta", "Z.", {{"k", "1"}});
  r.histogram("mid", "M.", {1, 2});
  Exposition e = parse(r.render());
  EXPECT_EQ(e.family_order, (std::vector<std::string>{"zeta", "alpha_total", "mid"}));
  ASSERT_GE(e.samples.size(), 2u);
  EXPECT_EQ(e.samples[0].labels.at("k"), "2");
  EXPECT_EQ(e.samples[1].labels.at("k"), "1");
}

TEST(Metrics, TypeHelpAndBoundConflictsRejected) {
  MetricsRegistry r;
  r.counter("x_total", "X.");
  expect_invalid([&] { r.gauge("x_total", "X."); });
  expect_invalid([&] { r.histogram("x_total", "X.", {1}); });
  expect_invalid([&] { r.gauge_fn("x_total", "X.", {}, [] { return 1.0; }); });
  expect_invalid([&] { r.counter("x_total", "Other help."); });
  r.histogram("h", "H.", {1, 2});
  expect_invalid([&] { r.histogram("h", "H.", {1, 3}); });
  expect_invalid([&] { r.counter("h_count", "Collides."); });
  expect_invalid([&] { r.gauge("h_bucket", "Collides."); });
  expect_invalid([&] { r.gauge("h_sum", "Collides."); });
  r.gauge("k_sum", "K sum.");
  expect_invalid([&] { r.histogram("k", "K.", {1}); });
  // A callback series cannot be fetched as a plain one, nor registered twice.
  r.gauge_fn("cb", "CB.", {{"a", "1"}}, [] { return 1.0; });
  expect_invalid([&] { r.gauge("cb", "CB.", {{"a", "1"}}); });
  expect_invalid([&] { r.gauge_fn("cb", "CB.", {{"a", "1"}}, [] { return 2.0; }); });
  expect_invalid([&] { r.gauge_fn("cb2", "CB.", {}, std::function<double()>()); });
  // Failed registrations leave no trace in the output.
  Exposition e = parse(r.render());
  EXPECT_EQ(e.family_order, (std::vector<std::string>{"x_total", "h", "k_sum", "cb"}));
}

TEST(Metrics, InvalidNamesRejected) {
  MetricsRegistry r;
  for (const char* bad : {"", "1abc", "a-b", "a b", "caf\xc3\xa9", "a.b", "a{b}"}) {
    expect_invalid([&] { r.counter(bad, "Bad."); });
  }
  for (const char* good : {"a:b_c", "_x", ":x", "X9"}) EXPECT_NO_THROW(r.gauge(good, "Good.")) << good;
  for (const char* bad : {"", "1a", "a:b", "a-b", "__reserved", "sp ace"}) {
    expect_invalid([&] { r.counter("ok_total", "Ok.", {{bad, "v"}}); });
  }
  expect_invalid([&] { r.counter("ok_total", "Ok.", {{"a", "1"}, {"a", "2"}}); });
  expect_invalid([&] { r.histogram("hist", "H.", {1}, {{"le", "1"}}); });
  EXPECT_NO_THROW(r.gauge("gauge_le", "Le is fine outside histograms.", {{"le", "1"}}));
  expect_invalid([] { MetricsRegistry bad({{"bad-name", "x"}}); });
  expect_invalid([] { MetricsRegistry bad({{"model", "x"}, {"model", "y"}}); });
  expect_invalid([] { MetricsRegistry bad({{"le", "x"}}); });
  MetricsRegistry with_model({{"model", "m"}});
  expect_invalid([&] { with_model.counter("c_total", "C.", {{"model", "other"}}); });
  Exposition e = parse(r.render());
  EXPECT_FALSE(e.type.contains("ok_total"));
  EXPECT_FALSE(e.type.contains("hist"));
}

TEST(Metrics, EscapingOfHelpAndLabelValues) {
  MetricsRegistry r({{"path", "C:\\models\\\"tiny\"\nv2"}});
  const std::string help = "Line one\nback\\slash \"quotes\" stay";
  const std::string value = "a\\b\"c\nd}e,f=g";
  r.counter("esc_total", help, {{"v", value}}).inc();
  const std::string text = r.render();
  // Escaped by hand from the spec's rules.
  EXPECT_NE(text.find("# HELP esc_total Line one\\nback\\\\slash \"quotes\" stay\n"), std::string::npos) << text;
  EXPECT_NE(text.find("v=\"a\\\\b\\\"c\\nd}e,f=g\""), std::string::npos) << text;
  Exposition e = parse(text);
  EXPECT_EQ(e.help["esc_total"], help);
  EXPECT_EQ(value_of(e, "esc_total", {{"path", "C:\\models\\\"tiny\"\nv2"}, {"v", value}}), 1);
  // One line per HELP, TYPE and sample: no raw newline escaped the quoting.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  MetricsRegistry r;
  const std::vector<double> bounds = {0.5, 1, 2.5};
  Histogram& h = r.histogram("lat_seconds", "Latency.", bounds, {{"ep", "chat"}});
  const std::vector<double> xs = {0.25, 0.5, 0.75, 1.0, 1.0, 2.0, 2.5, 3.0, 100.0, -1.0};
  for (double x : xs) h.observe(x);
  Exposition e = parse(r.render());
  EXPECT_EQ(e.type["lat_seconds"], "histogram");
  double sum = 0;
  for (double x : xs) sum += x;
  double previous = 0;
  for (double b : bounds) {
    double expected = static_cast<double>(std::count_if(xs.begin(), xs.end(), [b](double x) { return x <= b; }));
    std::ostringstream le;
    le << b;
    double got = value_of(e, "lat_seconds_bucket", {{"ep", "chat"}, {"le", le.str()}});
    EXPECT_EQ(got, expected) << "le=" << b;
    EXPECT_GE(got, previous);
    previous = got;
  }
  double inf = value_of(e, "lat_seconds_bucket", {{"ep", "chat"}, {"le", "+Inf"}});
  EXPECT_EQ(inf, static_cast<double>(xs.size()));
  EXPECT_EQ(value_of(e, "lat_seconds_count", {{"ep", "chat"}}), inf);
  EXPECT_EQ(value_of(e, "lat_seconds_sum", {{"ep", "chat"}}), sum);
  EXPECT_EQ(h.count(), xs.size());
  // 4 bucket lines + sum + count, nothing else.
  EXPECT_EQ(e.samples.size(), bounds.size() + 3);
}

TEST(Metrics, HistogramRandomObservationsMatchBruteForce) {
  MetricsRegistry r;
  const std::vector<double> bounds = latency_buckets();
  Histogram& h = r.histogram("ttft_seconds", "Time to first token.", bounds);
  std::mt19937 rng(42);
  std::lognormal_distribution<double> dist(-2.0, 2.5);
  std::vector<double> xs(5000);
  for (double& x : xs) {
    x = dist(rng);
    h.observe(x);
  }
  h.observe(bounds[3]);  // exactly on a bound: counted in that bucket (le is inclusive)
  xs.push_back(bounds[3]);
  Exposition e = parse(r.render());
  size_t bucket_lines = 0;
  for (const Sample& s : e.samples) {
    if (s.name != "ttft_seconds_bucket") continue;
    ++bucket_lines;
    double b = parse_value(s.labels.at("le"));
    double expected = static_cast<double>(std::count_if(xs.begin(), xs.end(), [b](double x) { return x <= b; }));
    EXPECT_EQ(s.value, expected) << "le=" << s.labels.at("le");
  }
  EXPECT_EQ(bucket_lines, bounds.size() + 1);
  EXPECT_EQ(value_of(e, "ttft_seconds_count"), static_cast<double>(xs.size()));
  double sum = 0;
  for (double x : xs) sum += x;
  EXPECT_NEAR(value_of(e, "ttft_seconds_sum"), sum, 1e-9 * sum);
}

TEST(Metrics, HistogramNanGoesToInfBucket) {
  Histogram h({1, 2});
  h.observe(std::nan(""));
  h.observe(1.5);
  EXPECT_EQ(h.bucket_counts(), (std::vector<uint64_t>{0, 1, 1}));
  EXPECT_TRUE(std::isnan(h.sum()));
}

TEST(Metrics, HistogramBoundsValidated) {
  const double inf = std::numeric_limits<double>::infinity();
  for (const std::vector<double>& bad : std::vector<std::vector<double>>{
           {}, {1, 1}, {2, 1}, {1, std::nan("")}, {1, inf}, {-inf, 0}, {0, 1, 0.5}}) {
    expect_invalid([&] { Histogram h(bad); });
    MetricsRegistry r;
    expect_invalid([&] { r.histogram("h", "H.", bad); });
    EXPECT_EQ(r.render(), "");
  }
  EXPECT_NO_THROW(Histogram({-1, 0, 1e-9}));
}

TEST(Metrics, DefaultAndExponentialBuckets) {
  std::vector<double> b = latency_buckets();
  ASSERT_GE(b.size(), 10u);
  EXPECT_EQ(b.front(), 0.001);
  EXPECT_EQ(b.back(), 60.0);
  for (size_t i = 1; i < b.size(); ++i) {
    EXPECT_GT(b[i], b[i - 1]);
    EXPECT_LE(b[i] / b[i - 1], 2.6) << "roughly exponential";
  }
  EXPECT_NO_THROW(Histogram{b});
  std::vector<double> x = exponential_buckets(1, 2, 5);
  EXPECT_EQ(x, (std::vector<double>{1, 2, 4, 8, 16}));
  expect_invalid([] { exponential_buckets(0, 2, 3); });
  expect_invalid([] { exponential_buckets(1, 1, 3); });
  expect_invalid([] { exponential_buckets(1, 2, 0); });
  expect_invalid([] { exponential_buckets(1, 2, 100000); });
  expect_invalid([] { exponential_buckets(1e300, 1e10, 10); });  // overflows to +Inf
  expect_invalid([] { exponential_buckets(std::nan(""), 2, 3); });
}

TEST(Metrics, CallbackSeriesReadAtRenderTime) {
  MetricsRegistry r({{"model", "m"}});
  auto depth = std::make_shared<std::atomic<int>>(3);
  int calls = 0;
  r.gauge_fn("queue_depth", "Waiting.", {}, [depth, &calls] {
    ++calls;
    return static_cast<double>(depth->load());
  });
  r.counter_fn("preemptions_total", "Preempted sequences.", {{"reason", "kv"}}, [] { return 12.0; });
  EXPECT_EQ(calls, 0);
  Exposition e1 = parse(r.render());
  EXPECT_EQ(value_of(e1, "queue_depth", {{"model", "m"}}), 3);
  EXPECT_EQ(value_of(e1, "preemptions_total", {{"model", "m"}, {"reason", "kv"}}), 12);
  EXPECT_EQ(e1.type["preemptions_total"], "counter");
  depth->store(17);
  Exposition e2 = parse(r.render());
  EXPECT_EQ(value_of(e2, "queue_depth", {{"model", "m"}}), 17);
  EXPECT_EQ(calls, 2);
}

TEST(Metrics, ThrowingCallbackPropagatesAndRegistryStaysUsable) {
  MetricsRegistry r;
  bool broken = true;
  r.gauge_fn("engine_up", "Engine reachable.", {}, [&broken]() -> double {
    if (broken) fail(ErrorCode::kUnavailable, "engine stats unavailable");
    return 1.0;
  });
  EXPECT_THROW(r.render(), Error);
  r.counter("after_total", "Registered after a failed render.").inc();  // mutex released
  broken = false;
  Exposition e = parse(r.render());
  EXPECT_EQ(value_of(e, "engine_up"), 1);
  EXPECT_EQ(value_of(e, "after_total"), 1);
}

TEST(Metrics, ConcurrentUpdatesGiveExactTotals) {
  MetricsRegistry r({{"model", "m"}});
  Counter& c = r.counter("ops_total", "Ops.");
  Counter& cf = r.counter("seconds_total", "Seconds.");
  Gauge& g = r.gauge("inflight", "In flight.");
  Histogram& h = r.histogram("lat_seconds", "Latency.", {0.25, 0.5, 1});
  constexpr int kThreads = 4;
  constexpr int kIters = 50000;
  std::atomic<bool> stop{false};
  // A renderer and a registrar run alongside the writers to exercise the mutex.
  std::thread renderer([&] {
    while (!stop.load()) {
      Exposition e = parse(r.render());
      EXPECT_EQ(value_of(e, "lat_seconds_bucket", {{"model", "m"}, {"le", "+Inf"}}),
                value_of(e, "lat_seconds_count", {{"model", "m"}}));
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        c.inc();
        cf.inc(0.25);
        g.inc();
        h.observe((i % 4 == 0) ? 0.125 : 0.75);  // dyadic: the sum is exact
        g.dec();
        if (i % 5000 == 0) r.counter("per_thread_total", "Per thread.", {{"t", std::to_string(t)}}).inc();
      }
    });
  }
  for (auto& w : writers) w.join();
  stop = true;
  renderer.join();
  const double n = static_cast<double>(kThreads) * kIters;
  Exposition e = parse(r.render());
  const LabelMap m = {{"model", "m"}};
  EXPECT_EQ(value_of(e, "ops_total", m), n);
  EXPECT_EQ(value_of(e, "seconds_total", m), n * 0.25);
  EXPECT_EQ(value_of(e, "inflight", m), 0);
  EXPECT_EQ(value_of(e, "lat_seconds_count", m), n);
  EXPECT_EQ(value_of(e, "lat_seconds_bucket", {{"model", "m"}, {"le", "0.25"}}), n / 4);
  EXPECT_EQ(value_of(e, "lat_seconds_bucket", {{"model", "m"}, {"le", "0.5"}}), n / 4);
  EXPECT_EQ(value_of(e, "lat_seconds_bucket", {{"model", "m"}, {"le", "1"}}), n);
  EXPECT_EQ(value_of(e, "lat_seconds_sum", m), n / 4 * 0.125 + n * 3 / 4 * 0.75);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(value_of(e, "per_thread_total", {{"model", "m"}, {"t", std::to_string(t)}}), kIters / 5000);
  }
}

}  // namespace
}  // namespace mixserve::serve

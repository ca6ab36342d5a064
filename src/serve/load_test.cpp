#include "serve/load_test.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "serve/http_client.h"

namespace mixserve::serve {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// A prompt of `words` words that differs from every other request's from the first word on.
std::string prompt_for(int client, int round, int words) {
  static const char* kWords[] = {"river", "stone", "cloud", "lamp", "garden", "engine", "paper", "signal",
                                 "window", "market", "forest", "copper", "letter", "bridge", "silver", "harbor"};
  std::string text = "request " + std::to_string(client) + "." + std::to_string(round) + ":";
  uint64_t state = static_cast<uint64_t>(client) * 7919u + static_cast<uint64_t>(round) * 104729u + 1;
  for (int i = 0; i < words; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    text += " ";
    text += kWords[(state >> 33) % 16];
  }
  return text;
}

struct ClientStats {
  std::vector<double> ttft;
  std::vector<double> itl;
  std::vector<std::pair<double, double>> decoding;  // per request: first and last text chunk, seconds from the start
  int64_t decode_tokens = 0;
  int requests = 0;
  int failed = 0;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  std::string first_error;
};

void run_client(const LoadTestOptions& o, int client, Clock::time_point start, ClientStats& stats) {
  HttpClient http(o.host, o.port, o.timeout_s);
  HttpHeaders headers;
  if (!o.api_key.empty()) headers.emplace_back("Authorization", "Bearer " + o.api_key);
  for (int round = 0; round < o.requests_per_client; ++round) {
    const json body = {{"model", o.model},         {"prompt", prompt_for(client, round, o.prompt_words)},
                       {"max_tokens", o.max_tokens}, {"temperature", 0},
                       {"ignore_eos", true},       {"stream", true},
                       {"stream_options", {{"include_usage", true}}}};
    const auto sent = Clock::now();
    std::optional<Clock::time_point> first, last;
    bool done = false;
    json usage;
    SseParser sse;
    std::string error;
    try {
      const auto r = http.request_streamed("POST", "/v1/completions", body.dump(), headers, [&](std::string_view data) {
        sse.feed(data, [&](const std::string& event) {
          if (event == "[DONE]") {
            done = true;
            return;
          }
          const json chunk = json::parse(event, nullptr, false);
          if (chunk.is_discarded()) return;
          if (chunk.contains("usage") && chunk["usage"].is_object()) usage = chunk["usage"];
          if (chunk.contains("error")) error = chunk["error"].value("message", "error event");
          const auto& choices = chunk.value("choices", json::array());
          if (choices.empty() || choices[0].value("text", "").empty()) return;
          const auto now = Clock::now();
          if (!last) {
            stats.ttft.push_back(seconds_between(sent, now));
            first = now;
          } else {
            stats.itl.push_back(seconds_between(*last, now));
          }
          last = now;
        });
        return true;
      });
      if (r.status != 200) error = str_cat("HTTP ", r.status);
    } catch (const Error& e) {
      error = e.what();
    }
    ++stats.requests;
    if (!done || !error.empty() || !usage.is_object()) {
      ++stats.failed;
      if (stats.first_error.empty()) stats.first_error = error.empty() ? "stream ended without [DONE]" : error;
      continue;
    }
    stats.prompt_tokens += usage.value("prompt_tokens", 0);
    stats.output_tokens += usage.value("completion_tokens", 0);
    if (first && *last > *first) {
      stats.decoding.emplace_back(seconds_between(start, *first), seconds_between(start, *last));
      stats.decode_tokens += std::max<int64_t>(0, usage.value("completion_tokens", int64_t{0}) - 1);
    }
  }
}

}  // namespace

double union_length(std::vector<std::pair<double, double>> intervals) {
  std::sort(intervals.begin(), intervals.end());
  double total = 0;
  double open = 0, close = 0;
  bool any = false;
  for (const auto& [begin, end] : intervals) {
    if (end < begin) continue;
    if (any && begin <= close) {
      close = std::max(close, end);
      continue;
    }
    if (any) total += close - open;
    open = begin;
    close = end;
    any = true;
  }
  return any ? total + close - open : 0;
}

double quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo));
}

LoadTestResult run_load_test(const LoadTestOptions& o) {
  if (o.concurrency < 1 || o.requests_per_client < 1 || o.max_tokens < 1 || o.prompt_words < 0) {
    fail(ErrorCode::kInvalidArgument, "load test: concurrency, requests and max_tokens must be positive");
  }
  {
    HttpClient probe(o.host, o.port, 10);
    probe.request("GET", "/health");  // throws kUnavailable when nobody listens
  }
  std::vector<ClientStats> stats(static_cast<size_t>(o.concurrency));
  std::vector<std::thread> clients;
  const auto start = Clock::now();
  for (int c = 0; c < o.concurrency; ++c) {
    clients.emplace_back([&o, &stats, c, start] { run_client(o, c, start, stats[static_cast<size_t>(c)]); });
  }
  for (auto& t : clients) t.join();
  LoadTestResult r;
  r.wall_seconds = seconds_between(start, Clock::now());
  std::vector<double> ttft, itl;
  std::vector<std::pair<double, double>> decoding;
  for (const ClientStats& s : stats) {
    r.decode_tokens += s.decode_tokens;
    decoding.insert(decoding.end(), s.decoding.begin(), s.decoding.end());
    r.requests += s.requests;
    r.failed += s.failed;
    r.prompt_tokens += s.prompt_tokens;
    r.output_tokens += s.output_tokens;
    ttft.insert(ttft.end(), s.ttft.begin(), s.ttft.end());
    itl.insert(itl.end(), s.itl.begin(), s.itl.end());
    if (r.first_error.empty()) r.first_error = s.first_error;
  }
  r.output_tokens_per_s = r.wall_seconds > 0 ? static_cast<double>(r.output_tokens) / r.wall_seconds : 0;
  r.decode_seconds = union_length(std::move(decoding));
  r.decode_tokens_per_s = r.decode_seconds > 0 ? static_cast<double>(r.decode_tokens) / r.decode_seconds : 0;
  r.ttft_p50 = quantile(ttft, 0.5);
  r.ttft_p99 = quantile(ttft, 0.99);
  r.itl_p50 = quantile(itl, 0.5);
  r.itl_p99 = quantile(itl, 0.99);
  return r;
}

}  // namespace mixserve::serve

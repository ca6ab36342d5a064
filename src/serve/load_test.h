// A load generator for an OpenAI-compatible server: N concurrent clients each stream completions
// of a fixed shape (prompt length, generated tokens, EOS ignored) and time them from the client's
// side — aggregate output tokens/s, time to first token and inter-token latency percentiles.
// `mixserve bench --serve` runs it against an in-process server on loopback.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mixserve::serve {

/// The shape of a load test.
struct LoadTestOptions {
  std::string host = "127.0.0.1";  ///< server address
  uint16_t port = 8080;            ///< server port
  std::string model;               ///< model id to request
  std::string api_key;             ///< Bearer key ("" = none)
  int concurrency = 1;             ///< clients streaming at once
  int requests_per_client = 2;     ///< requests each client sends one after another
  int prompt_words = 64;           ///< prompt length in words (distinct per request, so no prefix-cache hits)
  int max_tokens = 64;             ///< tokens generated per request (ignore_eos keeps the length fixed)
  double timeout_s = 600;          ///< per-request network deadline
};

/// Client-side measurements of one load test.
struct LoadTestResult {
  int requests = 0;               ///< completed requests
  int failed = 0;                 ///< requests that did not end with [DONE] and status 200
  int64_t prompt_tokens = 0;      ///< sum of usage.prompt_tokens
  int64_t output_tokens = 0;      ///< sum of usage.completion_tokens
  double wall_seconds = 0;        ///< first request sent -> last stream ended
  double output_tokens_per_s = 0;  ///< output_tokens / wall_seconds (prefill included)
  int64_t decode_tokens = 0;       ///< tokens generated after each request's first text chunk
  double decode_seconds = 0;       ///< time during which at least one stream was decoding: the union over
                                   ///< requests of [first text chunk, last text chunk]
  double decode_tokens_per_s = 0;  ///< decode_tokens / decode_seconds: aggregate decode throughput, without
                                   ///< the times when every stream waits for its prompt (for one stream, its
                                   ///< plain decode speed)
  double ttft_p50 = 0;            ///< seconds from sending to the first text chunk, median
  double ttft_p99 = 0;            ///< 99th percentile
  double itl_p50 = 0;             ///< seconds between successive text chunks, median
  double itl_p99 = 0;             ///< 99th percentile
  std::string first_error;        ///< the first failure's description ("" when none)
};

/// Runs the load test; throws kUnavailable when the server cannot be reached at all.
LoadTestResult run_load_test(const LoadTestOptions& options);

/// Length of the union of the intervals [begin, end] (end < begin counts as empty).
double union_length(std::vector<std::pair<double, double>> intervals);

/// The q-quantile (0..1) of `values` by linear interpolation between order statistics (0 if empty).
double quantile(std::vector<double> values, double q);

}  // namespace mixserve::serve

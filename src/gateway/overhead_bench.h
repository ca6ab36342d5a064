// Gateway overhead benchmark: the same open-loop load (requests at a fixed rate, each sent on time
// whatever the previous ones do) goes to a node directly and through the gateway, interleaved in one
// run, so both see the same machine state; the added latency is the difference of their quantiles.
// A closed-loop phase then finds the requests/s the gateway sustains. `mixserve bench --gateway`.
#pragma once

#include <cstdint>
#include <string>

namespace mixserve::gateway {

/// One open-loop run.
struct OverheadOptions {
  uint16_t direct_port = 0;   ///< the node
  uint16_t gateway_port = 0;  ///< the gateway in front of it
  std::string body;           ///< request body (POST /v1/completions)
  double rate = 500;          ///< requests per second in all (half direct, half via the gateway)
  double seconds = 5;         ///< how long
  int senders = 32;           ///< sending threads (each keeps its own keep-alive connections)
};

/// Latencies of one path (seconds).
struct PathLatency {
  int64_t requests = 0;  ///< completed with 200
  int64_t failed = 0;    ///< other outcomes
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
};

/// Result of one open-loop run.
struct OverheadResult {
  double offered_rate = 0;    ///< requests/s asked for
  double achieved_rate = 0;   ///< requests/s completed (both paths)
  double late_fraction = 0;   ///< requests sent more than 1 ms after their time (the client fell behind)
  PathLatency direct;
  PathLatency via_gateway;
};

/// Runs one open-loop run.
OverheadResult run_overhead(const OverheadOptions& options);

/// Closed loop: `clients` clients send requests back to back through `port` for `seconds`;
/// returns completed requests per second (failures excluded) and counts failures in `failed`.
double run_closed_loop(uint16_t port, const std::string& body, int clients, double seconds, int64_t* failed);

}  // namespace mixserve::gateway

// A burst of requests through a gateway, tallied by where they went: per upstream (from the
// x-mixserve-upstream, -chip and -origin headers) requests and tokens served, and the domestic share
// of served tokens. `mixserve burst`, used by the fleet demo.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace mixserve::gateway {

/// What to send.
struct BurstOptions {
  std::string host = "127.0.0.1";  ///< gateway address
  uint16_t port = 9000;            ///< gateway port
  std::string model;               ///< model id
  std::string api_key;             ///< tenant key ("" = none)
  int requests = 64;               ///< requests in all
  int concurrency = 8;             ///< at once
  int max_tokens = 16;             ///< per request
  bool stream = false;             ///< half the requests streamed when true
};

/// Where one upstream's share went.
struct BurstTally {
  std::string chip;     ///< catalogue id
  bool domestic = false;
  int64_t requests = 0; ///< completed requests
  double tokens = 0;    ///< prompt + completion tokens
};

/// The outcome of a burst.
struct BurstResult {
  std::map<std::string, BurstTally> upstreams;  ///< by upstream name
  std::map<int, int64_t> statuses;              ///< HTTP status -> count (0 = no response)
  double seconds = 0;                           ///< wall time
  double domestic_tokens = 0;
  double foreign_tokens = 0;
  std::string first_error;                      ///< first non-200 body, if any
};

/// Sends the burst.
BurstResult run_burst(const BurstOptions& options);

}  // namespace mixserve::gateway

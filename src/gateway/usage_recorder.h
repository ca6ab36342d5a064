// Feeds the compliance ledger from the gateway: every interval, one usage_sample record per upstream
// that served anything (tokens and busy device-hours, its chip and whether it is domestic), plus
// events (nodes joining or leaving, drains, audit violations of the quota). Appends run on a thread
// of their own, so a slow disk never delays a request. Payload schema: docs/gateway.md, "Ledger".
#pragma once

#include <condition_variable>
#include <map>
#include <optional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway/upstream.h"
#include "policy/ledger.h"

namespace mixserve::gateway {

/// Usage and event recorder.
class UsageRecorder {
 public:
  /// Opens (creating) the ledger at `path` and starts recording every `interval_s` seconds.
  /// Throws like policy::Ledger::open.
  UsageRecorder(const std::string& path, double interval_s);
  /// Writes what is pending and stops.
  ~UsageRecorder();
  UsageRecorder(const UsageRecorder&) = delete;
  UsageRecorder& operator=(const UsageRecorder&) = delete;

  /// Adds tokens served by `upstream`.
  void add_tokens(const UpstreamSnapshot& upstream, double tokens);
  /// Adds busy device-seconds of `upstream`.
  void add_device_seconds(const UpstreamSnapshot& upstream, double device_seconds);
  /// Queues one record of `kind` (payload gets "source": "gateway").
  void record(policy::RecordKind kind, nlohmann::json payload);
  /// Appends everything pending now (blocks until written).
  void flush();

 private:
  struct Tally {
    std::string node;  // fleet node (the machine), the key of usage rules
    std::string chip;
    bool domestic = false;
    double tokens = 0;
    double device_seconds = 0;
    int64_t requests = 0;
  };
  void loop();
  Tally& tally_of(const UpstreamSnapshot& upstream);  // mutex_ held

  const std::string path_;
  const double interval_s_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable written_;
  std::map<std::string, Tally> tallies_;
  std::vector<std::pair<policy::RecordKind, nlohmann::json>> events_;
  std::string period_start_;
  bool stop_ = false;
  bool flush_asked_ = false;
  uint64_t flushes_done_ = 0;
  std::thread thread_;
};

}  // namespace mixserve::gateway

// One upstream of the gateway (a mixserve node or another OpenAI-compatible engine) and the set of
// them: what it serves, on which chip, whether it is healthy (circuit breaker fed by active checks and
// by the outcome of real requests), how loaded it is and how fast it has been. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway/cluster_config.h"

namespace mixserve::gateway {

using Clock = std::chrono::steady_clock;

/// Circuit breaker state.
enum class Circuit { kClosed, kOpen, kHalfOpen };

/// "closed", "open", "half-open".
std::string_view circuit_name(Circuit circuit);

/// A consistent copy of an upstream's state, for routing and reports.
struct UpstreamSnapshot {
  std::string name;                  ///< upstream name
  std::string url;                   ///< http://host:port
  std::string chip;                  ///< catalogue id
  bool domestic = false;             ///< chip designed in the home country
  std::string country;               ///< chip's country ("" when not in the catalogue)
  int64_t devices = 1;               ///< accelerators
  bool joined = false;               ///< joined at run time (else declared in the config)
  std::string node;                  ///< machine it runs on ("" = its own name)
  std::string admin_url;             ///< the machine's admin API ("" = none)
  std::vector<std::string> models;   ///< models served
  Circuit circuit = Circuit::kClosed;
  bool healthy = false;              ///< last check passed (or not checked yet and no failure)
  bool draining = false;             ///< takes no new requests
  std::string last_error;            ///< last failure, "" when none
  int64_t in_flight = 0;             ///< requests the gateway has open on it
  int64_t max_in_flight = 64;        ///< cap on in_flight
  double capacity = 0;               ///< sequences it runs at once (from /v1/node), 0 = unknown
  double node_queue = 0;             ///< requests waiting on the node (from /v1/node)
  double kv_use = 0;                 ///< KV-cache blocks used / total (from /v1/node), 0..1
  std::optional<double> speed;       ///< moving average of decode tokens/s of one request
  int64_t requests_ok = 0;           ///< completed requests
  int64_t requests_failed = 0;       ///< failed attempts
  double served_tokens = 0;          ///< prompt + completion tokens served
  nlohmann::json to_json() const;    ///< for /v1/fleet
};

/// One upstream.
class Upstream {
 public:
  /// An upstream from its configuration; `domestic`/`country` come from the catalogue.
  Upstream(UpstreamConfig config, bool domestic, std::string country, bool joined);

  /// Its configuration (immutable).
  const UpstreamConfig& config() const { return config_; }
  /// Name.
  const std::string& name() const { return config_.name; }
  /// Whether its chip is domestic.
  bool domestic() const { return domestic_; }

  /// Whether it serves `model`.
  bool serves(const std::string& model) const;
  /// Whether a new request may be sent now: healthy or half-open trial, not draining, under its cap.
  /// Moves an open circuit whose time is up to half-open.
  bool available(Clock::time_point now);
  /// Counts a request as started; false (and nothing counted) when it is at its cap.
  bool acquire();
  /// Counts a request as ended.
  void release();
  /// Seconds this upstream had at least one request open since the previous call (exact: measured at
  /// acquire and release), for device-hours.
  double take_busy_seconds(Clock::time_point now);

  /// A request or a check succeeded: closes the circuit.
  void record_success();
  /// A request (or, with `is_request` false, a health check) failed (`why`); opens the circuit after
  /// `threshold` consecutive failures, or at once in half-open state, for `open_s` (doubling while
  /// trials keep failing, at most 60 s).
  void record_failure(const std::string& why, int threshold, double open_s, Clock::time_point now,
                      bool is_request = true);
  /// Adds a finished request: tokens served and, when measurable, its decode speed (tokens/s).
  void record_served(double tokens, std::optional<double> decode_tokens_per_s, double alpha);
  /// Replaces what the node reports of itself (/v1/node or /v1/models).
  void update_from_node(std::vector<std::string> models, double capacity, double node_queue, double kv_use);
  /// Marks it healthy after a passing check.
  void set_healthy(bool healthy);
  /// Stops (or resumes) new requests.
  void set_draining(bool draining);
  /// Notes a heartbeat of a joined node.
  void heartbeat(Clock::time_point now);
  /// Last heartbeat (joined nodes).
  Clock::time_point last_heartbeat() const;

  /// A copy of the state.
  UpstreamSnapshot snapshot() const;

 private:
  const UpstreamConfig config_;
  const bool domestic_;
  const std::string country_;
  const bool joined_;
  mutable std::mutex mutex_;
  std::vector<std::string> models_;
  Circuit circuit_ = Circuit::kClosed;
  bool healthy_ = true;
  bool draining_ = false;
  bool trial_out_ = false;  // half-open: the one trial request is out
  int consecutive_failures_ = 0;
  double open_for_s_ = 0;
  Clock::time_point open_until_{};
  std::string last_error_;
  int64_t in_flight_ = 0;
  Clock::time_point busy_since_{};  // when in_flight_ last went from 0 to 1 (or the last take)
  double busy_seconds_ = 0;         // closed busy time not yet taken
  double capacity_ = 0;
  double node_queue_ = 0;
  double kv_use_ = 0;
  std::optional<double> speed_;
  int64_t requests_ok_ = 0;
  int64_t requests_failed_ = 0;
  double served_tokens_ = 0;
  Clock::time_point last_heartbeat_{};
};

/// All upstreams, static and joined.
class UpstreamSet {
 public:
  /// Adds an upstream; throws kInvalidArgument when the name is taken.
  void add(std::shared_ptr<Upstream> upstream);
  /// Adds or replaces a joined upstream of that name; returns it and whether it is new.
  std::pair<std::shared_ptr<Upstream>, bool> join(std::shared_ptr<Upstream> upstream);
  /// Removes the upstream `name` (requests in flight keep their reference).
  bool remove(const std::string& name);
  /// The upstream `name`, or nullptr.
  std::shared_ptr<Upstream> find(const std::string& name) const;
  /// All upstreams in the order added.
  std::vector<std::shared_ptr<Upstream>> all() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Upstream>> upstreams_;
};

}  // namespace mixserve::gateway

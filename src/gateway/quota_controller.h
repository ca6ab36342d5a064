// The quota controller: keeps the domestic share of served tokens (or of busy device-time) at or above
// each usage rule's threshold over a sliding window. Before a request is routed it says whether a
// foreign upstream may take it: only when the share, counting work in flight at its estimated size and
// this request as foreign, would still meet every enforced rule. Domestic upstreams are always
// allowed, so the fleet runs the most foreign work the rule permits (the least loss of throughput).
// Audit rules never forbid; a request served against them is counted as an audit violation.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/policy.h"

namespace mixserve::gateway {

/// A usage rule the controller keeps (basis served_tokens or device_hours, centre scope).
struct QuotaRule {
  std::string name;                             ///< rule name from policy.yaml
  double threshold = 0.5;                       ///< min_domestic_share
  bool strict = false;                          ///< share must be strictly above
  policy::Basis basis = policy::Basis::kServedTokens;
  policy::Mode mode = policy::Mode::kEnforce;
};

/// The quota rules of a policy: usage-basis rules of centre scope. Other rules are returned in
/// `ignored` with the reason (capacity bases do not depend on routing; pool/project scopes are not
/// known to the gateway).
std::vector<QuotaRule> quota_rules(const policy::Policy& policy, std::vector<std::string>* ignored);

/// What the controller says of one request.
struct QuotaDecision {
  bool foreign_allowed = true;     ///< a foreign upstream may take the request
  bool audit_violation = false;    ///< foreign would break an audit rule (still allowed)
  std::string reason;              ///< plain-language explanation
};

/// Per-rule state for reports.
struct QuotaRuleState {
  QuotaRule rule;
  double domestic = 0;            ///< window amount served on domestic chips (tokens or device-seconds)
  double foreign = 0;             ///< same, foreign
  std::optional<double> share;    ///< domestic / (domestic + foreign); nullopt when nothing counted
  bool compliant = true;          ///< share meets the threshold (true when nothing counted)
};

/// Thread-safe controller.
class QuotaController {
 public:
  using Clock = std::chrono::steady_clock;

  /// A controller for `rules` over a window of `window_s` seconds, keeping `margin` above thresholds.
  QuotaController(std::vector<QuotaRule> rules, double window_s, double margin);

  /// Whether any rule is kept.
  bool active() const { return !rules_.empty(); }
  /// Whether an enforced rule would still hold if a foreign upstream served `est_tokens` more.
  QuotaDecision decide(double est_tokens, Clock::time_point now);
  /// Counts `est_tokens` in flight on a domestic or foreign upstream; returns a ticket for settle().
  uint64_t reserve(bool domestic, double est_tokens);
  /// Replaces the reservation by the tokens actually served (0 when the request failed).
  void settle(uint64_t ticket, double served_tokens, Clock::time_point now);
  /// Adds busy device-seconds (device_hours rules), sampled by the gateway.
  void add_device_seconds(bool domestic, double device_seconds, Clock::time_point now);
  /// Shares in the window now, per rule.
  std::vector<QuotaRuleState> state(Clock::time_point now);
  /// state() as JSON.
  nlohmann::json to_json(Clock::time_point now);

 private:
  struct Bucket {
    int64_t index = 0;  // time / bucket width
    double tokens[2] = {0, 0};      // [foreign, domestic]
    double device_s[2] = {0, 0};
  };
  Bucket& bucket_at(Clock::time_point now);
  void expire(Clock::time_point now);
  // Window amounts of `basis` (settled work only): [foreign, domestic].
  void totals(policy::Basis basis, double out[2]) const;

  const std::vector<QuotaRule> rules_;
  const double window_s_;
  const double bucket_s_;
  const double margin_;
  const Clock::time_point epoch_ = Clock::now();
  std::mutex mutex_;
  std::deque<Bucket> buckets_;
  struct Reservation {
    bool domestic;
    double tokens;
  };
  std::vector<std::pair<uint64_t, Reservation>> reservations_;
  double reserved_[2] = {0, 0};
  uint64_t next_ticket_ = 1;
};

}  // namespace mixserve::gateway

#include "gateway/quota_controller.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace mixserve::gateway {

std::vector<QuotaRule> quota_rules(const policy::Policy& policy, std::vector<std::string>* ignored) {
  std::vector<QuotaRule> out;
  for (const auto& r : policy.rules) {
    const bool usage = r.basis == policy::Basis::kServedTokens || r.basis == policy::Basis::kDeviceHours;
    if (!usage || r.scope.kind != policy::Scope::Kind::kCenter) {
      if (ignored) {
        ignored->push_back("rule '" + r.name + "' (" + std::string(policy::basis_name(r.basis)) + ", " +
                           r.scope.to_string() + "): " +
                           (usage ? "the gateway keeps centre-scope rules only"
                                  : "a capacity basis does not depend on routing; check it with `mixserve policy check`"));
      }
      continue;
    }
    out.push_back(QuotaRule{r.name, r.min_domestic_share, r.strict, r.basis, r.mode});
  }
  return out;
}

QuotaController::QuotaController(std::vector<QuotaRule> rules, double window_s, double margin)
    : rules_(std::move(rules)), window_s_(window_s), bucket_s_(window_s / 30.0), margin_(margin) {}

QuotaController::Bucket& QuotaController::bucket_at(Clock::time_point now) {
  const double t = std::chrono::duration<double>(now - epoch_).count();
  const auto index = static_cast<int64_t>(std::floor(t / bucket_s_));
  if (buckets_.empty() || buckets_.back().index < index) buckets_.push_back(Bucket{index, {0, 0}, {0, 0}});
  return buckets_.back();
}

void QuotaController::expire(Clock::time_point now) {
  const double t = std::chrono::duration<double>(now - epoch_).count();
  // A bucket counts while any of it lies within the window (the window is 30 buckets wide).
  const auto oldest = static_cast<int64_t>(std::floor((t - window_s_) / bucket_s_)) + 1;
  while (!buckets_.empty() && buckets_.front().index < oldest) buckets_.pop_front();
}

void QuotaController::totals(policy::Basis basis, double out[2]) const {
  out[0] = out[1] = 0;
  const bool tokens = basis == policy::Basis::kServedTokens;
  for (const auto& b : buckets_) {
    for (int i = 0; i < 2; ++i) out[i] += tokens ? b.tokens[i] : b.device_s[i];
  }
}

QuotaDecision QuotaController::decide(double est_tokens, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  expire(now);
  QuotaDecision d;
  std::ostringstream why;
  for (const auto& r : rules_) {
    const bool tokens = r.basis == policy::Basis::kServedTokens;
    const double extra = tokens ? est_tokens : 0;
    const double target = std::min(1.0, r.threshold + margin_);
    const double res_d = tokens ? reserved_[1] : 0;
    const double res_f = tokens ? reserved_[0] : 0;
    // The window a moment from now holds a suffix of today's buckets plus what is in flight; so the
    // rule must hold over every suffix (newest bucket, newest two, ..., all), not only the whole
    // window, or old domestic-heavy buckets expiring would let the share sink below the threshold.
    bool holds = true;
    double worst_share = 1.0;
    double dom = 0, all = 0;
    const size_t n = buckets_.size();
    for (size_t k = 0; k <= n; ++k) {
      if (k > 0) {
        const Bucket& b = buckets_[n - k];
        dom += tokens ? b.tokens[1] : b.device_s[1];
        all += tokens ? b.tokens[0] + b.tokens[1] : b.device_s[0] + b.device_s[1];
      }
      if (k == 0 && n > 0) continue;  // in-flight work alone is judged only when the window is empty
      const double d_k = dom + res_d;
      const double total = all + res_d + res_f + extra;
      const bool ok = r.strict ? d_k > target * total : d_k >= target * total;
      if (total > 0) worst_share = std::min(worst_share, d_k / total);
      if (!ok) holds = false;
    }
    if (holds) continue;
    if (r.mode == policy::Mode::kEnforce) {
      d.foreign_allowed = false;
    } else {
      d.audit_violation = true;
    }
    if (!why.str().empty()) why << "; ";
    why << "rule '" << r.name << "' (" << policy::basis_name(r.basis) << " >= " << r.threshold
        << "): domestic share would fall to " << worst_share << " if a foreign upstream served this request";
  }
  d.reason = why.str().empty() ? "every usage rule holds with this request on any upstream" : why.str();
  return d;
}

uint64_t QuotaController::reserve(bool domestic, double est_tokens) {
  std::lock_guard lock(mutex_);
  const uint64_t ticket = next_ticket_++;
  reservations_.emplace_back(ticket, Reservation{domestic, est_tokens});
  reserved_[domestic ? 1 : 0] += est_tokens;
  return ticket;
}

void QuotaController::settle(uint64_t ticket, double served_tokens, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  const auto it = std::find_if(reservations_.begin(), reservations_.end(), [&](const auto& r) { return r.first == ticket; });
  if (it == reservations_.end()) return;
  const int side = it->second.domestic ? 1 : 0;
  reserved_[side] = std::max(0.0, reserved_[side] - it->second.tokens);
  reservations_.erase(it);
  if (served_tokens > 0) bucket_at(now).tokens[side] += served_tokens;
}

void QuotaController::add_device_seconds(bool domestic, double device_seconds, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  bucket_at(now).device_s[domestic ? 1 : 0] += device_seconds;
}

std::vector<QuotaRuleState> QuotaController::state(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  expire(now);
  std::vector<QuotaRuleState> out;
  for (const auto& r : rules_) {
    QuotaRuleState s;
    s.rule = r;
    double t[2];
    totals(r.basis, t);
    s.foreign = t[0];
    s.domestic = t[1];
    if (t[0] + t[1] > 0) {
      s.share = t[1] / (t[0] + t[1]);
      s.compliant = r.strict ? *s.share > r.threshold : *s.share >= r.threshold - 1e-12;
    }
    out.push_back(s);
  }
  return out;
}

nlohmann::json QuotaController::to_json(Clock::time_point now) {
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& s : state(now)) {
    rules.push_back({{"rule", s.rule.name},
                     {"basis", policy::basis_name(s.rule.basis)},
                     {"threshold", s.rule.threshold},
                     {"mode", s.rule.mode == policy::Mode::kEnforce ? "enforce" : "audit"},
                     {"domestic", s.domestic},
                     {"foreign", s.foreign},
                     {"share", s.share ? nlohmann::json(*s.share) : nlohmann::json(nullptr)},
                     {"compliant", s.compliant}});
  }
  return {{"window_s", window_s_}, {"margin", margin_}, {"rules", rules}};
}

}  // namespace mixserve::gateway

#include "gateway/tenants.h"

#include <algorithm>

namespace mixserve::gateway {

Tenants::Tenants(const std::vector<TenantConfig>& tenants) {
  for (const auto& t : tenants) {
    Tenant tenant{t, serve::ApiKeys::load(t.key_file), t.burst, Clock::now()};
    tenants_.push_back(std::move(tenant));
  }
}

std::optional<size_t> Tenants::identify(std::string_view authorization) const {
  std::optional<size_t> found;
  for (size_t i = 0; i < tenants_.size(); ++i) {
    if (tenants_[i].keys.allows(authorization) && !found) found = i;  // check all: no early exit
  }
  return found;
}

bool Tenants::admit(size_t tenant, Clock::time_point now, double* retry_after_s) {
  std::lock_guard lock(mutex_);
  Tenant& t = tenants_.at(tenant);
  const double rate = t.config.requests_per_s;
  if (rate <= 0) return true;
  const double elapsed = std::chrono::duration<double>(now - t.refilled).count();
  t.tokens = std::min(t.config.burst, t.tokens + std::max(0.0, elapsed) * rate);
  t.refilled = std::max(t.refilled, now);  // callers read the clock before the lock: never credit twice
  if (t.tokens >= 1) {
    t.tokens -= 1;
    return true;
  }
  if (retry_after_s) *retry_after_s = (1 - t.tokens) / rate;
  return false;
}

bool token_allows(const serve::ApiKeys& keys, std::string_view authorization) {
  return keys.enabled() && keys.allows(authorization);
}

}  // namespace mixserve::gateway

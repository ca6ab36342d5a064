// Tenants of the gateway: who a Bearer key belongs to, and each tenant's request-rate limit (a token
// bucket: `requests_per_s` sustained, `burst` at once) and body-size limit. Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "gateway/cluster_config.h"
#include "serve/api_keys.h"

namespace mixserve::gateway {

/// The tenants and their buckets.
class Tenants {
 public:
  using Clock = std::chrono::steady_clock;

  /// Loads every tenant's key file; throws kNotFound / kInvalidArgument naming the file.
  explicit Tenants(const std::vector<TenantConfig>& tenants);

  /// Whether keys are required (some tenant is configured).
  bool enabled() const { return !tenants_.empty(); }
  /// The tenant whose key the Authorization header carries; nullopt when none matches. Every key is
  /// compared in constant time.
  std::optional<size_t> identify(std::string_view authorization) const;
  /// Takes one request from the tenant's bucket; false when empty, with the seconds until a request
  /// is allowed again in `retry_after_s`.
  bool admit(size_t tenant, Clock::time_point now, double* retry_after_s);
  /// Configuration of tenant `index`.
  const TenantConfig& config(size_t index) const { return tenants_[index].config; }

 private:
  struct Tenant {
    TenantConfig config;
    serve::ApiKeys keys;
    double tokens = 0;
    Clock::time_point refilled{};
  };
  std::vector<Tenant> tenants_;
  std::mutex mutex_;  // guards the buckets
};

/// Whether an Authorization header carries one of the tokens in `file`-loaded keys (admin, join).
bool token_allows(const serve::ApiKeys& keys, std::string_view authorization);

}  // namespace mixserve::gateway

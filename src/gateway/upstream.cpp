#include "gateway/upstream.h"

#include <algorithm>

#include "common/error.h"

namespace mixserve::gateway {

std::string_view circuit_name(Circuit circuit) {
  switch (circuit) {
    case Circuit::kClosed: return "closed";
    case Circuit::kOpen: return "open";
    case Circuit::kHalfOpen: return "half-open";
  }
  return "?";
}

nlohmann::json UpstreamSnapshot::to_json() const {
  nlohmann::json j = {{"name", name},
                      {"url", url},
                      {"chip", chip},
                      {"origin", domestic ? "domestic" : "foreign"},
                      {"country", country},
                      {"devices", devices},
                      {"joined", joined},
                      {"node", node},
                      {"admin_url", admin_url},
                      {"models", models},
                      {"healthy", healthy},
                      {"circuit", circuit_name(circuit)},
                      {"draining", draining},
                      {"last_error", last_error},
                      {"load", {{"in_flight", in_flight},
                                {"max_in_flight", max_in_flight},
                                {"capacity", capacity},
                                {"node_queue", node_queue},
                                {"kv_use", kv_use}}},
                      {"requests_ok", requests_ok},
                      {"requests_failed", requests_failed},
                      {"served_tokens", served_tokens}};
  j["speed_tokens_per_s"] = speed ? nlohmann::json(*speed) : nlohmann::json(nullptr);
  return j;
}

Upstream::Upstream(UpstreamConfig config, bool domestic, std::string country, bool joined)
    : config_(std::move(config)), domestic_(domestic), country_(std::move(country)), joined_(joined) {
  models_ = config_.models;
}

bool Upstream::serves(const std::string& model) const {
  std::lock_guard lock(mutex_);
  return std::find(models_.begin(), models_.end(), model) != models_.end();
}

bool Upstream::available(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (draining_ || in_flight_ >= config_.max_in_flight) return false;
  if (circuit_ == Circuit::kOpen && now >= open_until_) {
    circuit_ = Circuit::kHalfOpen;
    trial_out_ = false;
  }
  if (circuit_ == Circuit::kOpen) return false;
  if (circuit_ == Circuit::kHalfOpen) return !trial_out_;
  return healthy_;
}

bool Upstream::acquire() {
  std::lock_guard lock(mutex_);
  if (in_flight_ >= config_.max_in_flight) return false;
  if (circuit_ == Circuit::kHalfOpen) {
    if (trial_out_) return false;
    trial_out_ = true;
  }
  if (in_flight_++ == 0) busy_since_ = Clock::now();
  return true;
}

void Upstream::release() {
  std::lock_guard lock(mutex_);
  if (--in_flight_ == 0) busy_seconds_ += std::chrono::duration<double>(Clock::now() - busy_since_).count();
}

double Upstream::take_busy_seconds(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  double busy = busy_seconds_;
  busy_seconds_ = 0;
  if (in_flight_ > 0 && now > busy_since_) {
    busy += std::chrono::duration<double>(now - busy_since_).count();
    busy_since_ = now;
  }
  return busy;
}

void Upstream::record_success() {
  std::lock_guard lock(mutex_);
  consecutive_failures_ = 0;
  circuit_ = Circuit::kClosed;
  trial_out_ = false;
  open_for_s_ = 0;
  healthy_ = true;
}

void Upstream::record_failure(const std::string& why, int threshold, double open_s, Clock::time_point now,
                              bool is_request) {
  std::lock_guard lock(mutex_);
  if (is_request) ++requests_failed_;
  ++consecutive_failures_;
  last_error_ = why;
  if (circuit_ == Circuit::kOpen) return;  // already open: a late failure (an older request, a check) changes nothing
  const bool trial_failed = circuit_ == Circuit::kHalfOpen;
  if (trial_failed || consecutive_failures_ >= threshold) {
    open_for_s_ = trial_failed ? std::min(60.0, std::max(open_s, open_for_s_ * 2)) : open_s;
    circuit_ = Circuit::kOpen;
    trial_out_ = false;
    open_until_ = now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(open_for_s_));
  }
}

void Upstream::record_served(double tokens, std::optional<double> decode_tokens_per_s, double alpha) {
  std::lock_guard lock(mutex_);
  ++requests_ok_;
  served_tokens_ += tokens;
  if (decode_tokens_per_s && *decode_tokens_per_s > 0) {
    speed_ = speed_ ? (1 - alpha) * *speed_ + alpha * *decode_tokens_per_s : *decode_tokens_per_s;
  }
}

void Upstream::update_from_node(std::vector<std::string> models, double capacity, double node_queue, double kv_use) {
  std::lock_guard lock(mutex_);
  if (config_.models.empty() && !models.empty()) models_ = std::move(models);
  capacity_ = capacity;
  node_queue_ = node_queue;
  kv_use_ = std::clamp(kv_use, 0.0, 1.0);
}

void Upstream::set_healthy(bool healthy) {
  std::lock_guard lock(mutex_);
  healthy_ = healthy;
}

void Upstream::set_draining(bool draining) {
  std::lock_guard lock(mutex_);
  draining_ = draining;
}

void Upstream::heartbeat(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  last_heartbeat_ = now;
}

Clock::time_point Upstream::last_heartbeat() const {
  std::lock_guard lock(mutex_);
  return last_heartbeat_;
}

UpstreamSnapshot Upstream::snapshot() const {
  std::lock_guard lock(mutex_);
  UpstreamSnapshot s;
  s.name = config_.name;
  s.url = config_.endpoint.url();
  s.chip = config_.chip;
  s.domestic = domestic_;
  s.country = country_;
  s.devices = config_.devices;
  s.joined = joined_;
  s.node = config_.node.empty() ? config_.name : config_.node;
  s.admin_url = config_.admin_url;
  s.models = models_;
  s.circuit = circuit_;
  s.healthy = healthy_;
  s.draining = draining_;
  s.last_error = last_error_;
  s.in_flight = in_flight_;
  s.max_in_flight = config_.max_in_flight;
  s.capacity = capacity_;
  s.node_queue = node_queue_;
  s.kv_use = kv_use_;
  s.speed = speed_;
  s.requests_ok = requests_ok_;
  s.requests_failed = requests_failed_;
  s.served_tokens = served_tokens_;
  return s;
}

void UpstreamSet::add(std::shared_ptr<Upstream> upstream) {
  std::lock_guard lock(mutex_);
  for (const auto& u : upstreams_) {
    if (u->name() == upstream->name()) fail(ErrorCode::kInvalidArgument, "upstream '", u->name(), "' exists already");
  }
  upstreams_.push_back(std::move(upstream));
}

std::pair<std::shared_ptr<Upstream>, bool> UpstreamSet::join(std::shared_ptr<Upstream> upstream) {
  std::lock_guard lock(mutex_);
  for (auto& u : upstreams_) {
    if (u->name() != upstream->name()) continue;
    const auto& a = u->config();
    const auto& b = upstream->config();
    if (a.endpoint.url() == b.endpoint.url() && a.chip == b.chip && a.devices == b.devices && a.models == b.models &&
        a.max_in_flight == b.max_in_flight && a.node == b.node && a.admin_url == b.admin_url) {
      return {u, false};
    }
    u = std::move(upstream);  // the node came back changed: requests in flight keep the old object
    return {u, true};
  }
  upstreams_.push_back(upstream);
  return {upstream, true};
}

bool UpstreamSet::remove(const std::string& name) {
  std::lock_guard lock(mutex_);
  const auto it = std::find_if(upstreams_.begin(), upstreams_.end(), [&](const auto& u) { return u->name() == name; });
  if (it == upstreams_.end()) return false;
  upstreams_.erase(it);
  return true;
}

std::shared_ptr<Upstream> UpstreamSet::find(const std::string& name) const {
  std::lock_guard lock(mutex_);
  for (const auto& u : upstreams_) {
    if (u->name() == name) return u;
  }
  return nullptr;
}

std::vector<std::shared_ptr<Upstream>> UpstreamSet::all() const {
  std::lock_guard lock(mutex_);
  return upstreams_;
}

}  // namespace mixserve::gateway

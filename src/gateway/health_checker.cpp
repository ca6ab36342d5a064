#include "gateway/health_checker.h"

#include <future>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "serve/http_client.h"

namespace mixserve::gateway {

namespace {

using nlohmann::json;

serve::HttpHeaders auth(const Upstream& u) {
  if (u.config().api_key.empty()) return {};
  return {{"authorization", "Bearer " + u.config().api_key}};
}

}  // namespace

std::string check_upstream(Upstream& upstream, const HealthConfig& health) {
  const auto& ep = upstream.config().endpoint;
  std::string problem;
  try {
    serve::HttpClient client(ep.host, ep.port, health.timeout_s);
    const auto h = client.request("GET", "/health", "", auth(upstream));
    if (h.status != 200) {
      problem = "GET /health answered " + std::to_string(h.status);
    } else {
      const auto node = client.request("GET", "/v1/node", "", auth(upstream));
      const json doc = node.status == 200 ? json::parse(node.body, nullptr, false) : json();
      if (doc.is_object() && doc.value("object", "") == "node") {
        std::vector<std::string> models;
        if (doc.contains("model") && doc["model"].is_object()) models.push_back(doc["model"].value("id", ""));
        const json capacity = doc.value("capacity", json::object());
        const json load = doc.value("load", json::object());
        upstream.update_from_node(models, capacity.value("max_sequences", 0.0), load.value("queued", 0.0),
                                  load.value("kv_utilization", 0.0));
      } else if (upstream.config().models.empty()) {
        const auto m = client.request("GET", "/v1/models", "", auth(upstream));
        const json list = m.status == 200 ? json::parse(m.body, nullptr, false) : json();
        std::vector<std::string> models;
        if (list.is_object() && list.contains("data") && list["data"].is_array()) {
          for (const auto& e : list["data"]) {
            if (e.is_object() && e.contains("id") && e["id"].is_string()) models.push_back(e["id"].get<std::string>());
          }
        }
        if (models.empty()) problem = "GET /v1/models listed no model";
        upstream.update_from_node(models, 0, 0, 0);
      }
    }
  } catch (const std::exception& e) {
    problem = e.what();
  }
  const auto snapshot_before = upstream.snapshot();
  if (problem.empty()) {
    upstream.set_healthy(true);
    if (snapshot_before.circuit != Circuit::kClosed || !snapshot_before.healthy) {
      log_info("gateway: upstream '", upstream.name(), "' is healthy again");
    }
    upstream.record_success();
  } else {
    upstream.set_healthy(false);
    if (snapshot_before.healthy) log_warn("gateway: upstream '", upstream.name(), "' failed its health check: ", problem);
    upstream.record_failure("health check: " + problem, health.failure_threshold, health.open_s, Clock::now(), false);
  }
  return problem;
}

HealthChecker::HealthChecker(const ClusterConfig& config, UpstreamSet& upstreams,
                             std::function<void(const std::string&)> on_removed)
    : config_(config), upstreams_(upstreams), on_removed_(std::move(on_removed)) {
  thread_ = std::thread([this] { loop(); });
}

HealthChecker::~HealthChecker() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HealthChecker::check_now() { round(); }

void HealthChecker::round() {
  std::lock_guard round_lock(round_mutex_);
  const auto now = Clock::now();
  std::vector<std::future<void>> checks;
  for (const auto& u : upstreams_.all()) {
    const auto snap = u->snapshot();
    if (snap.joined) {
      const double silent = std::chrono::duration<double>(now - u->last_heartbeat()).count();
      if (silent > config_.heartbeat_timeout_s) {
        log_warn("gateway: joined node '", snap.name, "' sent no heartbeat for ", silent, " s; removing it");
        upstreams_.remove(snap.name);
        if (on_removed_) on_removed_(snap.name);
        continue;
      }
    }
    checks.push_back(std::async(std::launch::async, [u, this] { check_upstream(*u, config_.health); }));
  }
  for (auto& c : checks) c.get();
}

void HealthChecker::loop() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    round();
    lock.lock();
    wake_.wait_for(lock, std::chrono::duration<double>(config_.health.interval_s), [&] { return stop_; });
  }
}

}  // namespace mixserve::gateway

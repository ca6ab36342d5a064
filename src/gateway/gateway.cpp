#include "gateway/gateway.h"

#include <chrono>
#include <cmath>

#include "common/error.h"
#include "common/log.h"
#include "gateway/proxy_call.h"
#include "serve/openai_response.h"

namespace mixserve::gateway {

Gateway::Gateway(ClusterConfig config) : config_(std::move(config)), catalogue_(fleet::Catalogue::builtin()) {
  for (const auto& f : config_.catalogue_files) catalogue_.apply_overrides(f);
  if (!config_.fleet_file.empty()) fleet_ = fleet::load_fleet(config_.fleet_file, catalogue_);
  home_country_ = !config_.home_country.empty() ? config_.home_country : fleet_ ? fleet_->home_country : "CN";
  std::vector<QuotaRule> rules;
  if (!config_.policy_file.empty()) {
    policy_ = policy::load_policy(config_.policy_file);
    rules = quota_rules(*policy_, &ignored_rules_);
  }
  quota_ = std::make_unique<QuotaController>(std::move(rules), config_.quota.window_s, config_.quota.margin);
  metrics_ = std::make_unique<GatewayMetrics>(*quota_);
  tenants_ = std::make_unique<Tenants>(config_.tenants);
  if (!config_.admin_token_file.empty()) admin_keys_ = serve::ApiKeys::load(config_.admin_token_file);
  if (!config_.join_token_file.empty()) join_keys_ = serve::ApiKeys::load(config_.join_token_file);
  if (!config_.node_admin_token_file.empty()) node_admin_token_ = serve::read_token_file(config_.node_admin_token_file);
  for (const auto& u : config_.upstreams) {
    if (!catalogue_.find(u.chip)) {
      fail(ErrorCode::kInvalidArgument, config_.origin, ": upstream '", u.name, "': chip '", u.chip,
           "' is not in the catalogue (see `mixserve chips`, or add it with a catalogue override file)");
    }
    auto upstream = make_upstream(u, false);
    upstreams_.add(upstream);
    metrics_->watch(upstreams_, upstream);
  }
}

Gateway::~Gateway() {
  if (running_) shutdown(0);
}

std::shared_ptr<Upstream> Gateway::make_upstream(UpstreamConfig config, bool joined) const {
  const auto chip = catalogue_.find(config.chip);
  const bool domestic = catalogue_.is_domestic(config.chip, home_country_);
  return std::make_shared<Upstream>(std::move(config), domestic, chip ? chip->country : "", joined);
}

uint16_t Gateway::start() {
  if (!config_.ledger_file.empty()) usage_ = std::make_unique<UsageRecorder>(config_.ledger_file, config_.usage_interval_s);
  client_ = std::make_unique<UpstreamClient>(config_.upstream_threads);
  health_ = std::make_unique<HealthChecker>(config_, upstreams_, [this](const std::string& name) {
    if (usage_) usage_->record(policy::RecordKind::kFleetChange, {{"event", "node_lost"}, {"node", name}});
  });
  health_->check_now();
  serve::HttpServerOptions http;
  http.host = config_.listen.host;
  http.port = config_.listen.port;
  http.io_threads = config_.io_threads;
  http.max_body_bytes = config_.max_body_bytes;
  http.request_timeout_s = config_.request_timeout_s;
  http.max_connections = config_.max_connections;
  http.server_name = "mixserve-gateway";
  http.error_body = [](int status, const std::string& message) {
    return serve::error_body(message, status >= 500 ? "server_error" : "invalid_request_error").dump();
  };
  http_ = std::make_unique<serve::HttpServer>(http, [this](std::shared_ptr<serve::HttpExchange> ex) { handle(ex); });
  const uint16_t port = http_->start();
  sampler_ = std::thread([this] {
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      sample_busy_time();
    }
  });
  running_ = true;
  if (usage_) {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& u : upstreams_.all()) names.push_back(u->name());
    usage_->record(policy::RecordKind::kNote, {{"event", "gateway_started"}, {"upstreams", names}});
  }
  return port;
}

// Busy device-time: every upstream counts all its devices for the time it had a request open.
void Gateway::sample_busy_time() {
  const auto now = Clock::now();
  for (const auto& u : upstreams_.all()) {
    const double busy = u->take_busy_seconds(now);
    if (busy <= 0) continue;
    const auto s = u->snapshot();
    const double device_s = static_cast<double>(s.devices) * busy;
    quota_->add_device_seconds(s.domestic, device_s, now);
    if (usage_) usage_->add_device_seconds(s, device_s);
  }
}

size_t Gateway::in_flight() const {
  std::lock_guard lock(calls_mutex_);
  return calls_.size();
}

void Gateway::shutdown(double drain_timeout_s) {
  if (!running_) return;
  running_ = false;
  draining_ = true;
  http_->stop_accepting();
  http_->set_closing();
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(drain_timeout_s));
  while (in_flight() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (in_flight() > 0) log_warn("gateway: ", in_flight(), " requests still in flight at shutdown; they are cut");
  while (background_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop_ = true;
  if (sampler_.joinable()) sampler_.join();
  sample_busy_time();  // the last stretch, before the usage is written
  health_.reset();
  http_->stop();
  client_.reset();
  {
    std::lock_guard lock(calls_mutex_);
    calls_.clear();
  }
  if (usage_) {
    usage_->record(policy::RecordKind::kNote, {{"event", "gateway_stopped"}});
    usage_->flush();
    usage_.reset();
  }
}

void Gateway::proxy(const std::shared_ptr<serve::HttpExchange>& exchange, const std::string& route) {
  const auto tenant = authenticate(*exchange, route);
  if (!tenant) return;
  if (draining_) return reply_error(*exchange, route, 503, "The gateway is shutting down", "server_error", "draining");
  const auto& req = exchange->request();
  if (tenants_->enabled()) {
    const size_t index = *tenants_->identify(req.header("authorization"));
    const TenantConfig& t = tenants_->config(index);
    double retry_after = 1;
    if (t.max_body_bytes > 0 && req.body.size() > t.max_body_bytes) {
      return reply_error(*exchange, route, 413,
                         "The request body is " + std::to_string(req.body.size()) + " bytes, over the tenant's limit of " +
                             std::to_string(t.max_body_bytes),
                         "invalid_request_error", "request_too_large");
    }
    if (!tenants_->admit(index, Clock::now(), &retry_after)) {
      return reply_error(*exchange, route, 429, "Tenant '" + t.name + "' is over its request rate", "rate_limit_exceeded",
                         "tenant_rate", {{"retry-after", std::to_string(static_cast<int>(std::ceil(retry_after)))}});
    }
  }
  nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
  if (!body.is_object()) {
    return reply_error(*exchange, route, 400, "The request body must be a JSON object", "invalid_request_error");
  }
  const auto model = body.find("model");
  if (model == body.end() || !model->is_string() || model->get_ref<const std::string&>().empty()) {
    return reply_error(*exchange, route, 400, "'model' is required and must be a non-empty string",
                       "invalid_request_error");
  }
  uint64_t id;
  {
    std::lock_guard lock(calls_mutex_);
    id = next_call_++;
  }
  ProxyContext ctx{&config_, &upstreams_, client_.get(), quota_.get(), metrics_.get(), usage_.get()};
  auto call = std::make_shared<ProxyCall>(ctx, exchange, route, std::move(body), *tenant, [this, id] {
    std::lock_guard lock(calls_mutex_);
    calls_.erase(id);
  });
  {
    std::lock_guard lock(calls_mutex_);
    calls_[id] = call;
  }
  call->start();
}

}  // namespace mixserve::gateway

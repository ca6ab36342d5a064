// The gateway's endpoints other than the proxied generations: health, metrics, models, fleet, route
// explanation, node join and heartbeat, admin (list, drain, undrain).
#include <algorithm>
#include <set>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "gateway/gateway.h"
#include "gateway/placement_apply.h"
#include "gateway/router.h"
#include "policy/evaluate.h"
#include "serve/openai_response.h"

namespace mixserve::gateway {

namespace {

using nlohmann::json;

std::string route_of(const std::string& path) {
  static const char* kRoutes[] = {"/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/fleet",
                                  "/v1/route/explain", "/v1/join", "/v1/leave", "/health", "/metrics"};
  for (const char* r : kRoutes) {
    if (path == r) return r;
  }
  if (path.rfind("/admin/", 0) == 0) return "/admin";
  return "other";
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Value of `name` in the query string of `target`, or "".
std::string query_param(const std::string& target, std::string_view name) {
  const size_t q = target.find('?');
  if (q == std::string::npos) return "";
  std::string_view rest(target);
  rest.remove_prefix(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const size_t eq = pair.find('=');
    if (percent_decode(pair.substr(0, eq)) == name) return eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return "";
}

}  // namespace

void Gateway::reply_json(serve::HttpExchange& exchange, const std::string& route, int status, const json& body,
                         serve::HttpHeaders headers) {
  metrics_->request(route, status);
  exchange.respond(status, "application/json", body.dump(), std::move(headers));
}

void Gateway::reply_error(serve::HttpExchange& exchange, const std::string& route, int status, const std::string& message,
                          const std::string& type, const std::string& code, serve::HttpHeaders headers) {
  reply_json(exchange, route, status, serve::error_body(message, type, "", code), std::move(headers));
}

std::optional<std::string> Gateway::authenticate(serve::HttpExchange& exchange, const std::string& route) {
  if (!tenants_->enabled()) return std::string();
  const auto tenant = tenants_->identify(exchange.request().header("authorization"));
  if (!tenant) {
    reply_error(exchange, route, 401, "Incorrect or missing API key: send 'Authorization: Bearer <key>'",
                "invalid_request_error", "invalid_api_key");
    return std::nullopt;
  }
  return tenants_->config(*tenant).name;
}

void Gateway::handle(const std::shared_ptr<serve::HttpExchange>& exchange) {
  const auto& req = exchange->request();
  const std::string route = route_of(req.path);
  auto need = [&](const char* method) {
    if (req.method == method) return true;
    reply_error(*exchange, route, 405, "method " + req.method + " is not allowed on " + req.path + "; use " + method,
                "invalid_request_error");
    return false;
  };
  try {
    if (req.path == "/v1/completions" || req.path == "/v1/chat/completions") {
      if (need("POST")) proxy(exchange, req.path);
    } else if (req.path == "/health") {
      if (!need("GET")) return;
      size_t healthy = 0;
      const auto all = upstreams_.all();
      for (const auto& u : all) {
        const auto s = u->snapshot();
        if (s.healthy && s.circuit == Circuit::kClosed && !s.draining) ++healthy;
      }
      reply_json(*exchange, route, draining_ ? 503 : 200,
                 {{"status", draining_ ? "draining" : "ok"}, {"upstreams", all.size()}, {"healthy_upstreams", healthy}});
    } else if (req.path == "/metrics") {
      if (need("GET")) {
        metrics_->request(route, 200);
        exchange->respond(200, serve::MetricsRegistry::kContentType, metrics_->render());
      }
    } else if (req.path == "/v1/models") {
      if (need("GET") && authenticate(*exchange, route)) reply_json(*exchange, route, 200, models_json());
    } else if (req.path == "/v1/fleet") {
      if (!need("GET")) return;
      const bool admin = token_allows(admin_keys_, req.header("authorization"));
      if (admin || authenticate(*exchange, route)) reply_json(*exchange, route, 200, fleet_json());
    } else if (req.path == "/v1/route/explain") {
      if (need("GET") && authenticate(*exchange, route)) explain(exchange);
    } else if (req.path == "/v1/join" || req.path == "/v1/leave") {
      if (need("POST")) join(exchange);
    } else if (req.path.rfind("/admin/", 0) == 0) {
      admin(exchange);
    } else {
      reply_error(*exchange, route, 404, "no route for " + req.method + " " + req.path, "invalid_request_error");
    }
  } catch (const std::exception& e) {
    log_error("gateway: ", req.method, " ", req.path, ": ", e.what());
    reply_error(*exchange, route, 500, std::string("internal error: ") + e.what(), "server_error");
  }
}

json Gateway::models_json() {
  std::set<std::string> ids;
  for (const auto& u : upstreams_.all()) {
    for (const auto& m : u->snapshot().models) ids.insert(m);
  }
  json data = json::array();
  for (const auto& id : ids) data.push_back({{"id", id}, {"object", "model"}, {"owned_by", "mixserve"}});
  return {{"object", "list"}, {"data", data}};
}

json Gateway::fleet_json() {
  json upstreams = json::array();
  for (const auto& u : upstreams_.all()) upstreams.push_back(u->snapshot().to_json());
  json out = {{"object", "fleet"},
              {"home_country", home_country_},
              {"upstreams", upstreams},
              {"quota", quota_->to_json(Clock::now())},
              {"ignored_rules", ignored_rules_}};
  // Capacity rules (device count, compute, memory) of the fleet file, as `policy check` counts them.
  if (fleet_ && policy_) {
    policy::Policy capacity;
    for (const auto& r : policy_->rules) {
      if (!policy::basis_uses_usage(r.basis)) capacity.rules.push_back(r);
    }
    json rules = json::array();
    if (!capacity.rules.empty()) {
      for (const auto& r : policy::evaluate(capacity, *fleet_, catalogue_).results) {
        rules.push_back({{"rule", r.rule.name},
                         {"basis", policy::basis_name(r.rule.basis)},
                         {"scope", r.rule.scope.to_string()},
                         {"threshold", r.rule.min_domestic_share},
                         {"share", r.share ? json(*r.share) : json(nullptr)},
                         {"outcome", policy::outcome_name(r.outcome)},
                         {"explanation", r.explanation}});
      }
    }
    out["capacity_rules"] = rules;
  }
  return out;
}

void Gateway::explain(const std::shared_ptr<serve::HttpExchange>& exchange) {
  const auto& req = exchange->request();
  const std::string model = query_param(req.target, "model");
  if (model.empty()) {
    return reply_error(*exchange, "/v1/route/explain", 400, "query parameter 'model' is required", "invalid_request_error");
  }
  json body = {{"model", model}, {"prompt", query_param(req.target, "prompt")}};
  const std::string max_tokens = query_param(req.target, "max_tokens");
  double est = static_cast<double>(body["prompt"].get_ref<const std::string&>().size()) / 4 + 16;
  if (!max_tokens.empty()) est += std::max(0.0, std::atof(max_tokens.c_str()) - 16);
  const auto now = Clock::now();
  const auto quota = quota_->decide(est, now);
  const auto ranking = rank_upstreams(upstreams_.all(), model, affinity_key(body, config_.routing.affinity_prefix_chars),
                                      config_.routing.weights, quota, now);
  json out = ranking.to_json();
  out["model"] = model;
  out["weights"] = {{"queue", config_.routing.weights.queue},
                    {"kv", config_.routing.weights.kv},
                    {"speed", config_.routing.weights.speed},
                    {"affinity", config_.routing.weights.affinity}};
  reply_json(*exchange, "/v1/route/explain", ranking.any_serves ? 200 : 404, out);
}

void Gateway::join(const std::shared_ptr<serve::HttpExchange>& exchange) {
  const auto& req = exchange->request();
  const std::string route = req.path;
  if (!join_keys_.enabled()) {
    return reply_error(*exchange, route, 403, "Joining is disabled: the gateway has no join_token_file",
                       "invalid_request_error", "join_disabled");
  }
  if (!join_keys_.allows(req.header("authorization"))) {
    return reply_error(*exchange, route, 401, "Incorrect or missing join token", "invalid_request_error",
                       "invalid_join_token");
  }
  const json body = json::parse(req.body, nullptr, false);
  if (route == "/v1/leave") {
    const std::string name = body.is_object() ? body.value("name", "") : "";
    const auto existing = upstreams_.find(name);
    if (!existing || !existing->snapshot().joined) {
      return reply_error(*exchange, route, 404, "no joined node '" + name + "'", "invalid_request_error");
    }
    upstreams_.remove(name);
    log_info("gateway: node '", name, "' left");
    if (usage_) usage_->record(policy::RecordKind::kFleetChange, {{"event", "node_left"}, {"node", name}});
    return reply_json(*exchange, route, 200, {{"status", "left"}});
  }
  UpstreamConfig u;
  try {
    if (!body.is_object()) fail(ErrorCode::kInvalidArgument, "the body must be a JSON object");
    u.name = body.at("name").get<std::string>();
    u.endpoint = parse_http_url(body.at("url").get<std::string>());
    u.chip = body.at("chip").get<std::string>();
    u.devices = body.value("devices", int64_t{1});
    u.max_in_flight = body.value("max_in_flight", int64_t{64});
    if (body.contains("models")) u.models = body.at("models").get<std::vector<std::string>>();
    u.node = body.value("node", "");
    if (body.contains("admin_url")) u.admin_url = parse_http_url(body.at("admin_url").get<std::string>()).url();
    if (u.name.empty() || u.chip.empty() || u.devices < 1 || u.max_in_flight < 1) {
      fail(ErrorCode::kInvalidArgument, "name and chip must be non-empty; devices and max_in_flight at least 1");
    }
  } catch (const std::exception& e) {
    return reply_error(*exchange, route, 400,
                       std::string("bad join request (fields: name, url, chip, devices, models, max_in_flight): ") + e.what(),
                       "invalid_request_error");
  }
  if (!catalogue_.find(u.chip)) {
    return reply_error(*exchange, route, 400, "chip '" + u.chip + "' is not in the gateway's catalogue",
                       "invalid_request_error", "unknown_chip");
  }
  if (const auto existing = upstreams_.find(u.name); existing && !existing->snapshot().joined) {
    return reply_error(*exchange, route, 409, "upstream '" + u.name + "' is declared in the configuration",
                       "invalid_request_error", "name_taken");
  }
  const std::string name = u.name;
  const std::string url = u.endpoint.url();
  const std::string chip = u.chip;
  auto candidate = make_upstream(std::move(u), true);
  candidate->heartbeat(Clock::now());  // before it is visible: the health round removes silent nodes
  auto [upstream, fresh] = upstreams_.join(std::move(candidate));
  upstream->heartbeat(Clock::now());
  if (fresh) {
    metrics_->watch(upstreams_, upstream);
    log_info("gateway: node '", name, "' joined from ", url, " (chip ", chip, ")");
    if (usage_) usage_->record(policy::RecordKind::kFleetChange, {{"event", "node_joined"}, {"node", name}, {"url", url}, {"chip", chip}});
    // Learn its capacity and load at once, off the I/O thread (a slow node must not hold the front door).
    std::thread([upstream, health = config_.health] { check_upstream(*upstream, health); }).detach();
  }
  reply_json(*exchange, route, 200,
             {{"status", fresh ? "joined" : "ok"}, {"heartbeat_interval_s", config_.heartbeat_timeout_s / 3}});
}

void Gateway::admin(const std::shared_ptr<serve::HttpExchange>& exchange) {
  const auto& req = exchange->request();
  const std::string route = "/admin";
  if (!admin_keys_.enabled()) {
    return reply_error(*exchange, route, 403, "Admin endpoints are disabled: the gateway has no admin_token_file",
                       "invalid_request_error", "admin_disabled");
  }
  if (!admin_keys_.allows(req.header("authorization"))) {
    return reply_error(*exchange, route, 401, "Incorrect or missing admin token", "invalid_request_error",
                       "invalid_admin_token");
  }
  if (req.path == "/admin/placement/apply") {
    if (req.method != "POST") return reply_error(*exchange, route, 405, "use POST", "invalid_request_error");
    std::map<std::string, std::map<std::string, int64_t>> desired;
    try {
      desired = desired_replicas(json::parse(req.body, nullptr, false));
    } catch (const Error& e) {
      return reply_error(*exchange, route, 400, e.what(), "invalid_request_error");
    }
    // Nodes load models for seconds: apply on a thread of its own and reply from there.
    ++background_;
    std::thread([this, exchange, desired, route] {
      json result = apply_plan(desired, upstreams_, node_admin_token_, config_.retry.first_byte_timeout_s);
      if (usage_) usage_->record(policy::RecordKind::kPlacement, {{"event", "placement_applied"}, {"result", result}});
      reply_json(*exchange, route, 200, result);
      --background_;
    }).detach();
    return;
  }
  if (req.path == "/admin/upstreams") {
    if (req.method != "GET") return reply_error(*exchange, route, 405, "use GET", "invalid_request_error");
    json list = json::array();
    for (const auto& u : upstreams_.all()) list.push_back(u->snapshot().to_json());
    return reply_json(*exchange, route, 200, {{"upstreams", list}});
  }
  // /admin/upstreams/<name>/drain | undrain
  constexpr std::string_view kPrefix = "/admin/upstreams/";
  std::string_view rest(req.path);
  if (rest.substr(0, kPrefix.size()) == kPrefix) {
    rest.remove_prefix(kPrefix.size());
    const size_t slash = rest.find('/');
    const std::string name(rest.substr(0, slash));
    const std::string action = slash == std::string_view::npos ? "" : std::string(rest.substr(slash + 1));
    if (action == "drain" || action == "undrain") {
      if (req.method != "POST") return reply_error(*exchange, route, 405, "use POST", "invalid_request_error");
      const auto u = upstreams_.find(name);
      if (!u) return reply_error(*exchange, route, 404, "no upstream '" + name + "'", "invalid_request_error");
      u->set_draining(action == "drain");
      log_info("gateway: upstream '", name, "' ", action == "drain" ? "draining" : "back in service");
      if (usage_) usage_->record(policy::RecordKind::kFleetChange, {{"event", action}, {"node", name}});
      return reply_json(*exchange, route, 200, u->snapshot().to_json());
    }
  }
  reply_error(*exchange, route, 404, "no admin route " + req.method + " " + req.path, "invalid_request_error");
}

}  // namespace mixserve::gateway

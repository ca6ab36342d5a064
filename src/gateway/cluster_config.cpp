#include "gateway/cluster_config.h"

#include <charconv>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "fleet/yaml_check.h"
#include "serve/api_keys.h"

namespace mixserve::gateway {

namespace y = fleet::yaml;

std::string Endpoint::url() const { return str_cat("http://", host, ":", port); }

Endpoint parse_http_url(const std::string& url, bool allow_any_port) {
  constexpr std::string_view kScheme = "http://";
  std::string_view rest(url);
  if (rest.substr(0, kScheme.size()) != kScheme) {
    fail(ErrorCode::kInvalidArgument, "URL '", url, "' must start with http:// (TLS is not supported)");
  }
  rest.remove_prefix(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  const size_t colon = rest.rfind(':');
  if (rest.find('/') != std::string_view::npos || colon == std::string_view::npos || colon == 0) {
    fail(ErrorCode::kInvalidArgument, "URL '", url, "' must be http://host:port with no path");
  }
  const std::string_view port_text = rest.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || (port == 0 && !allow_any_port) || port > 65535) {
    fail(ErrorCode::kInvalidArgument, "URL '", url, "' has a bad port");
  }
  return Endpoint{std::string(rest.substr(0, colon)), static_cast<uint16_t>(port)};
}

namespace {

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || std::filesystem::path(path).is_absolute() || base_dir.empty()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

// "host:port" of the listen key.
Endpoint parse_listen(const y::Where& where, const YAML::Node& root) {
  const std::string text = y::get_string(where, root, "listen", false, "127.0.0.1:9000");
  try {
    return parse_http_url("http://" + text, true);
  } catch (const Error& e) {
    y::fail_at(where, root["listen"], "listen", "must be host:port");
  }
}

std::vector<std::string> string_list(const y::Where& where, const YAML::Node& map, std::string_view key) {
  std::vector<std::string> out;
  const YAML::Node list = y::get_list(where, map, key, false);
  for (const auto& item : list) {
    if (!item.IsScalar() || item.Scalar().empty()) y::fail_at(where, item, key, "entries must be non-empty strings");
    out.push_back(item.Scalar());
  }
  return out;
}

// "upstream 'a1'" when the entry has a readable name (so even a key error names it), else "upstream".
std::string entry_name(const std::string& kind, const YAML::Node& node) {
  if (node.IsMap() && node["name"] && node["name"].IsScalar() && !node["name"].Scalar().empty()) {
    return kind + " '" + node["name"].Scalar() + "'";
  }
  return kind;
}

UpstreamConfig parse_upstream(const y::Where& top, const YAML::Node& node, const std::string& base_dir) {
  y::Where where{top.origin, entry_name("upstream", node)};
  y::check_keys(where, node, {"name", "url", "chip", "devices", "models", "api_key_file", "max_in_flight"});
  UpstreamConfig u;
  u.name = y::get_string(where, node, "name", true);
  where.entry = "upstream '" + u.name + "'";
  try {
    u.endpoint = parse_http_url(y::get_string(where, node, "url", true));
  } catch (const Error& e) {
    y::fail_at(where, node["url"], "url", e.what());
  }
  u.chip = y::get_string(where, node, "chip", true);
  u.devices = y::get_count(where, node, "devices", false, 1, 1'000'000);
  u.models = string_list(where, node, "models");
  const std::string key_file = y::get_string(where, node, "api_key_file", false);
  if (!key_file.empty()) u.api_key = serve::read_token_file(resolve(base_dir, key_file));
  u.max_in_flight = y::get_count(where, node, "max_in_flight", false, 64, 1'000'000);
  if (u.max_in_flight == 0) y::fail_at(where, node["max_in_flight"], "max_in_flight", "must be at least 1");
  return u;
}

void parse_routing(const y::Where& top, const YAML::Node& node, RoutingConfig& r) {
  if (!node) return;
  const y::Where where{top.origin, "routing"};
  y::check_keys(where, node, {"weights", "affinity_prefix_chars", "speed_alpha"});
  if (const YAML::Node w = node["weights"]) {
    const y::Where ww{top.origin, "routing.weights"};
    y::check_keys(ww, w, {"queue", "kv", "speed", "affinity"});
    r.weights.queue = y::get_number(ww, w, "queue", false, r.weights.queue);
    r.weights.kv = y::get_number(ww, w, "kv", false, r.weights.kv);
    r.weights.speed = y::get_number(ww, w, "speed", false, r.weights.speed);
    r.weights.affinity = y::get_number(ww, w, "affinity", false, r.weights.affinity);
  }
  r.affinity_prefix_chars = static_cast<size_t>(
      y::get_count(where, node, "affinity_prefix_chars", false, static_cast<int64_t>(r.affinity_prefix_chars), 1 << 20));
  r.speed_alpha = y::get_number(where, node, "speed_alpha", false, r.speed_alpha);
  if (r.speed_alpha <= 0 || r.speed_alpha > 1) y::fail_at(where, node["speed_alpha"], "speed_alpha", "must be in (0, 1]");
}

double positive(const y::Where& where, const YAML::Node& node, std::string_view key, double fallback) {
  const double v = y::get_number(where, node, key, false, fallback);
  if (v <= 0) y::fail_at(where, node[std::string(key)], key, "must be greater than 0");
  return v;
}

void parse_sections(const y::Where& top, const YAML::Node& root, ClusterConfig& c) {
  if (const YAML::Node h = root["health"]) {
    const y::Where where{top.origin, "health"};
    y::check_keys(where, h, {"interval_s", "timeout_s", "failure_threshold", "open_s"});
    c.health.interval_s = positive(where, h, "interval_s", c.health.interval_s);
    c.health.timeout_s = positive(where, h, "timeout_s", c.health.timeout_s);
    c.health.failure_threshold = static_cast<int>(y::get_count(where, h, "failure_threshold", false, 3, 1000));
    if (c.health.failure_threshold < 1) y::fail_at(where, h["failure_threshold"], "failure_threshold", "must be at least 1");
    c.health.open_s = positive(where, h, "open_s", c.health.open_s);
  }
  if (const YAML::Node r = root["retry"]) {
    const y::Where where{top.origin, "retry"};
    y::check_keys(where, r, {"max_attempts", "backoff_s", "connect_timeout_s", "first_byte_timeout_s", "idle_timeout_s"});
    c.retry.max_attempts = static_cast<int>(y::get_count(where, r, "max_attempts", false, 3, 100));
    if (c.retry.max_attempts < 1) y::fail_at(where, r["max_attempts"], "max_attempts", "must be at least 1");
    c.retry.backoff_s = y::get_number(where, r, "backoff_s", false, c.retry.backoff_s);
    c.retry.connect_timeout_s = positive(where, r, "connect_timeout_s", c.retry.connect_timeout_s);
    c.retry.first_byte_timeout_s = positive(where, r, "first_byte_timeout_s", c.retry.first_byte_timeout_s);
    c.retry.idle_timeout_s = positive(where, r, "idle_timeout_s", c.retry.idle_timeout_s);
  }
  if (const YAML::Node q = root["quota"]) {
    const y::Where where{top.origin, "quota"};
    y::check_keys(where, q, {"window_s", "queue_timeout_s", "margin"});
    c.quota.window_s = positive(where, q, "window_s", c.quota.window_s);
    c.quota.queue_timeout_s = y::get_number(where, q, "queue_timeout_s", false, c.quota.queue_timeout_s);
    c.quota.margin = y::get_number(where, q, "margin", false, c.quota.margin);
    if (c.quota.margin >= 1) y::fail_at(where, q["margin"], "margin", "must be below 1");
  }
}

void parse_security(const y::Where& top, const YAML::Node& root, const std::string& base_dir, ClusterConfig& c) {
  c.admin_token_file = resolve(base_dir, y::get_string(top, root, "admin_token_file", false));
  c.join_token_file = resolve(base_dir, y::get_string(top, root, "join_token_file", false));
  c.node_admin_token_file = resolve(base_dir, y::get_string(top, root, "node_admin_token_file", false));
  c.heartbeat_timeout_s = positive(top, root, "heartbeat_timeout_s", c.heartbeat_timeout_s);
  std::set<std::string> names;
  for (const auto& t : y::get_list(top, root, "tenants", false)) {
    y::Where where{top.origin, entry_name("tenant", t)};
    y::check_keys(where, t, {"name", "key_file", "requests_per_s", "burst", "max_body_bytes"});
    TenantConfig tenant;
    tenant.name = y::get_string(where, t, "name", true);
    where.entry = "tenant '" + tenant.name + "'";
    if (!names.insert(tenant.name).second) y::fail_at(where, t["name"], "name", "is used twice");
    tenant.key_file = resolve(base_dir, y::get_string(where, t, "key_file", true));
    tenant.requests_per_s = y::get_number(where, t, "requests_per_s", false, 0);
    tenant.burst = y::get_number(where, t, "burst", false, std::max(1.0, tenant.requests_per_s));
    if (tenant.requests_per_s > 0 && tenant.burst < 1) {
      y::fail_at(where, t["burst"], "burst", "must be at least 1 (a bucket that never holds a whole request refuses all)");
    }
    tenant.max_body_bytes = static_cast<size_t>(y::get_count(where, t, "max_body_bytes", false, 0, int64_t{1} << 40));
    c.tenants.push_back(std::move(tenant));
  }
}

}  // namespace

ClusterConfig parse_cluster_config(const std::string& text, const std::string& origin, const std::string& base_dir) {
  const YAML::Node root = y::parse(text, origin);
  const y::Where top{origin, ""};
  y::check_keys(top, root,
                {"listen", "fleet", "policy", "catalogue", "home_country", "ledger", "usage_interval_s", "upstreams",
                 "routing", "health", "retry", "quota", "tenants", "admin_token_file", "join_token_file", "node_admin_token_file",
                 "heartbeat_timeout_s", "io_threads", "upstream_threads", "max_body_bytes", "request_timeout_s",
                 "max_connections", "description"});
  ClusterConfig c;
  c.origin = origin;
  c.listen = parse_listen(top, root);
  c.fleet_file = resolve(base_dir, y::get_string(top, root, "fleet", false));
  c.policy_file = resolve(base_dir, y::get_string(top, root, "policy", false));
  for (auto& f : string_list(top, root, "catalogue")) c.catalogue_files.push_back(resolve(base_dir, f));
  c.home_country = y::get_string(top, root, "home_country", false);
  c.ledger_file = resolve(base_dir, y::get_string(top, root, "ledger", false));
  c.usage_interval_s = positive(top, root, "usage_interval_s", c.usage_interval_s);
  std::set<std::string> names;
  for (const auto& u : y::get_list(top, root, "upstreams", false)) {
    UpstreamConfig upstream = parse_upstream(top, u, base_dir);
    if (!names.insert(upstream.name).second) {
      y::fail_at(y::Where{origin, "upstream '" + upstream.name + "'"}, u["name"], "name", "is used twice");
    }
    c.upstreams.push_back(std::move(upstream));
  }
  parse_routing(top, root["routing"], c.routing);
  parse_sections(top, root, c);
  parse_security(top, root, base_dir, c);
  c.io_threads = static_cast<int>(y::get_count(top, root, "io_threads", false, c.io_threads, 256));
  if (c.io_threads < 1) y::fail_at(top, root["io_threads"], "io_threads", "must be at least 1");
  c.upstream_threads = static_cast<int>(y::get_count(top, root, "upstream_threads", false, c.upstream_threads, 256));
  if (c.upstream_threads < 1) y::fail_at(top, root["upstream_threads"], "upstream_threads", "must be at least 1");
  c.max_body_bytes = static_cast<size_t>(
      y::get_count(top, root, "max_body_bytes", false, static_cast<int64_t>(c.max_body_bytes), int64_t{1} << 40));
  c.request_timeout_s = positive(top, root, "request_timeout_s", c.request_timeout_s);
  c.max_connections = static_cast<size_t>(
      y::get_count(top, root, "max_connections", false, static_cast<int64_t>(c.max_connections), 1'000'000));
  return c;
}

ClusterConfig load_cluster_config(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return parse_cluster_config(y::read_file(path), path, dir);
}

}  // namespace mixserve::gateway

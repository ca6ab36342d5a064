// cluster.yaml parsing (gateway/cluster_config): a full example with every key, the defaults, URL
// parsing, relative paths and key files, and errors that name the file, the line, the entry and the key.
#include <gtest/gtest.h>

#include <fstream>
#include <initializer_list>
#include <string>

#include "common/error.h"
#include "gateway/cluster_config.h"
#include "support/test_support.h"
#include "support/error_expect.h"

namespace mixserve::gateway {
namespace {

void write_file(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// The message of the Error that `f` throws (expected: `code`); fails the test when nothing is thrown.

using ::mixserve::testing::error_of;
using ::mixserve::testing::expect_parts;

// Parses `text` as "c.yaml" with no base folder.
auto parse(const std::string& text) {
  return [text] { (void)parse_cluster_config(text, "c.yaml", ""); };
}

TEST(GatewayConfig, FullExampleSetsEveryKey) {
  testing::TempDir dir;
  write_file(dir.file("keys/up.txt"), "# key sent to node a\n\n   sk-upstream-key-1  \nsk-second-key-22\n");
  const std::string abs_policy = dir.file("abs/policy.yaml");
  const std::string text = R"(description: two nodes and a tenant
listen: 0.0.0.0:9100
fleet: fleet.yaml
policy: )" + abs_policy + R"(
catalogue: [cat/extra.yaml, more.yaml]
home_country: CN
ledger: ledger.jsonl
usage_interval_s: 30
upstreams:
  - name: a
    url: http://10.0.0.1:8001/
    chip: huawei-ascend-910b
    devices: 8
    models: [qwen, llama]
    api_key_file: keys/up.txt
    max_in_flight: 12
  - name: b
    url: http://node-b:8002
    chip: nvidia-h20
routing:
  weights: {queue: 2.5, kv: 0.75, speed: 1.5, affinity: 0.125}
  affinity_prefix_chars: 512
  speed_alpha: 0.5
health: {interval_s: 1.5, timeout_s: 0.5, failure_threshold: 4, open_s: 7}
retry: {max_attempts: 5, backoff_s: 0.25, connect_timeout_s: 3, first_byte_timeout_s: 40, idle_timeout_s: 9}
quota: {window_s: 120, queue_timeout_s: 4, margin: 0.05}
tenants:
  - name: team-a
    key_file: keys/a.txt
    requests_per_s: 5
    burst: 10
    max_body_bytes: 1000
  - name: team-b
    key_file: /keys/b.txt
admin_token_file: admin.txt
join_token_file: secrets/join.txt
heartbeat_timeout_s: 15
io_threads: 3
upstream_threads: 5
max_body_bytes: 4096
request_timeout_s: 12
max_connections: 77
)";
  const std::string base = dir.path().string();
  const auto rel = [&](const std::string& p) { return (dir.path() / p).string(); };
  const ClusterConfig c = parse_cluster_config(text, "cluster.yaml", base);
  EXPECT_EQ(c.origin, "cluster.yaml");
  EXPECT_EQ(c.listen.host, "0.0.0.0");
  EXPECT_EQ(c.listen.port, 9100);
  EXPECT_EQ(c.fleet_file, rel("fleet.yaml"));
  EXPECT_EQ(c.policy_file, abs_policy) << "absolute paths are kept";
  EXPECT_EQ(c.catalogue_files, (std::vector<std::string>{rel("cat/extra.yaml"), rel("more.yaml")}));
  EXPECT_EQ(c.home_country, "CN");
  EXPECT_EQ(c.ledger_file, rel("ledger.jsonl"));
  EXPECT_DOUBLE_EQ(c.usage_interval_s, 30);

  ASSERT_EQ(c.upstreams.size(), 2u);
  const UpstreamConfig& a = c.upstreams[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.endpoint.host, "10.0.0.1");
  EXPECT_EQ(a.endpoint.port, 8001);
  EXPECT_EQ(a.endpoint.url(), "http://10.0.0.1:8001");
  EXPECT_EQ(a.chip, "huawei-ascend-910b");
  EXPECT_EQ(a.devices, 8);
  EXPECT_EQ(a.models, (std::vector<std::string>{"qwen", "llama"}));
  EXPECT_EQ(a.api_key, "sk-upstream-key-1") << "the first key of the file, trimmed";
  EXPECT_EQ(a.max_in_flight, 12);
  const UpstreamConfig& b = c.upstreams[1];
  EXPECT_EQ(b.name, "b");
  EXPECT_EQ(b.endpoint.url(), "http://node-b:8002");
  EXPECT_EQ(b.chip, "nvidia-h20");
  EXPECT_EQ(b.devices, 1);
  EXPECT_TRUE(b.models.empty());
  EXPECT_TRUE(b.api_key.empty());
  EXPECT_EQ(b.max_in_flight, 64);

  EXPECT_DOUBLE_EQ(c.routing.weights.queue, 2.5);
  EXPECT_DOUBLE_EQ(c.routing.weights.kv, 0.75);
  EXPECT_DOUBLE_EQ(c.routing.weights.speed, 1.5);
  EXPECT_DOUBLE_EQ(c.routing.weights.affinity, 0.125);
  EXPECT_EQ(c.routing.affinity_prefix_chars, 512u);
  EXPECT_DOUBLE_EQ(c.routing.speed_alpha, 0.5);
  EXPECT_DOUBLE_EQ(c.health.interval_s, 1.5);
  EXPECT_DOUBLE_EQ(c.health.timeout_s, 0.5);
  EXPECT_EQ(c.health.failure_threshold, 4);
  EXPECT_DOUBLE_EQ(c.health.open_s, 7);
  EXPECT_EQ(c.retry.max_attempts, 5);
  EXPECT_DOUBLE_EQ(c.retry.backoff_s, 0.25);
  EXPECT_DOUBLE_EQ(c.retry.connect_timeout_s, 3);
  EXPECT_DOUBLE_EQ(c.retry.first_byte_timeout_s, 40);
  EXPECT_DOUBLE_EQ(c.retry.idle_timeout_s, 9);
  EXPECT_DOUBLE_EQ(c.quota.window_s, 120);
  EXPECT_DOUBLE_EQ(c.quota.queue_timeout_s, 4);
  EXPECT_DOUBLE_EQ(c.quota.margin, 0.05);

  ASSERT_EQ(c.tenants.size(), 2u);
  EXPECT_EQ(c.tenants[0].name, "team-a");
  EXPECT_EQ(c.tenants[0].key_file, rel("keys/a.txt")) << "tenant key files are resolved, not read, at parse time";
  EXPECT_DOUBLE_EQ(c.tenants[0].requests_per_s, 5);
  EXPECT_DOUBLE_EQ(c.tenants[0].burst, 10);
  EXPECT_EQ(c.tenants[0].max_body_bytes, 1000u);
  EXPECT_EQ(c.tenants[1].name, "team-b");
  EXPECT_EQ(c.tenants[1].key_file, "/keys/b.txt");
  EXPECT_DOUBLE_EQ(c.tenants[1].requests_per_s, 0);
  EXPECT_DOUBLE_EQ(c.tenants[1].burst, 1) << "burst defaults to max(1, requests_per_s)";
  EXPECT_EQ(c.tenants[1].max_body_bytes, 0u);

  EXPECT_EQ(c.admin_token_file, rel("admin.txt"));
  EXPECT_EQ(c.join_token_file, rel("secrets/join.txt"));
  EXPECT_DOUBLE_EQ(c.heartbeat_timeout_s, 15);
  EXPECT_EQ(c.io_threads, 3);
  EXPECT_EQ(c.upstream_threads, 5);
  EXPECT_EQ(c.max_body_bytes, 4096u);
  EXPECT_DOUBLE_EQ(c.request_timeout_s, 12);
  EXPECT_EQ(c.max_connections, 77u);
}

TEST(GatewayConfig, DefaultsOfAnEmptyMapping) {
  const ClusterConfig c = parse_cluster_config("{}\n", "c.yaml", "/base");
  const ClusterConfig d;  // the struct's own defaults
  EXPECT_EQ(c.origin, "c.yaml");
  EXPECT_EQ(c.listen.url(), "http://127.0.0.1:9000");
  EXPECT_TRUE(c.fleet_file.empty()) << "an absent path stays empty, not base_dir";
  EXPECT_TRUE(c.policy_file.empty());
  EXPECT_TRUE(c.ledger_file.empty());
  EXPECT_TRUE(c.admin_token_file.empty());
  EXPECT_TRUE(c.join_token_file.empty());
  EXPECT_TRUE(c.catalogue_files.empty());
  EXPECT_TRUE(c.home_country.empty());
  EXPECT_TRUE(c.upstreams.empty());
  EXPECT_TRUE(c.tenants.empty());
  EXPECT_DOUBLE_EQ(c.usage_interval_s, 60);
  EXPECT_DOUBLE_EQ(c.routing.weights.queue, 1.0);
  EXPECT_DOUBLE_EQ(c.routing.weights.kv, 0.5);
  EXPECT_DOUBLE_EQ(c.routing.weights.speed, 1.0);
  EXPECT_DOUBLE_EQ(c.routing.weights.affinity, 0.5);
  EXPECT_EQ(c.routing.affinity_prefix_chars, 256u);
  EXPECT_DOUBLE_EQ(c.routing.speed_alpha, 0.2);
  EXPECT_DOUBLE_EQ(c.health.interval_s, 2);
  EXPECT_DOUBLE_EQ(c.health.timeout_s, 2);
  EXPECT_EQ(c.health.failure_threshold, 3);
  EXPECT_DOUBLE_EQ(c.health.open_s, 5);
  EXPECT_EQ(c.retry.max_attempts, 3);
  EXPECT_DOUBLE_EQ(c.retry.backoff_s, 0.05);
  EXPECT_DOUBLE_EQ(c.retry.connect_timeout_s, 2);
  EXPECT_DOUBLE_EQ(c.retry.first_byte_timeout_s, 300);
  EXPECT_DOUBLE_EQ(c.retry.idle_timeout_s, 120);
  EXPECT_DOUBLE_EQ(c.quota.window_s, 60);
  EXPECT_DOUBLE_EQ(c.quota.queue_timeout_s, 10);
  EXPECT_DOUBLE_EQ(c.quota.margin, 0);
  EXPECT_DOUBLE_EQ(c.heartbeat_timeout_s, 10);
  EXPECT_EQ(c.io_threads, 2);
  EXPECT_EQ(c.upstream_threads, 2);
  EXPECT_EQ(c.max_body_bytes, size_t{8} << 20);
  EXPECT_DOUBLE_EQ(c.request_timeout_s, 30);
  EXPECT_EQ(c.max_connections, 4096u);
  // The parser's defaults agree with the struct's (one source of truth for the documented values).
  EXPECT_EQ(c.max_body_bytes, d.max_body_bytes);
  EXPECT_EQ(c.health.failure_threshold, d.health.failure_threshold);
  EXPECT_EQ(c.retry.max_attempts, d.retry.max_attempts);

  // Sections present but empty keep the defaults too.
  const ClusterConfig e = parse_cluster_config("routing: {}\nhealth: {}\nretry: {}\nquota: {}\nupstreams: []\n",
                                               "c.yaml", "");
  EXPECT_DOUBLE_EQ(e.routing.speed_alpha, 0.2);
  EXPECT_EQ(e.health.failure_threshold, 3);
  EXPECT_EQ(e.retry.max_attempts, 3);
  EXPECT_DOUBLE_EQ(e.quota.window_s, 60);
}

TEST(GatewayConfig, RelativePathsWithoutBaseDirStayRelative) {
  const ClusterConfig c = parse_cluster_config("fleet: f.yaml\nledger: l/ledger.jsonl\n", "c.yaml", "");
  EXPECT_EQ(c.fleet_file, "f.yaml");
  EXPECT_EQ(c.ledger_file, "l/ledger.jsonl");
}

TEST(GatewayConfig, LoadResolvesAgainstTheFilesFolder) {
  testing::TempDir dir;
  write_file(dir.file("conf/keys.txt"), "sk-node-key-000\n");
  write_file(dir.file("conf/cluster.yaml"),
             "fleet: fleet.yaml\nupstreams:\n  - {name: n1, url: 'http://h:1', chip: nvidia-h20, api_key_file: "
             "keys.txt}\n");
  const ClusterConfig c = load_cluster_config(dir.file("conf/cluster.yaml"));
  EXPECT_EQ(c.origin, dir.file("conf/cluster.yaml"));
  EXPECT_EQ(c.fleet_file, (dir.path() / "conf" / "fleet.yaml").string());
  ASSERT_EQ(c.upstreams.size(), 1u);
  EXPECT_EQ(c.upstreams[0].api_key, "sk-node-key-000");
  EXPECT_EQ(c.upstreams[0].endpoint.port, 1);
  expect_parts(error_of([&] { (void)load_cluster_config(dir.file("conf/absent.yaml")); }, ErrorCode::kNotFound),
               {"absent.yaml"});
}

TEST(GatewayConfig, ApiKeyFileErrors) {
  testing::TempDir dir;
  const std::string base = dir.path().string();
  const std::string up = "upstreams:\n  - {name: a, url: 'http://h:1', chip: c, api_key_file: k.txt}\n";
  // Missing file: kNotFound naming the resolved path.
  expect_parts(error_of([&] { (void)parse_cluster_config(up, "c.yaml", base); }, ErrorCode::kNotFound),
               {"k.txt"});
  // A file with comments only, or a malformed key, is refused naming the file.
  write_file(dir.file("k.txt"), "# nothing here\n\n");
  expect_parts(error_of([&] { (void)parse_cluster_config(up, "c.yaml", base); }), {"k.txt"});
  write_file(dir.file("k.txt"), "short\n");
  expect_parts(error_of([&] { (void)parse_cluster_config(up, "c.yaml", base); }), {"k.txt"});
}

TEST(GatewayConfig, ParseHttpUrlAcceptsHostPort) {
  Endpoint e = parse_http_url("http://example.com:8080");
  EXPECT_EQ(e.host, "example.com");
  EXPECT_EQ(e.port, 8080);
  EXPECT_EQ(e.url(), "http://example.com:8080");
  e = parse_http_url("http://127.0.0.1:1/");
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, 1);
  e = parse_http_url("http://h:65535");
  EXPECT_EQ(e.port, 65535);
  // Round trip.
  EXPECT_EQ(parse_http_url(parse_http_url("http://node-7:9001/").url()).url(), "http://node-7:9001");
}

TEST(GatewayConfig, ParseHttpUrlRejectsBadUrls) {
  struct Case {
    const char* url;
    const char* part;  // expected in the message
  };
  const Case cases[] = {
      {"https://h:443", "http://"},     {"h:80", "http://"},          {"ftp://h:21", "http://"},
      {"http://h", "no path"},          {"http://h/", "no path"},     {"http://:80", "no path"},
      {"http://h:80/v1", "no path"},    {"http://h:80/v1/", "no path"}, {"http://h:0", "bad port"},
      {"http://h:70000", "bad port"},   {"http://h:65536", "bad port"}, {"http://h:", "bad port"},
      {"http://h:-1", "bad port"},      {"http://h:8x", "bad port"},  {"http://h:80 ", "bad port"},
      {"", "http://"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.url);
    const std::string msg = error_of([&] { (void)parse_http_url(c.url); });
    expect_parts(msg, {c.part});
    EXPECT_NE(msg.find(std::string("'") + c.url + "'"), std::string::npos) << "names the URL: " << msg;
  }
}

TEST(GatewayConfig, BadListenIsRefused) {
  expect_parts(error_of(parse("listen: 'localhost'\n")), {"c.yaml:1:", "key 'listen'", "host:port"});
  expect_parts(error_of(parse("listen: 'localhost:70000'\n")), {"c.yaml:1:", "key 'listen'"});
  expect_parts(error_of(parse("listen: 'localhost:80/x'\n")), {"c.yaml:1:", "key 'listen'"});
  expect_parts(error_of(parse("listen: 'http://localhost:80'\n")), {"key 'listen'"});
}

TEST(GatewayConfig, ListenMayAskForAnyFreePort) {
  const ClusterConfig c = parse_cluster_config("listen: '127.0.0.1:0'\n", "c.yaml", "");
  EXPECT_EQ(c.listen.host, "127.0.0.1");
  EXPECT_EQ(c.listen.port, 0);
  EXPECT_EQ(parse_http_url("http://h:0", true).port, 0);
  EXPECT_THROW((void)parse_http_url("http://h:0"), Error) << "an upstream URL needs a real port";
  EXPECT_THROW((void)parse_http_url("http://h:70000", true), Error);
  EXPECT_THROW((void)parse_http_url("https://h:0", true), Error);
}

TEST(GatewayConfig, UnknownTopLevelKeyNamesLineAndKey) {
  expect_parts(error_of(parse("listen: 'h:1'\nupstream: []\n")), {"c.yaml:2:", "key 'upstream'", "unknown key"});
}

TEST(GatewayConfig, UnknownKeyInUpstreamNamesLineAndKey) {
  const std::string msg = error_of(parse(
      "upstreams:\n  - name: a\n    url: http://h:1\n    chip: c\n  - name: b\n    url: http://h:2\n    chip: c\n"
      "    weight: 3\n"));
  expect_parts(msg, {"c.yaml:8:", "upstream", "key 'weight'", "unknown key"});
}

// The header promises errors naming the entry; policy.yaml and fleet.yaml name the rule/node before
// checking its keys, so an unknown key there says which one. Here the upstream's name is read only
// after check_keys, so the message says just "upstream".
TEST(GatewayConfig, UnknownKeyInUpstreamNamesTheUpstream) {
  const std::string msg = error_of(parse(
      "upstreams:\n  - name: a\n    url: http://h:1\n    chip: c\n  - name: b\n    url: http://h:2\n    chip: c\n"
      "    weight: 3\n"));
  expect_parts(msg, {"upstream 'b'", "key 'weight'"});
}

TEST(GatewayConfig, UnknownKeyInTenantNamesLineAndKey) {
  expect_parts(error_of(parse("tenants:\n  - {name: t1, key_file: k, rate: 3}\n")),
               {"c.yaml:2:", "tenant", "key 'rate'", "unknown key"});
}

// Same as UnknownKeyInUpstreamNamesTheUpstream, for tenants (check_keys runs before the name is read).
TEST(GatewayConfig, UnknownKeyInTenantNamesTheTenant) {
  expect_parts(error_of(parse("tenants:\n  - {name: t1, key_file: k, rate: 3}\n")), {"tenant 't1'", "key 'rate'"});
}

TEST(GatewayConfig, UnknownKeyInSectionsNamesTheSection) {
  expect_parts(error_of(parse("routing:\n  weigths: {}\n")), {"c.yaml:2:", "routing", "key 'weigths'"});
  expect_parts(error_of(parse("routing:\n  weights: {queue: 1, load: 2}\n")),
               {"c.yaml:2:", "routing.weights", "key 'load'"});
  expect_parts(error_of(parse("health: {interval: 1}\n")), {"c.yaml:1:", "health", "key 'interval'"});
  expect_parts(error_of(parse("retry: {attempts: 1}\n")), {"retry", "key 'attempts'"});
  expect_parts(error_of(parse("quota:\n  window: 60\n")), {"c.yaml:2:", "quota", "key 'window'"});
}

TEST(GatewayConfig, DuplicateUpstreamName) {
  const std::string msg = error_of(parse(
      "upstreams:\n  - {name: a, url: 'http://h:1', chip: c}\n  - {name: b, url: 'http://h:2', chip: c}\n"
      "  - {name: a, url: 'http://h:3', chip: c}\n"));
  expect_parts(msg, {"c.yaml:4:", "upstream 'a'", "key 'name'", "used twice"});
}

TEST(GatewayConfig, DuplicateTenantName) {
  const std::string msg =
      error_of(parse("tenants:\n  - {name: t, key_file: a.txt}\n  - {name: u, key_file: b.txt}\n"
                     "  - {name: t, key_file: c.txt}\n"));
  expect_parts(msg, {"c.yaml:4:", "tenant 't'", "key 'name'", "used twice"});
}

TEST(GatewayConfig, BadUpstreamUrlNamesUpstreamAndUrl) {
  const std::string msg = error_of(parse(
      "upstreams:\n  - name: gpu-1\n    url: https://h:443\n    chip: c\n"));
  expect_parts(msg, {"c.yaml:3:", "upstream 'gpu-1'", "key 'url'", "https://h:443", "http://"});
  expect_parts(error_of(parse("upstreams:\n  - {name: n, url: 'http://h:70000', chip: c}\n")),
               {"upstream 'n'", "key 'url'", "bad port"});
  expect_parts(error_of(parse("upstreams:\n  - {name: n, url: 'http://h:80/v1', chip: c}\n")),
               {"upstream 'n'", "key 'url'", "no path"});
}

TEST(GatewayConfig, MaxInFlightZeroIsRefused) {
  const std::string msg =
      error_of(parse("upstreams:\n  - name: n\n    url: http://h:1\n    chip: c\n    max_in_flight: 0\n"));
  expect_parts(msg, {"c.yaml:5:", "upstream 'n'", "key 'max_in_flight'", "at least 1"});
  expect_parts(error_of(parse("upstreams:\n  - {name: n, url: 'http://h:1', chip: c, max_in_flight: -2}\n")),
               {"upstream 'n'", "key 'max_in_flight'", "negative"});
  expect_parts(error_of(parse("upstreams:\n  - {name: n, url: 'http://h:1', chip: c, devices: 1.5}\n")),
               {"upstream 'n'", "key 'devices'", "whole number"});
}

TEST(GatewayConfig, SpeedAlphaOutOfRange) {
  for (const char* bad : {"0", "1.5", "2"}) {
    SCOPED_TRACE(bad);
    expect_parts(error_of(parse(std::string("routing:\n  speed_alpha: ") + bad + "\n")),
                 {"c.yaml:2:", "routing", "key 'speed_alpha'", "(0, 1]"});
  }
  expect_parts(error_of(parse("routing: {speed_alpha: -0.1}\n")), {"routing", "key 'speed_alpha'"});
  EXPECT_DOUBLE_EQ(parse_cluster_config("routing: {speed_alpha: 1}\n", "c.yaml", "").routing.speed_alpha, 1.0);
}

TEST(GatewayConfig, MarginMustBeBelowOne) {
  expect_parts(error_of(parse("quota:\n  margin: 1\n")), {"c.yaml:2:", "quota", "key 'margin'", "below 1"});
  expect_parts(error_of(parse("quota: {margin: 1.5}\n")), {"quota", "key 'margin'"});
  expect_parts(error_of(parse("quota: {margin: -0.1}\n")), {"quota", "key 'margin'", "negative"});
  EXPECT_DOUBLE_EQ(parse_cluster_config("quota: {margin: 0.99}\n", "c.yaml", "").quota.margin, 0.99);
}

TEST(GatewayConfig, PositiveNumbersAndCounts) {
  expect_parts(error_of(parse("quota: {window_s: 0}\n")), {"quota", "key 'window_s'", "greater than 0"});
  expect_parts(error_of(parse("health: {open_s: 0}\n")), {"health", "key 'open_s'", "greater than 0"});
  expect_parts(error_of(parse("health: {failure_threshold: 0}\n")), {"health", "key 'failure_threshold'"});
  expect_parts(error_of(parse("retry: {max_attempts: 0}\n")), {"retry", "key 'max_attempts'"});
  expect_parts(error_of(parse("heartbeat_timeout_s: 0\n")), {"c.yaml:1:", "key 'heartbeat_timeout_s'"});
  expect_parts(error_of(parse("io_threads: 0\n")), {"io_threads", "at least 1"});
  expect_parts(error_of(parse("upstream_threads: 0\n")), {"at least 1"});
  expect_parts(error_of(parse("usage_interval_s: -1\n")), {"key 'usage_interval_s'"});
}

// upstream_threads: 0 is refused, but the message blames key 'io_threads' (one check covers both keys).
TEST(GatewayConfig, UpstreamThreadsErrorNamesItsOwnKey) {
  const std::string msg = error_of(parse("io_threads: 4\nupstream_threads: 0\n"));
  expect_parts(msg, {"key 'upstream_threads'"});
  EXPECT_EQ(msg.find("key 'io_threads'"), std::string::npos) << msg;
}

TEST(GatewayConfig, TenantBurstDefaultsToTheRate) {
  const ClusterConfig c =
      parse_cluster_config("tenants:\n  - {name: t, key_file: k, requests_per_s: 2.5}\n", "c.yaml", "/etc/gw");
  ASSERT_EQ(c.tenants.size(), 1u);
  EXPECT_DOUBLE_EQ(c.tenants[0].burst, 2.5);
  EXPECT_EQ(c.tenants[0].key_file, "/etc/gw/k");
  expect_parts(error_of(parse("tenants:\n  - {name: t, key_file: k, requests_per_s: -1}\n")),
               {"tenant 't'", "key 'requests_per_s'"});
}

// A rate-limited tenant needs a whole token to make a request: with burst < 1 its bucket never holds
// one, so every request is refused (with a Retry-After that is never honoured). The parser accepts it.
TEST(GatewayConfig, TenantBurstBelowOneIsRefused) {
  for (const char* burst : {"0", "0.5"}) {
    SCOPED_TRACE(burst);
    expect_parts(error_of(parse(std::string("tenants:\n  - {name: t, key_file: k, requests_per_s: 2, burst: ") + burst +
                                "}\n")),
                 {"tenant 't'", "key 'burst'"});
  }
}

TEST(GatewayConfig, MissingRequiredUpstreamKeys) {
  expect_parts(error_of(parse("upstreams:\n  - {url: 'http://h:1', chip: c}\n")),
               {"c.yaml:2:", "upstream", "key 'name'", "required"});
  expect_parts(error_of(parse("upstreams:\n  - {name: a, chip: c}\n")),
               {"c.yaml:2:", "upstream 'a'", "key 'url'", "required"});
  expect_parts(error_of(parse("upstreams:\n  - {name: a, url: 'http://h:1'}\n")),
               {"c.yaml:2:", "upstream 'a'", "key 'chip'", "required"});
  expect_parts(error_of(parse("tenants:\n  - {name: t}\n")), {"tenant 't'", "key 'key_file'", "required"});
  expect_parts(error_of(parse("tenants:\n  - {key_file: k}\n")), {"tenant", "key 'name'", "required"});
}

TEST(GatewayConfig, UpstreamsMustBeAListOfMappings) {
  expect_parts(error_of(parse("upstreams:\n  name: a\n")), {"c.yaml:2:", "key 'upstreams'", "expected a list"});
  expect_parts(error_of(parse("upstreams: http://h:1\n")), {"key 'upstreams'", "expected a list"});
  expect_parts(error_of(parse("upstreams:\n  - http://h:1\n")), {"c.yaml:2:", "upstream", "mapping"});
  expect_parts(error_of(parse("tenants: {name: t}\n")), {"key 'tenants'", "expected a list"});
  expect_parts(error_of(parse("upstreams:\n  - {name: a, url: 'http://h:1', chip: c, models: qwen}\n")),
               {"upstream 'a'", "key 'models'", "expected a list"});
  expect_parts(error_of(parse("upstreams:\n  - {name: a, url: 'http://h:1', chip: c, models: ['']}\n")),
               {"upstream 'a'", "key 'models'", "non-empty"});
}

TEST(GatewayConfig, SyntaxErrorsAndNonMappings) {
  expect_parts(error_of(parse("upstreams: [\n")), {"c.yaml"});
  expect_parts(error_of(parse("- a\n- b\n")), {"c.yaml", "mapping"});
}

}  // namespace
}  // namespace mixserve::gateway

// The gateway's configuration (cluster.yaml): where it listens, the fleet and policy it answers to,
// its static upstreams, routing weights, health checking, retries, the quota controller, tenants and
// tokens. Schema: docs/gateway.md. Relative paths are resolved against the file's folder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mixserve::gateway {

/// host and port of an http:// URL.
struct Endpoint {
  std::string host;   ///< name or address
  uint16_t port = 0;  ///< TCP port
  /// "http://host:port".
  std::string url() const;
};

/// Parses "http://host:port" (a trailing '/' is allowed; no path, no https); throws kInvalidArgument.
/// Port 0 (any free port) only when `allow_any_port`, for listening addresses.
Endpoint parse_http_url(const std::string& url, bool allow_any_port = false);

/// One upstream declared in the configuration (a mixserve node or any OpenAI-compatible engine).
struct UpstreamConfig {
  std::string name;                 ///< unique; shown in x-mixserve-upstream
  Endpoint endpoint;                ///< where it listens
  std::string chip;                 ///< catalogue id of its accelerator
  int64_t devices = 1;              ///< accelerators it runs on (weights device-hours)
  std::vector<std::string> models;  ///< models it serves; empty = learnt from /v1/node or /v1/models
  std::string api_key;              ///< Bearer key sent to it (from api_key_file); empty = none
  int64_t max_in_flight = 64;       ///< requests the gateway sends it at once; more wait or go elsewhere
  std::string node;                 ///< machine it runs on (joined replicas of a model host; "" = name)
  std::string admin_url;            ///< that machine's admin API for placement ("" = none)
};

/// Weights of the routing score (docs/gateway.md, "Routing").
struct RoutingWeights {
  double queue = 1.0;     ///< penalty per unit of load (in flight / capacity)
  double kv = 0.5;        ///< penalty per unit of KV-cache use reported by the node
  double speed = 1.0;     ///< bonus for measured tokens/s relative to the fastest candidate
  double affinity = 0.5;  ///< bonus for the upstream the prompt prefix hashes to
};

/// Routing settings.
struct RoutingConfig {
  RoutingWeights weights;              ///< score weights
  size_t affinity_prefix_chars = 256;  ///< prompt characters that form the affinity key
  double speed_alpha = 0.2;            ///< weight of the newest sample in the tokens/s moving average
};

/// Active health checks and circuit breaking.
struct HealthConfig {
  double interval_s = 2;      ///< between checks of each upstream
  double timeout_s = 2;       ///< of one check
  int failure_threshold = 3;  ///< consecutive failures that open the circuit
  double open_s = 5;          ///< how long an open circuit refuses traffic before a trial
};

/// Retries of requests that failed before any byte reached the client.
struct RetryConfig {
  int max_attempts = 3;     ///< attempts per request, first one included
  double backoff_s = 0.05;  ///< before the 2nd attempt; doubles each time
  double connect_timeout_s = 2;        ///< to connect to an upstream
  double first_byte_timeout_s = 300;   ///< from sending to the response header
  double idle_timeout_s = 120;         ///< between two pieces of a response body
};

/// The quota controller (docs/gateway.md, "Quota").
struct QuotaConfig {
  double window_s = 60;         ///< sliding window the share is kept over
  double queue_timeout_s = 10;  ///< enforce mode: how long a request may wait for domestic capacity before 429
  double margin = 0.0;          ///< extra share kept above the threshold, against estimate errors
};

/// A tenant: its keys and limits.
struct TenantConfig {
  std::string name;              ///< shown in logs and metrics
  std::string key_file;          ///< Bearer keys of the tenant, one per line (serve's --api-key-file format)
  double requests_per_s = 0;     ///< sustained rate (0 = unlimited)
  double burst = 1;              ///< bucket size, >= 1 (the file's default: max(1, requests_per_s))
  size_t max_body_bytes = 0;     ///< 0 = the listener's limit
};

/// The whole configuration.
struct ClusterConfig {
  std::string origin;                        ///< the file read ("" for text)
  Endpoint listen{"127.0.0.1", 9000};        ///< front door
  std::string fleet_file;                    ///< fleet.yaml ("" = none)
  std::string policy_file;                   ///< policy.yaml ("" = no quota)
  std::vector<std::string> catalogue_files;  ///< catalogue override files
  std::string home_country;                  ///< "" = the fleet's, else CN
  std::string ledger_file;                   ///< usage and decisions are appended here ("" = none)
  double usage_interval_s = 60;              ///< between usage records in the ledger
  std::vector<UpstreamConfig> upstreams;     ///< static upstreams
  RoutingConfig routing;
  HealthConfig health;
  RetryConfig retry;
  QuotaConfig quota;
  std::vector<TenantConfig> tenants;         ///< empty = no tenant keys required
  std::string admin_token_file;              ///< admin tokens ("" = admin endpoints disabled)
  std::string join_token_file;               ///< node join tokens ("" = joining disabled)
  std::string node_admin_token_file;         ///< token the gateway sends to nodes' admin APIs (placement apply)
  double heartbeat_timeout_s = 10;           ///< a joined node silent this long is removed
  int io_threads = 2;                        ///< front-door I/O threads
  int upstream_threads = 2;                  ///< upstream I/O threads
  size_t max_body_bytes = 8u << 20;          ///< front-door body limit
  double request_timeout_s = 30;             ///< a whole request must arrive within this
  size_t max_connections = 4096;             ///< front-door connection cap
};

/// Parses cluster YAML; `origin` names it in errors and `base_dir` resolves relative paths.
/// Throws kInvalidArgument naming origin, line, entry and key; kNotFound for unreadable key files.
ClusterConfig parse_cluster_config(const std::string& text, const std::string& origin, const std::string& base_dir);
/// Reads and parses a cluster file.
ClusterConfig load_cluster_config(const std::string& path);

}  // namespace mixserve::gateway

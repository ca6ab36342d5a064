#include <pthread.h>

#include <csignal>

#include "cli/commands.h"
#include "cli/signals.h"
#include "common/log.h"
#include "gateway/cluster_config.h"
#include "gateway/gateway.h"

namespace mixserve::cli {
namespace {

struct GatewayFlags {
  std::string config;
  std::string listen;
  double drain_timeout_s = 30;
};

void gateway_until_signal(const GatewayFlags& f) {
  sigset_t signals = block_termination_signals();

  gateway::ClusterConfig config = gateway::load_cluster_config(f.config);
  if (!f.listen.empty()) config.listen = gateway::parse_http_url("http://" + f.listen, true);
  const std::string host = config.listen.host;
  const size_t n_upstreams = config.upstreams.size();
  gateway::Gateway gw(std::move(config));
  for (const auto& why : gw.ignored_rules()) log_warn("gateway: policy ", why);
  const uint16_t port = gw.start();
  log_info("gateway over ", n_upstreams, " configured upstreams on http://", host, ":", port);
  int signal = 0;
  sigwait(&signals, &signal);
  log_info("received ", signal == SIGINT ? "SIGINT" : "SIGTERM", "; draining");
  gw.shutdown(f.drain_timeout_s);
  log_info("gateway stopped");
}

}  // namespace

void add_gateway_command(CLI::App& app) {
  auto flags = std::make_shared<GatewayFlags>();
  auto* cmd = app.add_subcommand("gateway", "one OpenAI-compatible front door over a mixed fleet (docs/gateway.md)");
  cmd->add_option("--config", flags->config, "cluster.yaml: upstreams, policy, routing, tokens")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--listen", flags->listen, "host:port to listen on, overriding the file's listen (port 0 = any)");
  cmd->add_option("--drain-timeout", flags->drain_timeout_s, "on SIGTERM, seconds requests in flight may take")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  cmd->callback([flags] { gateway_until_signal(*flags); });
}

}  // namespace mixserve::cli

#include <cstdio>

#include "cli/bench_serve.h"
#include <thread>
#include "gateway/gateway.h"
#include "gateway/overhead_bench.h"
#include "serve/server.h"

namespace mixserve::cli {

void GatewayBenchFlags::add_to(CLI::App* cmd) {
  cmd->add_flag("--gateway", enabled,
                "benchmark the gateway instead: serve the model on loopback, put a gateway in front, and send the "
                "same open-loop load to both (added latency p50/p99), then find the requests/s it sustains");
  cmd->add_option("--rates", rates, "offered requests/s of the open-loop runs (both paths together)")
      ->delimiter(',')
      ->check(CLI::Range(1.0, 100000.0))
      ->capture_default_str();
  cmd->add_option("--gateway-seconds", seconds, "length of each run")->check(CLI::Range(0.5, 600.0))->capture_default_str();
}

void bench_gateway(const ModelFlags& model_flags, const GatewayBenchFlags& f) {
  auto model = model_flags.load();
  if (!model) return;
  serve::ServeOptions node;
  node.http.port = 0;
  node.model_id = "bench";
  node.chip = "huawei-ascend-910b";
  node.scheduler.max_seqs = 64;
  node.scheduler.max_queue = 1024;
  node.http.max_connections = 4096;
  serve::Server server(*model, model_flags.path, node);
  const uint16_t node_port = server.start();

  gateway::ClusterConfig config;
  config.listen = {"127.0.0.1", 0};
  config.max_connections = 4096;
  gateway::UpstreamConfig upstream;
  upstream.name = "node";
  upstream.endpoint = {"127.0.0.1", node_port};
  upstream.chip = node.chip;
  upstream.max_in_flight = 1024;
  config.upstreams.push_back(upstream);
  gateway::Gateway gw(config);
  const uint16_t gw_port = gw.start();

  const std::string body = R"({"model":"bench","prompt":"hello","max_tokens":1,"temperature":0})";
  std::printf("gateway: one node (%s on %s) at :%u, gateway at :%u; non-streamed completions of 1 token; machine: "
              "%s, %d logical CPUs shared by node, gateway and load generator\n",
              model->config().name.c_str(), model->device().info().id.c_str(), node_port, gw_port,
              model->device().info().name.c_str(), static_cast<int>(std::thread::hardware_concurrency()));
  std::printf("%10s %10s %6s | %10s %10s | %10s %10s | %10s %10s\n", "offered/s", "done/s", "late", "direct p50",
              "direct p99", "gw p50", "gw p99", "added p50", "added p99");
  for (double rate : f.rates) {
    gateway::OverheadOptions o;
    o.direct_port = node_port;
    o.gateway_port = gw_port;
    o.body = body;
    o.rate = rate;
    o.seconds = f.seconds;
    const auto r = gateway::run_overhead(o);
    std::printf("%10.0f %10.1f %5.1f%% | %8.3fms %8.3fms | %8.3fms %8.3fms | %8.3fms %8.3fms%s\n", r.offered_rate,
                r.achieved_rate, r.late_fraction * 100, r.direct.p50 * 1e3, r.direct.p99 * 1e3,
                r.via_gateway.p50 * 1e3, r.via_gateway.p99 * 1e3, (r.via_gateway.p50 - r.direct.p50) * 1e3,
                (r.via_gateway.p99 - r.direct.p99) * 1e3,
                r.direct.failed + r.via_gateway.failed > 0 ? "  (failures!)" : "");
  }
  for (int clients : {16, 64}) {
    int64_t failed = 0;
    const double direct = gateway::run_closed_loop(node_port, body, clients, f.seconds, &failed);
    const double via = gateway::run_closed_loop(gw_port, body, clients, f.seconds, &failed);
    std::printf("closed loop, %d clients: node alone %.0f req/s, through the gateway %.0f req/s%s\n", clients, direct, via,
                failed > 0 ? " (failures!)" : "");
  }
  gw.shutdown(5);
  server.shutdown();
}

}  // namespace mixserve::cli

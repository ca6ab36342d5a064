// `mixserve bench --serve`: the serving benchmark (cmd_bench_serve.cpp); `mixserve bench --gateway`:
// the gateway's overhead against calling a node directly (cmd_bench_gateway.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/model_flags.h"

namespace mixserve::cli {

/// Settings of the serving benchmark.
struct ServeBenchFlags {
  bool enabled = false;                        ///< --serve given
  std::vector<int> concurrency = {1, 4, 16, 64};  ///< streams at once, one test each
  int prompt_words = 64;                       ///< prompt length in words
  int max_tokens = 64;                         ///< generated tokens per request
  int rounds = 2;                              ///< requests per client
  int64_t batch_tokens = 0;                    ///< the server's tokens per step (0 = its default)

  /// Registers --serve, --concurrency, --serve-prompt, --serve-gen, --serve-rounds,
  /// --serve-batch-tokens on `cmd`.
  void add_to(CLI::App* cmd);
};

/// Loads the model, serves it on loopback and runs one load test per concurrency level.
void bench_serve(const ModelFlags& model, const ServeBenchFlags& flags);

/// Settings of the gateway benchmark.
struct GatewayBenchFlags {
  bool enabled = false;                       ///< --gateway given
  std::vector<double> rates = {250, 500, 1000};  ///< offered requests/s, one open-loop run each
  double seconds = 5;                         ///< length of each run

  /// Registers --gateway, --rates, --gateway-seconds on `cmd`.
  void add_to(CLI::App* cmd);
};

/// Serves the model on loopback behind a gateway and measures the gateway's added latency and capacity.
void bench_gateway(const ModelFlags& model, const GatewayBenchFlags& flags);

}  // namespace mixserve::cli

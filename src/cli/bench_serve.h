// `mixserve bench --serve`: the serving benchmark (cmd_bench_serve.cpp).
#pragma once

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

  /// Registers --serve, --concurrency, --serve-prompt, --serve-gen, --serve-rounds on `cmd`.
  void add_to(CLI::App* cmd);
};

/// Loads the model, serves it on loopback and runs one load test per concurrency level.
void bench_serve(const ModelFlags& model, const ServeBenchFlags& flags);

}  // namespace mixserve::cli

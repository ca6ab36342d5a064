// Prefill/decode throughput of a model (llama-bench style) and the rooflines it is held against.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "engine/model.h"
#include "hal/op_profile.h"

namespace mixserve {

/// Settings of a benchmark run.
struct BenchOptions {
  int64_t n_prompt = 512;      ///< tokens of the prefill test (pp); 0 skips it
  int64_t n_gen = 128;         ///< tokens of the decode test (tg); 0 skips it
  int64_t depth = 0;           ///< tokens already in the context before each pp and tg run (llama-bench's -d):
                               ///< random tokens, evaluated untimed
  int repetitions = 3;         ///< runs of each test (>= 1)
  uint64_t seed = 1;           ///< random token ids
  int64_t batch = 1;           ///< > 1 adds a batched decode test: this many sequences decode n_gen tokens
                               ///< together (continuous batching, paged KV cache)
  bool profile = false;        ///< time every op of the measured runs (BenchResult::prefill_profile, decode_profile)
  std::function<double()> probe_bandwidth;  ///< when set: measures the memory read bandwidth (bytes/s) right
                                            ///< before and right after each measured decode run
};

/// Mean and standard deviation of a series.
struct Stat {
  double mean = 0.0;
  double stdev = 0.0;
};
/// Mean and sample standard deviation (0 for fewer than two values).
Stat stat_of(const std::vector<double>& values);

/// Measured throughputs.
struct BenchResult {
  std::vector<double> prefill_tps;  ///< tokens/s of each pp run
  std::vector<double> decode_tps;   ///< tokens/s of each tg run
  std::vector<double> bandwidth_around_decode;  ///< per tg run, the mean of the probes just before and after it
                                                ///< (bytes/s; empty without probe_bandwidth)
  double best_bandwidth = 0;                    ///< the highest of those probes (bytes/s)
  std::vector<double> batch_decode_tps;  ///< aggregate tokens/s of each batched tg run (all sequences)
  double prefill_flops_per_token = 0;  ///< multiply-adds x 2 of one prefill token (mean context)
  double decode_bytes_per_token = 0;   ///< weight + KV-cache bytes read per decoded token (mean context)
  int64_t context_at_start = 0;        ///< tokens in the context as the last timed test started (the depth)
  /// With BenchOptions::profile: the ops of all measured prefill and decode runs (`profiled`:
  /// whether every device timed its ops).
  hal::OpProfile prefill_profile;
  hal::OpProfile decode_profile;
  bool profiled = false;
};

/// Runs pp then tg `repetitions` times, each from a context of `depth` tokens (empty by default); a
/// warm-up run precedes them. The batched decode test (batch > 1) starts from empty contexts.
BenchResult run_benchmark(const Model& model, const BenchOptions& options);

}  // namespace mixserve

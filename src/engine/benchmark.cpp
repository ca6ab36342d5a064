#include "engine/benchmark.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "common/error.h"
#include "common/timer.h"
#include "engine/batch_runner.h"
#include "engine/session.h"

namespace mixserve {
namespace {

std::vector<int32_t> random_tokens(int64_t n, int64_t n_vocab, std::mt19937_64& rng) {
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (auto& t : out) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(n_vocab));
  return out;
}

// Multiply-adds of the weight matrices per token, plus attention over `ctx` cached positions.
double flops_per_token(const ModelConfig& c, double ctx) {
  const double q_dim = static_cast<double>(c.n_head * c.head_dim);
  const double kv_dim = static_cast<double>(c.n_head_kv * c.head_dim);
  const double e = static_cast<double>(c.n_embd);
  const double per_layer = e * q_dim * 2 + e * kv_dim * 2 + 3 * e * static_cast<double>(c.n_ff) + 2 * ctx * q_dim;
  return 2.0 * (per_layer * static_cast<double>(c.n_layer) + e * static_cast<double>(c.n_vocab));
}

}  // namespace

Stat stat_of(const std::vector<double>& values) {
  Stat s;
  if (values.empty()) return s;
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  if (values.size() < 2) return s;
  double sq = 0;
  for (double v : values) sq += (v - s.mean) * (v - s.mean);
  s.stdev = std::sqrt(sq / static_cast<double>(values.size() - 1));
  return s;
}

namespace {

// Seconds for `batch` sequences (one random prompt token each, prefilled first) to decode n_gen
// tokens together, one BatchRunner step per token.
double batched_decode_seconds(const Model& model, const BenchOptions& options, std::mt19937_64& rng) {
  const int64_t n_vocab = model.config().n_vocab;
  BatchRunner runner(model, {.max_batch_tokens = options.batch,
                             .max_seq_len = options.n_gen + 1,
                             .kv_blocks = options.batch * ((options.n_gen + 1 + 15) / 16),
                             .block_size = 16,
                             .prefix_cache = false});
  std::vector<StepInput> inputs(static_cast<size_t>(options.batch));
  for (auto& in : inputs) {
    in.seq = runner.add_sequence();
    in.tokens = random_tokens(1, n_vocab, rng);
  }
  runner.step(inputs);
  Stopwatch watch;
  for (int64_t i = 0; i < options.n_gen; ++i) {
    for (auto& in : inputs) in.tokens = random_tokens(1, n_vocab, rng);
    runner.step(inputs);
  }
  return watch.seconds();
}

}  // namespace

BenchResult run_benchmark(const Model& model, const BenchOptions& options) {
  if (options.repetitions < 1) fail(ErrorCode::kInvalidArgument, "repetitions must be >= 1");
  if (options.n_prompt < 0 || options.n_gen < 0 || options.depth < 0) {
    fail(ErrorCode::kInvalidArgument, "token counts and the depth must be >= 0");
  }
  if (options.batch < 1 || options.batch > 1024) fail(ErrorCode::kInvalidArgument, "batch must be in [1, 1024]");
  const ModelConfig& c = model.config();
  const int64_t need = options.depth + std::max(options.n_prompt, options.n_gen);
  if (need > c.n_ctx_train) {
    fail(ErrorCode::kInvalidArgument, "benchmark needs ", need, " tokens of context",
         options.depth > 0 ? " (depth included)" : "", "; the model has ", c.n_ctx_train);
  }
  // The depth's tokens go in batches of up to 512 when the prefill test's are fewer.
  const int64_t n_batch = std::max<int64_t>({options.n_prompt, std::min<int64_t>(options.depth, 512), 1});
  Session session(model, {.n_ctx = std::max<int64_t>(need, 1), .n_batch = n_batch});
  std::mt19937_64 rng(options.seed);
  BenchResult r;
  const double kv_row_bytes =
      static_cast<double>(*dtype_row_bytes(model.options().cache_type, c.n_head_kv * c.head_dim)) * 2 *
      static_cast<double>(c.n_layer);
  const auto depth = static_cast<double>(options.depth);
  r.prefill_flops_per_token = flops_per_token(c, depth + static_cast<double>(options.n_prompt) / 2.0);
  r.decode_bytes_per_token =
      static_cast<double>(model.bytes_per_token()) + kv_row_bytes * (depth + static_cast<double>(options.n_gen) / 2.0);
  // A fresh context holding `depth` random tokens.
  const auto start_at_depth = [&] {
    session.reset();
    if (options.depth > 0) session.eval(random_tokens(options.depth, c.n_vocab, rng));
    r.context_at_start = session.n_past();
  };

  for (int rep = -1; rep < options.repetitions; ++rep) {  // rep -1 is the warm-up
    if (options.n_prompt > 0) {
      const auto tokens = random_tokens(options.n_prompt, c.n_vocab, rng);
      start_at_depth();
      if (options.profile && rep >= 0) r.profiled = session.set_profile(&r.prefill_profile);
      Stopwatch watch;
      session.eval(tokens);
      const double seconds = watch.seconds();
      session.set_profile(nullptr);
      if (rep >= 0) r.prefill_tps.push_back(static_cast<double>(options.n_prompt) / seconds);
    }
    if (options.n_gen > 0) {
      const auto tokens = random_tokens(options.n_gen, c.n_vocab, rng);
      start_at_depth();
      const bool probe = rep >= 0 && options.probe_bandwidth;
      const double before = probe ? options.probe_bandwidth() : 0;
      if (options.profile && rep >= 0) r.profiled = session.set_profile(&r.decode_profile);
      Stopwatch watch;
      for (int64_t i = 0; i < options.n_gen; ++i) session.eval(std::span<const int32_t>(&tokens[static_cast<size_t>(i)], 1));
      const double seconds = watch.seconds();
      session.set_profile(nullptr);
      if (rep >= 0) r.decode_tps.push_back(static_cast<double>(options.n_gen) / seconds);
      if (probe) {
        const double after = options.probe_bandwidth();
        r.bandwidth_around_decode.push_back((before + after) / 2);
        r.best_bandwidth = std::max({r.best_bandwidth, before, after});
      }
    }
    if (options.batch > 1 && options.n_gen > 0) {
      const double seconds = batched_decode_seconds(model, options, rng);
      if (rep >= 0) r.batch_decode_tps.push_back(static_cast<double>(options.batch * options.n_gen) / seconds);
    }
  }
  return r;
}

}  // namespace mixserve

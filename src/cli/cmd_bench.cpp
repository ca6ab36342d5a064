#include <algorithm>
#include <cstdio>

#include "backends/cpu/machine_probe.h"
#include "cli/bench_serve.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/model_flags.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "engine/benchmark.h"

namespace mixserve::cli {
namespace {

// Probes this far apart (highest / lowest) say the machine changed during the runs.
constexpr double kMovedBandwidth = 1.25;
// Round trips of each thread-handoff probe: about 4 ms at 200 ns one way.
constexpr int kHandoffRoundTrips = 10000;

struct BenchFlags {
  ModelFlags model;
  BenchOptions bench;
  size_t probe_bytes = size_t{1} << 30;
  ServeBenchFlags serve;
  GatewayBenchFlags gateway;
};

// A test's name as llama-bench prints it: "tg128", or "tg128 @ d2048" after 2048 tokens of depth.
std::string test_name(const char* kind, int64_t tokens, int64_t depth) {
  return str_cat(kind, tokens, depth > 0 ? str_cat(" @ d", depth) : std::string());
}

// The matrix products of a decoded token by weights: each reads its weights once per token, so
// their bytes over its time is the speed it streams them at, set against the best probe.
void print_product_profile(const hal::OpProfile& p, double tokens, double per_token, double bandwidth) {
  if (p.products.empty()) return;
  std::vector<const std::pair<const hal::ProductShape, hal::ProductStats>*> rows;
  for (const auto& e : p.products) rows.push_back(&e);
  std::sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->second.seconds > b->second.seconds; });
  std::printf("matrix products by weights, per token (weight bytes / time, against the best probe, %.2f GB/s):\n",
              bandwidth / 1e9);
  std::printf("  %-28s %-5s %14s %10s %10s %8s %9s %7s\n", "weights", "type", "k x rows", "jobs/token", "us/token",
              "GB/s", "of probe", "share");
  for (const auto* e : rows) {
    const hal::ProductShape& shape = e->first;
    const hal::ProductStats& st = e->second;
    const double gbps = st.seconds > 0 ? static_cast<double>(st.weight_bytes) / st.seconds / 1e9 : 0.0;
    const std::string dims = std::to_string(shape.k) + " x " + std::to_string(shape.rows);
    std::printf("  %-28s %-5s %14s %10.1f %10.1f %8.1f %8.1f%% %6.1f%%\n", shape.weight_names.c_str(),
                std::string(dtype_name(shape.dtype)).c_str(), dims.c_str(), static_cast<double>(st.jobs) / tokens,
                st.seconds / tokens * 1e6, gbps, bandwidth > 0 ? 100.0 * gbps * 1e9 / bandwidth : 0.0,
                100.0 * st.seconds / tokens / per_token);
  }
}

// Where a token's time went in the runs of one test, op kind by op kind (`seconds`: the runs'
// wall time); ops counted per `unit` (a decode token, or a whole prefill run: `units` of them).
void print_op_profile(const hal::OpProfile& p, const char* test, double tokens, double seconds, const char* unit,
                      double units) {
  const double per_token = seconds / tokens;
  std::vector<size_t> kinds;
  for (size_t k = 0; k < hal::kOpKindCount; ++k) {
    if (p.ops[k] > 0) kinds.push_back(k);
  }
  std::sort(kinds.begin(), kinds.end(), [&](size_t a, size_t b) { return p.seconds[a] > p.seconds[b]; });
  std::printf("profile of the %s runs, per token (%.1f us in all; each op timed from its start to its end):\n", test,
              per_token * 1e6);
  // A CPU stream times ops one job at a time: a decoding graph does not run as one task then.
  std::printf("  (timed runs go op by op, a fork and join per job: their tokens/s are below an untimed run's)\n");
  std::printf("  %-12s %10s %12s %8s\n", "op", str_cat("ops/", unit).c_str(), "us/token", "share");
  for (size_t k : kinds) {
    const double s = p.seconds[k] / tokens;
    std::string note;  // ops a stream ran inside the products' jobs (fused) have no time of their own
    if (p.fused[k] == p.ops[k]) {
      note = "  (inside the matrix products' jobs, timed there)";
    } else if (p.fused[k] > 0) {
      char n[32];
      std::snprintf(n, sizeof(n), "%.1f", static_cast<double>(p.fused[k]) / units);
      note = str_cat("  (", n, " of them inside the matrix products' jobs, timed there)");
    }
    std::printf("  %-12s %10.1f %12.1f %7.1f%%%s\n", std::string(hal::op_name(static_cast<hal::OpKind>(k))).c_str(),
                static_cast<double>(p.ops[k]) / units, s * 1e6, 100.0 * s / per_token, note.c_str());
  }
  const double outside = std::max(0.0, per_token - p.total_seconds() / tokens);
  std::printf("  %-12s %10s %12.1f %7.1f%%  (graph set-up, host copies, reading the logits)\n", "between ops", "",
              outside * 1e6, 100.0 * outside / per_token);
}

// Where a prefill and a decoded token's time went (BenchOptions::profile): the op kinds of each
// test, then the decode's matrix products by weights.
void print_profiles(const BenchResult& r, const BenchOptions& o, double bandwidth) {
  if (!r.profiled) {
    std::printf("profile: not every device of this model times its ops; no profile\n");
    return;
  }
  const auto total = [](const std::vector<double>& tps, int64_t n) {
    double seconds = 0;
    for (double t : tps) seconds += static_cast<double>(n) / t;
    return seconds;
  };
  const double pp_tokens = static_cast<double>(o.n_prompt) * static_cast<double>(r.prefill_tps.size());
  if (pp_tokens > 0) {
    print_op_profile(r.prefill_profile, "prefill", pp_tokens, total(r.prefill_tps, o.n_prompt), "run",
                     static_cast<double>(r.prefill_tps.size()));
  }
  const double tg_tokens = static_cast<double>(o.n_gen) * static_cast<double>(r.decode_tps.size());
  if (tg_tokens > 0) {
    const double seconds = total(r.decode_tps, o.n_gen);
    print_op_profile(r.decode_profile, "decode", tg_tokens, seconds, "token", tg_tokens);
    print_product_profile(r.decode_profile, tg_tokens, seconds / tg_tokens, bandwidth);
  }
}

void bench(const BenchFlags& f) {
  if (f.serve.enabled) return bench_serve(f.model, f.serve);
  if (f.gateway.enabled) return bench_gateway(f.model, f.gateway);
  auto model = f.model.load();
  if (!model) return;
  const ModelConfig& c = model->config();
  const auto dev = model->device().info();
  const DType wtype = model->weights().layers.empty() ? model->weights().output.dtype
                                                       : model->weights().layers[0].wq.dtype;
  ThreadPool pool(f.model.threads);
  std::printf("model:   %s (%s, %lld layers, %s, %s of weights, %s KV cache)\n", c.name.c_str(), c.arch.c_str(),
              static_cast<long long>(c.n_layer), std::string(dtype_name(wtype)).c_str(),
              human_bytes(static_cast<double>(model->weight_bytes())).c_str(),
              std::string(dtype_name(model->options().cache_type)).c_str());
  std::printf("device:  %s (%s), %d threads, %s\n", dev.id.c_str(), dev.name.c_str(), pool.size(),
              dev.details.c_str());
  if (model->placement().devices.size() > 1) {
    std::printf("schedule: %s (%lld of %lld ops per step fall back)\n", model->placement().describe().c_str(),
                static_cast<long long>(model->op_table().fallbacks()), static_cast<long long>(model->op_table().total()));
  }
  std::fflush(stdout);

  // Physical limits measured with the same number of threads the model runs with.
  const double bandwidth_before = cpu::measure_read_bandwidth(pool, f.probe_bytes, 5);
  const double peak_f32 = cpu::measure_peak_flops_f32(pool);
  const double peak_int8 = cpu::measure_peak_ops_int8(pool);
  const bool int8_path = wtype == DType::kQ8_0 || wtype == DType::kQ4_0;
  const double peak = int8_path ? peak_int8 : peak_f32;
  std::printf("machine: peak %.1f GFLOP/s f32 FMA, %.1f GOP/s int8\n", peak_f32 / 1e9, peak_int8 / 1e9);
  const double handoff_before = cpu::measure_handoff_latency(pool, kHandoffRoundTrips);
  std::fflush(stdout);

  // Shared hosts drift (this project's VM has read 34 and 62 GB/s minutes apart): a smaller probe
  // also runs right before and after each decode run, so each run can be held against the
  // bandwidth of its own moment as well as against the best seen.
  BenchOptions options = f.bench;
  // Half the buffer at most: at 256 MiB this VM's 320 MiB last-level cache lifted a probe from 56 to 68 GB/s.
  const size_t quick_bytes = f.probe_bytes >= (size_t{1} << 30) ? f.probe_bytes / 2 : f.probe_bytes;
  BenchResult r;
  {
    cpu::ReadBandwidthProbe quick(pool, quick_bytes);  // one buffer for all of them, freed before the last probe
    options.probe_bandwidth = [&quick] { return quick.measure(3); };
    r = run_benchmark(*model, options);
    options.probe_bandwidth = nullptr;
  }
  const double bandwidth_after = cpu::measure_read_bandwidth(pool, f.probe_bytes, 5);
  const double handoff_after = cpu::measure_handoff_latency(pool, kHandoffRoundTrips);
  const double bandwidth = std::max({bandwidth_before, bandwidth_after, r.best_bandwidth});
  std::printf("machine: memory read bandwidth %.2f GB/s (best of %.2f before the runs, %.2f after", bandwidth / 1e9,
              bandwidth_before / 1e9, bandwidth_after / 1e9);
  if (r.best_bandwidth > 0.0) std::printf(", %.2f next to the decode runs", r.best_bandwidth / 1e9);
  std::printf(")\n");  // no decode runs (-n 0): no probes next to them
  if (pool.size() > 1) {
    // Where the host placed the threads, which moves the bandwidth too (docs/performance.md).
    std::printf("machine: thread handoff %.0f ns one way before the runs, %.0f ns after\n", handoff_before * 1e9,
                handoff_after * 1e9);
  }
  if (!r.prefill_tps.empty()) {
    const Stat s = stat_of(r.prefill_tps);
    const double gflops = s.mean * r.prefill_flops_per_token / 1e9;
    std::printf("%-7s %9.2f ± %6.2f tokens/s   %8.1f GFLOP/s = %5.1f%% of measured %s peak\n",
                test_name("pp", f.bench.n_prompt, f.bench.depth).c_str(), s.mean, s.stdev, gflops,
                100.0 * gflops * 1e9 / peak, int8_path ? "int8" : "f32");
  }
  if (!r.decode_tps.empty()) {
    const Stat s = stat_of(r.decode_tps);
    const double roofline = bandwidth / r.decode_bytes_per_token;
    std::printf(
        "%-7s %9.2f ± %6.2f tokens/s   roofline %.2f tokens/s (%s read per token / %.2f GB/s) -> "
        "%.1f%% of roofline\n",
        test_name("tg", f.bench.n_gen, f.bench.depth).c_str(), s.mean, s.stdev, roofline,
        human_bytes(r.decode_bytes_per_token).c_str(), bandwidth / 1e9, 100.0 * s.mean / roofline);
    if (!r.bandwidth_around_decode.empty()) {
      std::vector<double> shares;
      for (size_t i = 0; i < r.decode_tps.size() && i < r.bandwidth_around_decode.size(); ++i) {
        shares.push_back(100.0 * r.decode_tps[i] * r.decode_bytes_per_token / r.bandwidth_around_decode[i]);
      }
      const Stat m = stat_of(shares);
      std::printf("         each run against the probes just before and after it: %.1f%% ± %.1f%% of its roofline\n",
                  m.mean, m.stdev);
    }
    // A shared host can move the VM during the runs (on this project's VM, between ~50 and ~85 GB/s,
    // every 20 s to a few minutes): then the best probe describes another machine than some runs had.
    double lowest = std::min(bandwidth_before, bandwidth_after);
    for (double b : r.bandwidth_around_decode) lowest = std::min(lowest, b);
    if (lowest > 0 && bandwidth > kMovedBandwidth * lowest) {
      std::printf(
          "         note: the bandwidth probes ranged from %.2f to %.2f GB/s, so the host changed during the runs: "
          "the roofline above is the best moment's, the line above holds each run against its own\n",
          lowest / 1e9, bandwidth / 1e9);
    }
  }
  if (f.bench.profile) print_profiles(r, f.bench, bandwidth);
  if (!r.batch_decode_tps.empty()) {
    const Stat s = stat_of(r.batch_decode_tps);
    const double single = r.decode_tps.empty() ? 0.0 : stat_of(r.decode_tps).mean;
    std::printf("tg%-5lld x%-3lld %9.2f ± %6.2f tokens/s in all (%.2f per sequence)%s\n",
                static_cast<long long>(f.bench.n_gen), static_cast<long long>(f.bench.batch), s.mean, s.stdev,
                s.mean / static_cast<double>(f.bench.batch),
                single > 0 ? str_cat(", ", std::to_string(s.mean / single).substr(0, 4), "x one sequence").c_str() : "");
  }
  std::printf("(%d repetitions after one warm-up; mean ± sample stdev)\n", f.bench.repetitions);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto flags = std::make_shared<BenchFlags>();
  auto* cmd = app.add_subcommand("bench", "measure prefill and decode speed against the machine's limits");
  flags->model.add_to(cmd);
  cmd->add_option("-p,--n-prompt", flags->bench.n_prompt, "prompt tokens of the prefill test (0 = skip)")
      ->check(CLI::Range(0, 1 << 20))->capture_default_str();
  cmd->add_option("-n,--n-gen", flags->bench.n_gen, "tokens of the decode test (0 = skip)")
      ->check(CLI::Range(0, 1 << 20))->capture_default_str();
  cmd->add_option("-d,--depth", flags->bench.depth,
                  "tokens already in the context before each prefill and decode test (random, untimed; "
                  "the --batch test starts empty)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  cmd->add_option("-r,--repetitions", flags->bench.repetitions, "repetitions of each test")
      ->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_option("--batch", flags->bench.batch,
                  "also decode this many sequences together (continuous batching) and report aggregate tokens/s")
      ->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_flag("--profile", flags->bench.profile,
                "also show where a decoded token's time goes: time per op kind (matrix products, attention, ...)");
  cmd->add_option("--probe-bytes", flags->probe_bytes, "buffer size of the bandwidth probe")
      ->check(CLI::Range(size_t{1} << 20, size_t{1} << 36))->capture_default_str();
  flags->serve.add_to(cmd);
  flags->gateway.add_to(cmd);
  cmd->callback([flags] { bench(*flags); });
}

}  // namespace mixserve::cli

// Matmul kernel benchmarks: decode matrix-vector products over weights far bigger than the
// caches (compared with the machine's plain streaming read bandwidth, measured here too) and
// batched prefill products (GFLOP/s), per weight type and TinyLlama-1.1B shape, on 1 and 2 threads.
//
//   build/bin/bench_matmul --benchmark_filter='Matvec|ReadBandwidth'
//   build/bin/bench_matmul --benchmark_filter=DecodeStep   (kernel vs plain reads, a whole step)
//
// Counters: bytes_per_second = weight bytes streamed; flops = 2*k*n*n_tok per second;
// of_read_bw = decode bandwidth / 2-thread read bandwidth measured just before (the physical
// limit of decode; shown with a '/s' suffix by the library, it is a plain ratio).
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/machine_probe_kernels.h"
#include "backends/cpu/matmul_kernels.h"
#include "backends/cpu/weight_packing.h"
#include "common/cpu_features.h"
#include "common/dtype.h"
#include "common/thread_pool.h"
#include "quant/quant.h"

namespace mixserve {
namespace {

constexpr size_t kArenaBytes = size_t{1} << 30;  // 1 GiB: weights cycle through it

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

// The 1 GiB arena: weights cycle through it, the read baseline streams over it.
struct Arena {
  std::unique_ptr<uint8_t, FreeDeleter> data{static_cast<uint8_t*>(std::aligned_alloc(size_t{2} << 20, kArenaBytes))};
  bool filled = false;
  DType type = DType::kF32;
  int64_t packed_k = 0;  // 0: GGUF layout; else rows of packed_k elements, packed
};

// Backed by huge pages where the kernel grants them, like the model weights (engine/model.cpp).
Arena& the_arena() {
  static Arena a = [] {
    Arena fresh;
    madvise(fresh.data.get(), kArenaBytes, MADV_HUGEPAGE);
    return fresh;
  }();
  return a;
}

// The arena filled with valid blocks of `type` back to back (refilled when the type changes);
// packed_k > 0: then packed (weight_packing.h) as rows of packed_k elements.
uint8_t* arena(DType type, int64_t packed_k = 0) {
  Arena& a = the_arena();
  if (!a.filled || a.type != type || a.packed_k != packed_k) {
    constexpr int64_t kChunkElems = 1 << 20;  // a multiple of every block size
    std::vector<float> src(kChunkElems);
    std::mt19937 rng(1);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (auto& v : src) v = dist(rng);
    const size_t chunk = *dtype_row_bytes(type, kChunkElems);
    quant::quantize_row(type, src.data(), a.data.get(), kChunkElems);
    for (size_t off = chunk; off < kArenaBytes; off += chunk) {
      std::memcpy(a.data.get() + off, a.data.get(), std::min(chunk, kArenaBytes - off));
    }
    if (packed_k > 0) {
      const size_t row = *dtype_row_bytes(type, packed_k);
      cpu::pack_rows(type, packed_k, a.data.get(), row, static_cast<int64_t>(kArenaBytes / row));
    }
    a.filled = true;
    a.type = type;
    a.packed_k = packed_k;
  }
  return a.data.get();
}

// The arena with whatever it holds (filled once so every page is mapped).
const uint8_t* arena_any() {
  const Arena& a = the_arena();
  return a.filled ? arena(a.type, a.packed_k) : arena(DType::kF32);
}

ThreadPool& pool(int n_threads) {
  static ThreadPool one(1);
  static ThreadPool two(2);
  return n_threads == 1 ? one : two;
}

// Sums n bytes (a multiple of 128) with the bandwidth probe's two-stream read loop, the faster of its
// loops here (machine_probe_kernels.h).
float read_sum(const uint8_t* p, size_t n) {
  const cpu::probe::ReadLoop& loop =
      cpu_features().avx512f ? cpu::probe::kReadTwoStreamsAvx512 : cpu::probe::kReadTwoStreamsAvx2;
  return static_cast<float>(loop.sum(reinterpret_cast<const float*>(p), n / sizeof(float)));
}

// One pass of n_threads threads over [p, p + bytes), each summing a contiguous share of whole
// 128-byte chunks (the last thread the rest).
void read_split(const uint8_t* p, size_t bytes, int n_threads) {
  std::vector<float> sink(static_cast<size_t>(n_threads));
  pool(n_threads).run([&](int ith, int nth) {
    const size_t share = bytes / static_cast<size_t>(nth) / 128 * 128;
    const size_t begin = share * static_cast<size_t>(ith);
    const size_t end = ith == nth - 1 ? bytes / 128 * 128 : begin + share;
    sink[static_cast<size_t>(ith)] = read_sum(p + begin, end - begin);
  });
  benchmark::DoNotOptimize(sink.data());
}

// One pass of every thread summing its contiguous share of the 1 GiB arena.
void read_pass(int n_threads) {
  read_split(arena_any(), kArenaBytes, n_threads);
}

// Best of two 2-thread passes now: the streaming limit decode is compared with (bytes/s). It is
// measured again before each decode benchmark because other tenants of a virtual machine make the
// machine's bandwidth drift by tens of percent within minutes.
double read_bandwidth() {
  double best = 0.0;
  for (int i = 0; i < 2; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    read_pass(2);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(kArenaBytes) / s);
  }
  return best;
}

void BM_ReadBandwidth(benchmark::State& state) {
  if (!cpu_features().avx2) {
    state.SkipWithError("needs AVX2");
    return;
  }
  const int n_threads = static_cast<int>(state.range(0));
  arena_any();
  for (auto _ : state) read_pass(n_threads);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(kArenaBytes));
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

constexpr DType kTypes[] = {DType::kQ4_0, DType::kQ8_0, DType::kF16, DType::kBF16, DType::kF32};
// TinyLlama-1.1B: (k, n) of attn_q/o, attn_k/v, ffn_gate/up, ffn_down, output.
constexpr int64_t kShapes[][2] = {{2048, 2048}, {2048, 256}, {2048, 5632}, {5632, 2048}, {2048, 32000}};

// Activations for n_tok random tokens converted for `type`.
std::vector<uint8_t> activations(DType type, int64_t k, int64_t n_tok) {
  std::vector<float> x(static_cast<size_t>(k));
  std::mt19937 rng(2);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const size_t row = *dtype_row_bytes(cpu::activation_type(type), k);
  std::vector<uint8_t> out(row * static_cast<size_t>(n_tok));
  for (int64_t t = 0; t < n_tok; ++t) {
    for (auto& v : x) v = dist(rng);
    cpu::convert_activation(type, x.data(), out.data() + row * static_cast<size_t>(t), k);
  }
  return out;
}

// Rows [0, n) split into one contiguous, 16-aligned range per thread.
// packed: the weights are packed (weight_packing.h).
void run_rows(int n_threads, DType type, bool packed, int64_t k, const uint8_t* w, size_t w_row, int64_t n,
              const uint8_t* x, size_t x_row, int64_t n_tok, float* y) {
  pool(n_threads).run([&](int ith, int nth) {
    const int64_t per = (n / nth + 15) / 16 * 16;
    const int64_t r0 = std::min(n, per * ith);
    const int64_t r1 = ith == nth - 1 ? n : std::min(n, per * (ith + 1));
    if (packed) {
      cpu::matmul_packed_rows(type, k, w, w_row, r0, r1, x, x_row, n_tok, y, n);
    } else {
      cpu::matmul_rows(type, k, w, w_row, r0, r1, x, x_row, n_tok, y, n);
    }
  });
}

std::string shape_label(DType type, bool packed, int64_t k, int64_t n, int n_threads) {
  return std::string(dtype_name(type)) + (packed ? " packed " : " ") + std::to_string(k) + "x" + std::to_string(n) +
         " " + std::to_string(n_threads) + "T " + cpu::matmul_variant(type);
}

// Whether a benchmark asks for packed weights (its argument `arg`), and whether this CPU has them.
bool want_packed(benchmark::State& state, int arg, DType type, int64_t k) {
  if (state.range(arg) == 0) return false;
  if (!cpu::packed_matmul_available(type, k, *dtype_row_bytes(type, k))) state.SkipWithError("no packed kernel here");
  return true;
}

// n_tok = 1 over a different, cold copy of the weights each iteration.
void BM_Matvec(benchmark::State& state) {
  const DType type = kTypes[state.range(0)];
  const int64_t k = kShapes[state.range(1)][0];
  const int64_t n = kShapes[state.range(1)][1];
  const int n_threads = static_cast<int>(state.range(2));
  const bool packed = want_packed(state, 3, type, k);
  if (state.error_occurred()) return;
  const size_t w_row = *dtype_row_bytes(type, k);
  const size_t mat = w_row * static_cast<size_t>(n);
  const size_t slots = kArenaBytes / mat;
  const uint8_t* base = arena(type, packed ? k : 0);
  const double limit = read_bandwidth();
  const auto x = activations(type, k, 1);
  std::vector<float> y(static_cast<size_t>(n));
  size_t slot = 0;
  for (auto _ : state) {
    run_rows(n_threads, type, packed, k, base + mat * slot, w_row, n, x.data(), x.size(), 1, y.data());
    slot = (slot + 1) % slots;
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * mat));
  state.counters["flops"] = benchmark::Counter(2.0 * static_cast<double>(k * n),
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.counters["of_read_bw"] = benchmark::Counter(static_cast<double>(mat) / limit,
                                                    benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(shape_label(type, packed, k, n, n_threads));
}

// n_tok = batch over the same weights each iteration, small enough to stay in L2 (k 2048 x n 256,
// 5632 x 64 for shape 3, or 896 x 512 for shape 5: Qwen2-0.5B's width, whose rows end in a partial
// packed group): the kernel's own speed without memory traffic, i.e. how far above the memory
// bandwidth its compute ceiling is (one token) and what a batched decode step costs.
void BM_ProductHot(benchmark::State& state) {
  const DType type = kTypes[state.range(0)];
  const int64_t shape = state.range(1);
  const int64_t k = shape == 3 ? 5632 : shape == 5 ? 896 : 2048;
  const int64_t n = shape == 3 ? 64 : shape == 5 ? 512 : 256;
  const int64_t batch = state.range(2);
  const bool packed = want_packed(state, 3, type, k);
  if (state.error_occurred()) return;
  const size_t w_row = *dtype_row_bytes(type, k);
  const uint8_t* w = arena(type, packed ? k : 0);
  const auto x = activations(type, k, batch);
  const size_t x_row = x.size() / static_cast<size_t>(batch);
  std::vector<float> y(static_cast<size_t>(n * batch));
  for (auto _ : state) {
    run_rows(1, type, packed, k, w, w_row, n, x.data(), x_row, batch, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * w_row * static_cast<size_t>(n)));
  state.counters["tokens"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(shape_label(type, packed, k, n, 1) + " batch " + std::to_string(batch));
}

// n_tok = 512 (a prefill batch) against one copy of the weights.
void BM_Prefill(benchmark::State& state) {
  constexpr int64_t kTokens = 512;
  const DType type = kTypes[state.range(0)];
  const int64_t k = kShapes[state.range(1)][0];
  const int64_t n = kShapes[state.range(1)][1];
  const int n_threads = static_cast<int>(state.range(2));
  const bool packed = want_packed(state, 3, type, k);
  if (state.error_occurred()) return;
  const size_t w_row = *dtype_row_bytes(type, k);
  const uint8_t* w = arena(type, packed ? k : 0);
  const auto x = activations(type, k, kTokens);
  const size_t x_row = x.size() / kTokens;
  std::vector<float> y(static_cast<size_t>(n * kTokens));
  for (auto _ : state) {
    run_rows(n_threads, type, packed, k, w, w_row, n, x.data(), x_row, kTokens, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["flops"] = benchmark::Counter(2.0 * static_cast<double>(k * n * kTokens),
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(shape_label(type, packed, k, n, n_threads));
}

// n_tok = batch (continuous-batching decode: one token from each of `batch` sequences) over a
// different, cold copy of the weights each iteration, as in a decode step.
void BM_DecodeBatch(benchmark::State& state) {
  const DType type = kTypes[state.range(0)];
  const int64_t k = kShapes[state.range(1)][0];
  const int64_t n = kShapes[state.range(1)][1];
  const int64_t batch = state.range(2);
  const int n_threads = static_cast<int>(state.range(3));
  const bool packed = want_packed(state, 4, type, k);
  if (state.error_occurred()) return;
  const size_t w_row = *dtype_row_bytes(type, k);
  const size_t mat = w_row * static_cast<size_t>(n);
  const size_t slots = kArenaBytes / mat;
  const uint8_t* base = arena(type, packed ? k : 0);
  const auto x = activations(type, k, batch);
  const size_t x_row = x.size() / static_cast<size_t>(batch);
  std::vector<float> y(static_cast<size_t>(n * batch));
  size_t slot = 0;
  for (auto _ : state) {
    run_rows(n_threads, type, packed, k, base + mat * slot, w_row, n, x.data(), x_row, batch, y.data());
    slot = (slot + 1) % slots;
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["tokens"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["flops"] = benchmark::Counter(2.0 * static_cast<double>(k * n * batch),
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(shape_label(type, packed, k, n, n_threads) + " batch " + std::to_string(batch));
}

// One decode step's matrix products of TinyLlama-1.1B (per layer: q+k+v, o, gate+up, down; then the
// output matrix), back to back over the arena (as many layers as fit), on 2 threads that split every
// product's rows in halves. Each iteration passes over the step's bytes three times in turn: with
// the kernel; as plain reads, product by product (each thread summing its half of each with the
// bandwidth probe's two-stream loop); and as one plain read of all of them (each thread one half). Time = the
// kernel's pass. of_plain_read = product-by-product read time / kernel time over the run: how close
// the kernel streams to the bytes' own read speed in the same sequence of products, with the host's
// drift cancelled out by the alternation. plain_read_GBps and one_read_GBps: the two reads' speeds
// (their difference is the cost of starting and ending the step's 89 products).
void BM_DecodeStep(benchmark::State& state) {
  const DType type = kTypes[state.range(0)];
  struct Product {
    int64_t k, n;
  };
  const Product layer[] = {{2048, 2048 + 256 + 256}, {2048, 2048}, {2048, 2 * 5632}, {5632, 2048}};
  const Product output{2048, 32000};
  const auto bytes_of = [&](const Product& p) { return *dtype_row_bytes(type, p.k) * static_cast<size_t>(p.n); };
  size_t per_layer = 0;
  for (const Product& p : layer) per_layer += bytes_of(p);
  const auto n_layers = static_cast<int64_t>(std::min<size_t>(22, (kArenaBytes - bytes_of(output)) / per_layer));
  std::vector<Product> step;
  for (int64_t l = 0; l < n_layers; ++l) step.insert(step.end(), std::begin(layer), std::end(layer));
  step.push_back(output);
  if (!cpu::packed_matmul_available(type, 2048, *dtype_row_bytes(type, 2048))) {
    state.SkipWithError("no packed kernel here");
    return;
  }
  // Packed as rows of 2048 elements: whole packed groups back to back, so rows of 5632 read valid
  // groups too.
  const uint8_t* base = arena(type, 2048);
  const auto x2048 = activations(type, 2048, 1);
  const auto x5632 = activations(type, 5632, 1);
  std::vector<float> y(32000);
  size_t step_bytes = 0;
  double kernel_s = 0.0, plain_s = 0.0, whole_s = 0.0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    size_t off = 0;
    for (const Product& p : step) {
      const auto& x = p.k == 2048 ? x2048 : x5632;
      run_rows(2, type, true, p.k, base + off, *dtype_row_bytes(type, p.k), p.n, x.data(), x.size(), 1, y.data());
      off += bytes_of(p);
    }
    const double kernel = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    step_bytes = off;
    t0 = std::chrono::steady_clock::now();
    off = 0;
    for (const Product& p : step) {
      read_split(base + off, bytes_of(p), 2);
      off += bytes_of(p);
    }
    plain_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t0 = std::chrono::steady_clock::now();
    read_split(base, off, 2);
    whole_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    kernel_s += kernel;
    state.SetIterationTime(kernel);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * step_bytes));
  state.counters["of_plain_read"] = plain_s / kernel_s;
  state.counters["plain_read_GBps"] =
      static_cast<double>(step_bytes) * static_cast<double>(state.iterations()) / plain_s / 1e9;
  state.counters["one_read_GBps"] =
      static_cast<double>(step_bytes) * static_cast<double>(state.iterations()) / whole_s / 1e9;
  state.SetLabel(std::string(dtype_name(type)) + " packed, " + std::to_string(n_layers) + " layers + output, " +
                 std::to_string(step_bytes >> 20) + " MiB, 2T " + cpu::matmul_variant(type));
}

// The last argument of every product benchmark: 1 = packed weights (Q4_0 and Q8_0 only).
std::vector<int64_t> layouts(int64_t type) {
  return type < 2 ? std::vector<int64_t>{0, 1} : std::vector<int64_t>{0};
}

void decode_batch_args(benchmark::internal::Benchmark* b) {
  for (int64_t t : {0, 1}) {
    for (int64_t packed : layouts(t)) {
      for (int64_t s : {2, 3}) {
        for (int64_t batch : {1, 2, 4, 8, 16, 32, 64}) b->Args({t, s, batch, 2, packed});
      }
    }
  }
}

void matvec_args(benchmark::internal::Benchmark* b) {
  for (int64_t t = 0; t < 5; ++t) {
    for (int64_t packed : layouts(t)) {
      for (int64_t s = 0; s < 5; ++s) {
        for (int64_t threads : {1, 2}) b->Args({t, s, threads, packed});
      }
    }
  }
}

void prefill_args(benchmark::internal::Benchmark* b) {
  for (int64_t t = 0; t < 5; ++t) {
    for (int64_t packed : layouts(t)) {
      for (int64_t s = 0; s < 5; ++s) {
        if (t >= 2 && s != 0 && s != 2) continue;  // float formats: two shapes are enough
        for (int64_t threads : {1, 2}) b->Args({t, s, threads, packed});
      }
    }
  }
}

// One token's activations converted to Q8_0 blocks for Q4_0/Q8_0 weights: the input of every
// decoding job, which one thread converts before the job's threads start (2048: TinyLlama's width,
// 5632: its FFN's). Items are blocks of 32 values.
void BM_ConvertActivation(benchmark::State& state) {
  const int64_t k = state.range(0);
  std::vector<float> x(static_cast<size_t>(k));
  std::mt19937 rng(4);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto& v : x) v = dist(rng);
  std::vector<uint8_t> out(*dtype_row_bytes(DType::kQ8_0, k));
  for (auto _ : state) {
    cpu::convert_activation(DType::kQ8_0, x.data(), out.data(), k);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * k / 32);
  state.SetLabel(cpu::matmul_variant(DType::kQ8_0));
}
BENCHMARK(BM_ConvertActivation)->Arg(2048)->Arg(5632);

BENCHMARK(BM_Matvec)
    ->Apply(matvec_args)
    ->ArgNames({"type", "shape", "threads", "packed"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ProductHot)
    ->Apply([](benchmark::internal::Benchmark* b) {
      for (int64_t t : {0, 1}) {
        for (int64_t packed : layouts(t)) {
          for (int64_t s : {0, 3, 5}) {
            for (int64_t batch : {1, 4, 8, 16}) b->Args({t, s, batch, packed});
          }
        }
      }
    })
    ->ArgNames({"type", "shape", "batch", "packed"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DecodeBatch)
    ->Apply(decode_batch_args)
    ->ArgNames({"type", "shape", "batch", "threads", "packed"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DecodeStep)->Arg(0)->Arg(1)->ArgName("type")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Prefill)
    ->Apply(prefill_args)
    ->ArgNames({"type", "shape", "threads", "packed"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace mixserve

BENCHMARK_MAIN();

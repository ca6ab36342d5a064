// Google Benchmark for the vector kernels at decoder sizes (hidden n = 2048, head_dim = 64,
// n_kv = 512 and 2048), one set per variant usable on this CPU, reporting bytes/s (the bytes
// each call must read and write). The context lists the chosen variant and the single-thread
// read bandwidth from cache (256 KiB) and DRAM (256 MiB), the limits these kernels run into.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/machine_probe.h"
#include "backends/cpu/vector_kernels.h"
#include "backends/cpu/vector_variants.h"
#include "common/cpu_features.h"
#include "common/dtype.h"
#include "common/thread_pool.h"
#include "quant/quant.h"

namespace {

using mixserve::cpu::VectorKernelTable;

constexpr int64_t kHidden = 2048;
constexpr int64_t kHeadDim = 64;
constexpr int64_t kHeads = kHidden / kHeadDim;
constexpr int64_t kFfn = 5632;  // feed-forward width of a 2048-wide model (TinyLlama-1.1B)

std::vector<float> random_vec(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

void set_bytes(benchmark::State& state, int64_t bytes_per_call) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * bytes_per_call);
}

void bench_rms_norm(benchmark::State& state, const VectorKernelTable* t) {
  const int64_t n = state.range(0);
  const auto x = random_vec(n, -2.0f, 2.0f, 1), w = random_vec(n, 0.5f, 1.5f, 2);
  std::vector<float> y(static_cast<size_t>(n));
  for (auto _ : state) {
    t->rms_norm(x.data(), w.data(), y.data(), n, 1e-5f);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 3 * n * 4);  // read x and w, write y
}

// range(0): 1 = Llama pairs, 0 = NeoX halves; range(1): 1 = a new position every call (the
// cos/sin table is rebuilt, as for a token's first rope), 0 = same position (q then k).
void bench_rope(benchmark::State& state, const VectorKernelTable* t) {
  const bool neox = state.range(0) == 0;
  const bool new_pos = state.range(1) == 1;
  auto x = random_vec(kHidden, -1.0f, 1.0f, 3);
  int64_t pos = 4096;
  for (auto _ : state) {
    t->rope(x.data(), kHeadDim, kHeads, kHeadDim, pos, 10000.0f, neox);
    if (new_pos) ++pos;
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * kHidden * 4);  // read and write x
}

void bench_softmax(benchmark::State& state, const VectorKernelTable* t) {
  const int64_t n = state.range(0);
  auto x = random_vec(n, -10.0f, 10.0f, 4);
  for (auto _ : state) {
    // Repeated in place: the input becomes probabilities, which cost the same to process.
    t->softmax(x.data(), n);
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * n * 4);
}

void bench_swiglu(benchmark::State& state, const VectorKernelTable* t) {
  const int64_t n = state.range(0);
  const auto g = random_vec(n, -6.0f, 6.0f, 5), u = random_vec(n, -2.0f, 2.0f, 6);
  std::vector<float> y(static_cast<size_t>(n));
  for (auto _ : state) {
    t->swiglu(g.data(), u.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 3 * n * 4);
}

void bench_add(benchmark::State& state, const VectorKernelTable* t) {
  const int64_t n = state.range(0);
  const auto a = random_vec(n, -1.0f, 1.0f, 7), b = random_vec(n, -1.0f, 1.0f, 8);
  std::vector<float> y(static_cast<size_t>(n));
  for (auto _ : state) {
    t->add(a.data(), b.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 3 * n * 4);
}

// range(0): n_kv; range(1): kv_stride in floats (64 = one head's cache rows back to back,
// 512 = 8 KV heads interleaved per position, so each row read is a separate 256-byte piece).
void bench_attention_head(benchmark::State& state, const VectorKernelTable* t) {
  const int64_t n_kv = state.range(0);
  const int64_t stride = state.range(1);
  const auto q = random_vec(kHeadDim, -1.0f, 1.0f, 9);
  const auto k = random_vec(n_kv * stride, -1.0f, 1.0f, 10);
  const auto v = random_vec(n_kv * stride, -1.0f, 1.0f, 11);
  std::vector<float> out(kHeadDim), scratch(static_cast<size_t>(n_kv));
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  const float* kp = k.data();
  const float* vp = v.data();
  for (auto _ : state) {
    t->attention_head(q.data(), &kp, &vp, n_kv, stride, kHeadDim, n_kv, scale, out.data(), scratch.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * n_kv * kHeadDim * 4);  // every key and value row once
}

// The 8 query heads of one KV head (TinyLlama, Llama 3 8B) over n_kv rows of a cache holding 4 KV
// heads per position; range(1) = 1 computes them together (attention_queries), 0 one at a time;
// range(2): the cache's elements, 0 f32, 1 f16, 2 Q8_0 (the same values rounded).
// cold: the cache evicted before each call, as in decoding, where each layer's weight stream evicts
// the previous layer's cache rows (64 MiB read, untimed; registered with a fixed number of
// iterations, since Google Benchmark would otherwise run ~30,000 of them). The cold calls are timed
// by hand around the call alone: PauseTiming/ResumeTiming read the thread's CPU time through a
// system call, which added about 3.5-4 us to every iteration on the Zen 5 VM (64 rows cold: 9.1-9.6
// us that way, 5.4-6.4 us timed around the call).
void bench_attention_heads(benchmark::State& state, const VectorKernelTable* t, bool cold) {
  constexpr int64_t kGroupHeads = 8;
  constexpr int64_t kStride = 4 * kHeadDim;
  const int64_t n_kv = state.range(0);
  const bool grouped = state.range(1) != 0;
  const auto q = random_vec(kGroupHeads * kHeadDim, -1.0f, 1.0f, 9);
  const auto k = random_vec(n_kv * kStride, -1.0f, 1.0f, 10);
  const auto v = random_vec(n_kv * kStride, -1.0f, 1.0f, 11);
  const int64_t cache = state.range(2);
  const bool f16 = cache == 1;
  std::vector<mixserve::cpu::Half> kh(f16 ? k.size() : 0), vh(kh.size());
  t->to_half(k.data(), kh.data(), static_cast<int64_t>(kh.size()));
  t->to_half(v.data(), vh.data(), static_cast<int64_t>(vh.size()));
  const mixserve::cpu::Half* khp = kh.data();
  const mixserve::cpu::Half* vhp = vh.data();
  const size_t q8_bytes =
      cache == 2 ? *mixserve::dtype_row_bytes(mixserve::DType::kQ8_0, static_cast<int64_t>(k.size())) : 0;
  std::vector<uint8_t> kq(q8_bytes), vq(q8_bytes);
  if (cache == 2) {
    mixserve::quant::quantize_row(mixserve::DType::kQ8_0, k.data(), kq.data(), static_cast<int64_t>(k.size()));
    mixserve::quant::quantize_row(mixserve::DType::kQ8_0, v.data(), vq.data(), static_cast<int64_t>(v.size()));
  }
  const mixserve::cpu::Q8Row kqp{kq.data(), 0};
  const mixserve::cpu::Q8Row vqp{vq.data(), 0};
  const std::vector<float> evict(cold ? size_t{16} << 20 : 0, 1.0f);
  std::vector<float> out(kGroupHeads * kHeadDim), scratch(static_cast<size_t>(kGroupHeads * n_kv));
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  const float* kp = k.data();
  const float* vp = v.data();
  for (auto _ : state) {
    std::chrono::steady_clock::time_point start;
    if (cold) {
      float sum = 0.0f;
      for (size_t i = 0; i < evict.size(); i += 16) sum += evict[i];  // one load per 64-byte line
      benchmark::DoNotOptimize(sum);
      benchmark::ClobberMemory();
      start = std::chrono::steady_clock::now();
    }
    if (grouped) {
      mixserve::cpu::AttentionQueries a;
      a.q = q.data();
      a.out = out.data();
      a.n_heads = kGroupHeads;
      a.head_stride = kHeadDim;
      a.n_kv = n_kv;
      if (cache == 2) {
        t->attention_queries_q8_0(a, &kqp, &vqp, n_kv, kStride, kHeadDim, scale, scratch.data());
      } else if (f16) {
        t->attention_queries_f16(a, &khp, &vhp, n_kv, kStride, kHeadDim, scale, scratch.data());
      } else {
        t->attention_queries(a, &kp, &vp, n_kv, kStride, kHeadDim, scale, scratch.data());
      }
    } else {
      for (int64_t i = 0; i < kGroupHeads; ++i) {
        float* o = out.data() + i * kHeadDim;
        if (cache == 2) {
          t->attention_head_q8_0(q.data() + i * kHeadDim, &kqp, &vqp, n_kv, kStride, kHeadDim, n_kv, scale, o,
                                 scratch.data());
        } else if (f16) {
          t->attention_head_f16(q.data() + i * kHeadDim, &khp, &vhp, n_kv, kStride, kHeadDim, n_kv, scale, o,
                                scratch.data());
        } else {
          t->attention_head(q.data() + i * kHeadDim, &kp, &vp, n_kv, kStride, kHeadDim, n_kv, scale, o, scratch.data());
        }
      }
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
    if (cold) state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  // every key and value row once
  set_bytes(state, 2 * n_kv * (cache == 2 ? kHeadDim / 32 * 34 : kHeadDim * (f16 ? 2 : 4)));
}

void register_variant(const VectorKernelTable* t) {
  const std::string p = std::string(t->name) + "/";
  benchmark::RegisterBenchmark((p + "rms_norm").c_str(), bench_rms_norm, t)->Arg(kHidden);
  benchmark::RegisterBenchmark((p + "rope").c_str(), bench_rope, t)
      ->ArgNames({"llama", "new_pos"})
      ->ArgsProduct({{1, 0}, {0, 1}});
  benchmark::RegisterBenchmark((p + "softmax").c_str(), bench_softmax, t)->Arg(512)->Arg(kHidden);
  benchmark::RegisterBenchmark((p + "swiglu").c_str(), bench_swiglu, t)->Arg(kHidden)->Arg(kFfn);
  benchmark::RegisterBenchmark((p + "add").c_str(), bench_add, t)->Arg(kHidden);
  benchmark::RegisterBenchmark((p + "attention_head").c_str(), bench_attention_head, t)
      ->ArgNames({"n_kv", "stride"})
      ->ArgsProduct({{512, 2048}, {kHeadDim, 8 * kHeadDim}});
  benchmark::RegisterBenchmark((p + "attention_heads").c_str(), bench_attention_heads, t, false)
      ->ArgNames({"n_kv", "grouped", "cache"})
      ->ArgsProduct({{512, 2048}, {0, 1}, {0, 1, 2}});
  benchmark::RegisterBenchmark((p + "attention_heads_cold").c_str(), bench_attention_heads, t, true)
      ->ArgNames({"n_kv", "grouped", "cache"})
      ->ArgsProduct({{64, 512, 2048}, {1}, {0, 1, 2}})
      ->Iterations(300)
      ->UseManualTime();
}

std::string gb_per_s(double bytes_per_s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f GB/s", bytes_per_s / 1e9);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  register_variant(&mixserve::cpu::kVectorKernelsScalar);
  if (const auto* t = mixserve::cpu::vector_kernels_avx2()) register_variant(t);
  if (const auto* t = mixserve::cpu::vector_kernels_avx512()) register_variant(t);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  mixserve::ThreadPool one(1);
  benchmark::AddCustomContext("cpu_features", mixserve::cpu_features_string(mixserve::cpu_features()));
  benchmark::AddCustomContext("vector_variant", mixserve::cpu::vector_variant());
  benchmark::AddCustomContext("read_bw_1thread_256KiB",
                              gb_per_s(mixserve::cpu::measure_read_bandwidth(one, 256 << 10, 20)));
  benchmark::AddCustomContext("read_bw_1thread_256MiB",
                              gb_per_s(mixserve::cpu::measure_read_bandwidth(one, 256 << 20, 3)));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

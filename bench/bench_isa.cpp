// Issue rates of the instructions the AVX2 int8 kernels are made of, in cycles per instruction (or
// per pair), so that a kernel's cycles per product can be held against what the core can issue.
// Every loop runs 12 independent chains whose values stay in registers (asm statements: with
// intrinsics and arrays GCC may keep the chains in memory and time store forwarding instead), plus
// one scratch register per step: 15 of the 16 ymm registers, so nothing is spilled.
// BM_Clock times a chain of dependent scalar adds (one per cycle on any x86 core) to give the clock.
//
//   bench_isa                     cycles per instruction or pair, and the clock in GHz
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <chrono>
#include <cstdint>

#include "common/cpu_features.h"

namespace mixserve {
namespace {

constexpr int64_t kRounds = 1 << 20;
constexpr int kChains = 12;

// Seconds for kRounds rounds of four dependent adds.
double clock_seconds() {
  uint64_t x = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < kRounds; ++i) asm volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double cycles_per_second() {
  double best = 1e30;
  for (int i = 0; i < 5; ++i) best = std::min(best, clock_seconds());
  return 4.0 * kRounds / best;
}

void BM_Clock(benchmark::State& state) {
  double hz = 0;
  for (auto _ : state) hz = cycles_per_second();
  state.counters["GHz"] = hz / 1e9;
}
BENCHMARK(BM_Clock)->Iterations(3)->Unit(benchmark::kMillisecond);

#define MIXSERVE_CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

// The sequences timed: one round issues each of them once per chain.
enum class Seq { kMaddubs, kPaddw, kMaddubsPaddw, kMaddubsMaddwd, kMaddubsMaddwdPaddd, kMaddubsFma };

template <Seq kSeq>
__attribute__((target("avx2,fma"))) double run_chains(int64_t rounds) {
  const __m256i a = _mm256_set1_epi8(3);
  const __m256i b = _mm256_set1_epi8(-2);
#define MIXSERVE_DECL(k) __m256i c##k = _mm256_setzero_si256();
  MIXSERVE_CHAINS(MIXSERVE_DECL)
  for (int64_t i = 0; i < rounds; ++i) {
    __m256i t;  // scratch, written before it is read in every step
#define MIXSERVE_STEP(k)                                                                               \
  if constexpr (kSeq == Seq::kMaddubs) {                                                               \
    asm volatile("vpmaddubsw %[b], %[a], %[c]" : [c] "+x"(c##k) : [a] "x"(a), [b] "x"(b));             \
  } else if constexpr (kSeq == Seq::kPaddw) {                                                          \
    asm volatile("vpaddw %[b], %[a], %[c]" : [c] "+x"(c##k) : [a] "x"(a), [b] "x"(b));                 \
  } else if constexpr (kSeq == Seq::kMaddubsPaddw) {                                                   \
    asm volatile("vpmaddubsw %[b], %[a], %[t]\n\tvpaddw %[t], %[c], %[c]"                              \
                 : [c] "+x"(c##k), [t] "=&x"(t)                                                        \
                 : [a] "x"(a), [b] "x"(b));                                                            \
  } else if constexpr (kSeq == Seq::kMaddubsMaddwd) {                                                  \
    asm volatile("vpmaddubsw %[b], %[a], %[t]\n\tvpmaddwd %[t], %[a], %[c]"                            \
                 : [c] "+x"(c##k), [t] "=&x"(t)                                                        \
                 : [a] "x"(a), [b] "x"(b));                                                            \
  } else if constexpr (kSeq == Seq::kMaddubsMaddwdPaddd) {                                             \
    asm volatile("vpmaddubsw %[b], %[a], %[t]\n\tvpmaddwd %[a], %[t], %[t]\n\tvpaddd %[t], %[c], %[c]" \
                 : [c] "+x"(c##k), [t] "=&x"(t)                                                        \
                 : [a] "x"(a), [b] "x"(b));                                                            \
  } else {                                                                                             \
    asm volatile("vpmaddubsw %[b], %[a], %[t]\n\tvfmadd231ps %[a], %[b], %[c]"                         \
                 : [c] "+x"(c##k), [t] "=&x"(t)                                                        \
                 : [a] "x"(a), [b] "x"(b));                                                            \
  }
    MIXSERVE_CHAINS(MIXSERVE_STEP)
  }
  __m256i s = _mm256_setzero_si256();
#define MIXSERVE_SUM(k) s = _mm256_add_epi32(s, c##k);
  MIXSERVE_CHAINS(MIXSERVE_SUM)
  return static_cast<double>(_mm256_extract_epi32(s, 0));
}

template <Seq kSeq>
void BM_Issue(benchmark::State& state) {
  if (!cpu_features().avx2 || !cpu_features().fma) {
    state.SkipWithError("this CPU has no AVX2/FMA");
    return;
  }
  const double hz = cycles_per_second();
  double sink = 0;
  double best = 1e30;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    sink += run_chains<kSeq>(kRounds);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  benchmark::DoNotOptimize(sink);
  // Best round, not the mean: another guest on the same core only ever slows a round down.
  state.counters["cycles"] = best * hz / (static_cast<double>(kRounds) * kChains);
}
BENCHMARK(BM_Issue<Seq::kMaddubs>)->Name("BM_Issue/vpmaddubsw")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Issue<Seq::kPaddw>)->Name("BM_Issue/vpaddw")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Issue<Seq::kMaddubsPaddw>)->Name("BM_Issue/vpmaddubsw+vpaddw")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Issue<Seq::kMaddubsMaddwd>)->Name("BM_Issue/vpmaddubsw+vpmaddwd")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Issue<Seq::kMaddubsMaddwdPaddd>)
    ->Name("BM_Issue/vpmaddubsw+vpmaddwd+vpaddd")
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Issue<Seq::kMaddubsFma>)->Name("BM_Issue/vpmaddubsw+vfmadd")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace mixserve

BENCHMARK_MAIN();

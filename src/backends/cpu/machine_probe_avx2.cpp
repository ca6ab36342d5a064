// AVX2/FMA inner loops of the machine probe; used only after cpu_features() reports AVX2 and FMA.
#include <immintrin.h>

#include "backends/cpu/machine_probe_kernels.h"
#include "backends/cpu/prefetch.h"

namespace mixserve::cpu::probe {
namespace {

// The arithmetic loops use asm statements: with the intrinsics GCC 12 copies the accumulators
// between registers every round, which measures its register allocator rather than the CPU.

// The sum of the read loops' eight accumulators.
double sum_all(const __m256 (&a)[8]) {
  const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])),
                                 _mm256_add_ps(_mm256_add_ps(a[4], a[5]), _mm256_add_ps(a[6], a[7])));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  double sum = 0.0;
  for (float v : lanes) sum += v;
  return sum;
}

// Eight accumulators of 8 floats: 256 bytes per round, more than DRAM or L3 can deliver per
// cycle, so the loads (not the adds) limit the speed as in a matrix-vector product.
double read_sum_avx2(const float* p, size_t n) {
  __m256 a[8];
#pragma GCC unroll 16
  for (auto& v : a) v = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
#pragma GCC unroll 16
    for (int k = 0; k < 8; ++k) a[k] = _mm256_add_ps(a[k], _mm256_loadu_ps(p + i + 8 * k));
  }
  for (; i < n; i += 8) a[0] = _mm256_add_ps(a[0], _mm256_loadu_ps(p + i));
  return sum_all(a);
}

// As read_two_streams_avx512: the halves side by side, two lines of each per round, prefetched.
double read_two_streams_avx2(const float* p, size_t n) {
  constexpr size_t kAhead = kTwoStreamAhead / sizeof(float);
  const size_t half = n / 32 * 16;
  const float* a = p;
  const float* b = p + half;
  __m256 acc[8];
#pragma GCC unroll 8
  for (auto& v : acc) v = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= half; i += 32) {
    prefetch_nta(a + i + kAhead);
    prefetch_nta(a + i + 16 + kAhead);
    prefetch_nta(b + i + kAhead);
    prefetch_nta(b + i + 16 + kAhead);
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm256_add_ps(acc[k], _mm256_loadu_ps(a + i + 8 * k));
      acc[4 + k] = _mm256_add_ps(acc[4 + k], _mm256_loadu_ps(b + i + 8 * k));
    }
  }
  for (size_t j = i; j < half; j += 8) acc[0] = _mm256_add_ps(acc[0], _mm256_loadu_ps(a + j));
  for (size_t j = half + i; j < n; j += 8) acc[1] = _mm256_add_ps(acc[1], _mm256_loadu_ps(p + j));
  return sum_all(acc);
}

// 12 independent FMA chains (FMA latency 4-5 cycles x 2 ports needs >= 10) in 16 ymm registers.
constexpr int kFmaChains = 12;

double fma_avx2(int64_t iters) {
  const __m256 a = _mm256_set1_ps(0.9999f);
  const __m256 b = _mm256_set1_ps(1e-4f);  // x -> a x + b converges to 1: no overflow, no denormals
  __m256 acc[kFmaChains];
#pragma GCC unroll 16
  for (int k = 0; k < kFmaChains; ++k) acc[k] = _mm256_set1_ps(static_cast<float>(k));
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int k = 0; k < kFmaChains; ++k) {
      asm("vfmadd213ps %[b], %[a], %[acc]" : [acc] "+x"(acc[k]) : [a] "x"(a), [b] "x"(b));
    }
  }
  __m256 s = acc[0];
#pragma GCC unroll 16
  for (int k = 1; k < kFmaChains; ++k) s = _mm256_add_ps(s, acc[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  return lanes[0] + lanes[7];
}

// maddubs (u8 x s8 pairs -> s16) added into 16-bit sums: 32 multiply-adds per ymm, the inner
// step of the Q4_0 kernels, which sum 8 such products before widening them. It is the fastest
// int8 sequence AVX2 has: on a Zen 3 core it runs at 0.6-0.7 cycles per pair, while maddubs +
// madd + add (widening every product) needs 1.05 (bench_isa). 12 chains: the adds are the only
// loop-carried dependency.
constexpr int kInt8Chains = 12;

double int8_avx2(int64_t iters) {
  const __m256i a = _mm256_set1_epi8(3);
  const __m256i b = _mm256_set1_epi8(-2);
  __m256i acc[kInt8Chains];
#pragma GCC unroll 16
  for (int k = 0; k < kInt8Chains; ++k) acc[k] = _mm256_setzero_si256();
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int k = 0; k < kInt8Chains; ++k) {
      __m256i t;
      asm("vpmaddubsw %[b], %[a], %[t]\n\t"
          "vpaddw %[t], %[acc], %[acc]"
          : [acc] "+x"(acc[k]), [t] "=&x"(t)
          : [a] "x"(a), [b] "x"(b));
    }
  }
  __m256i s = acc[0];
#pragma GCC unroll 16
  for (int k = 1; k < kInt8Chains; ++k) s = _mm256_add_epi16(s, acc[k]);
  return static_cast<double>(_mm256_extract_epi16(s, 0));
}

}  // namespace

const ReadLoop kReadAvx2 = {"avx2", read_sum_avx2};
const ReadLoop kReadTwoStreamsAvx2 = {"avx2 two streams", read_two_streams_avx2};
const ComputeLoop kFmaAvx2 = {"avx2 fma", 2.0 * 8 * kFmaChains, fma_avx2};
const ComputeLoop kInt8Avx2 = {"avx2 maddubs+add16", 2.0 * 32 * kInt8Chains, int8_avx2};

}  // namespace mixserve::cpu::probe

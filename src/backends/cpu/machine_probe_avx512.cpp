// AVX-512 inner loops of the machine probe; used only after cpu_features() reports AVX-512 F
// (and BW + VNNI for the dpbusd loop; without VNNI the AVX2 int8 loop is used, which keeps the
// compiler from ever fusing a madd+add of this file into a VNNI instruction on such a CPU).
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_* helpers when
// inlined (GCC bug 105593, fixed in 12.3/13); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "backends/cpu/machine_probe_kernels.h"
#include "backends/cpu/prefetch.h"

namespace mixserve::cpu::probe {
namespace {

// The arithmetic loops use one-instruction asm statements: with the intrinsics GCC 12 copies the
// accumulators between registers (and spills them) every round, which measures its register
// allocator rather than the CPU.

// Eight accumulators of 16 floats: 512 bytes per round, loads limit the speed.
double read_sum_avx512(const float* p, size_t n) {
  __m512 a[8];
#pragma GCC unroll 16
  for (auto& v : a) v = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
#pragma GCC unroll 16
    for (int k = 0; k < 8; ++k) a[k] = _mm512_add_ps(a[k], _mm512_loadu_ps(p + i + 16 * k));
  }
  for (; i < n; i += 16) a[0] = _mm512_add_ps(a[0], _mm512_loadu_ps(p + i));
  const __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])),
                                 _mm512_add_ps(_mm512_add_ps(a[4], a[5]), _mm512_add_ps(a[6], a[7])));
  return static_cast<double>(_mm512_reduce_add_ps(s));
}

// The two halves of [p, p + n) side by side, two lines of each per round, each prefetched
// non-temporally kTwoStreamAhead bytes ahead (see machine_probe_kernels.h for why).
double read_two_streams_avx512(const float* p, size_t n) {
  constexpr size_t kAhead = kTwoStreamAhead / sizeof(float);
  const size_t half = n / 32 * 16;  // whole lines; the second half may have one more
  const float* a = p;
  const float* b = p + half;
  __m512 acc[4];
#pragma GCC unroll 4
  for (auto& v : acc) v = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= half; i += 32) {
    prefetch_nta(a + i + kAhead);
    prefetch_nta(a + i + 16 + kAhead);
    prefetch_nta(b + i + kAhead);
    prefetch_nta(b + i + 16 + kAhead);
    acc[0] = _mm512_add_ps(acc[0], _mm512_loadu_ps(a + i));
    acc[1] = _mm512_add_ps(acc[1], _mm512_loadu_ps(a + i + 16));
    acc[2] = _mm512_add_ps(acc[2], _mm512_loadu_ps(b + i));
    acc[3] = _mm512_add_ps(acc[3], _mm512_loadu_ps(b + i + 16));
  }
  for (size_t j = i; j < half; j += 16) acc[0] = _mm512_add_ps(acc[0], _mm512_loadu_ps(a + j));
  for (size_t j = half + i; j < n; j += 16) acc[1] = _mm512_add_ps(acc[1], _mm512_loadu_ps(p + j));
  const __m512 s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
  return static_cast<double>(_mm512_reduce_add_ps(s));
}

// 16 independent FMA chains: enough for 2 ports x 4-cycle latency with room to spare.
constexpr int kFmaChains = 16;

double fma_avx512(int64_t iters) {
  const __m512 a = _mm512_set1_ps(0.9999f);
  const __m512 b = _mm512_set1_ps(1e-4f);  // x -> a x + b converges to 1: no overflow, no denormals
  __m512 acc[kFmaChains];
#pragma GCC unroll 16
  for (int k = 0; k < kFmaChains; ++k) acc[k] = _mm512_set1_ps(static_cast<float>(k));
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int k = 0; k < kFmaChains; ++k) {
      asm("vfmadd213ps %[b], %[a], %[acc]" : [acc] "+v"(acc[k]) : [a] "v"(a), [b] "v"(b));
    }
  }
  __m512 s = acc[0];
#pragma GCC unroll 16
  for (int k = 1; k < kFmaChains; ++k) s = _mm512_add_ps(s, acc[k]);
  return static_cast<double>(_mm512_reduce_add_ps(s));
}

// vpdpbusd: 64 u8 x s8 multiply-adds into 16 int32 lanes; 16 chains cover its 5-cycle latency.
constexpr int kVnniChains = 16;

double int8_avx512_vnni(int64_t iters) {
  const __m512i a = _mm512_set1_epi8(3);
  const __m512i b = _mm512_set1_epi8(-2);
  __m512i acc[kVnniChains];
#pragma GCC unroll 16
  for (int k = 0; k < kVnniChains; ++k) acc[k] = _mm512_set1_epi32(k);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int k = 0; k < kVnniChains; ++k) {
      asm("vpdpbusd %[b], %[a], %[acc]" : [acc] "+v"(acc[k]) : [a] "v"(a), [b] "v"(b));
    }
  }
  __m512i s = acc[0];
#pragma GCC unroll 16
  for (int k = 1; k < kVnniChains; ++k) s = _mm512_add_epi32(s, acc[k]);
  return static_cast<double>(_mm512_reduce_add_epi32(s));
}

}  // namespace

const ReadLoop kReadAvx512 = {"avx512", read_sum_avx512};
const ReadLoop kReadTwoStreamsAvx512 = {"avx512 two streams", read_two_streams_avx512};
const ComputeLoop kFmaAvx512 = {"avx512 fma", 2.0 * 16 * kFmaChains, fma_avx512};
const ComputeLoop kInt8Avx512Vnni = {"avx512 vnni dpbusd", 2.0 * 64 * kVnniChains, int8_avx512_vnni};

}  // namespace mixserve::cpu::probe

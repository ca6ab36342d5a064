// AVX2+FMA variant of the vector kernels. Compiled with AVX2 enabled; reached only through
// kVectorKernelsAvx2 after vector_kernels_avx2() has checked the CPU.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "backends/cpu/prefetch.h"
#include "backends/cpu/vector_variants.h"

namespace mixserve::cpu {
namespace {

constexpr int64_t kLanes = 8;

// Lane masks for tails: loading 8 ints from kMaskTable + 8 - r enables the first r lanes.
alignas(64) constexpr int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

__m256i tail_mask(int64_t remaining) {
  const int64_t r = remaining >= kLanes ? kLanes : remaining;
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + kLanes - r));
}

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// exp(x) for float lanes; same method and accuracy as the AVX-512 variant (see exp_ps there):
// Cody-Waite reduction, degree-7 Taylor polynomial, two-step 2^n scaling; <= 1 ulp measured.
__m256 exp_ps(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-104.0f);
  const __m256 hi = _mm256_set1_ps(89.0f);
  // max/min return their second operand when one is NaN, so NaN inputs pass through.
  const __m256 t = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), t);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-6f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

void exp_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) _mm256_storeu_ps(y + i, exp_ps(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, exp_ps(_mm256_maskload_ps(x + i, m)));
  }
}

double hsum_pd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

// Sum of squares in double (two 4-lane halves per vector): no overflow for any finite x and an
// error far below float rounding, so y is accurate to a few float ulp whatever n is.
void rms_norm_avx2(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  __m256d a2 = _mm256_setzero_pd(), a3 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + kLanes);
    const __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(x0));
    const __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(x0, 1));
    const __m256d d2 = _mm256_cvtps_pd(_mm256_castps256_ps128(x1));
    const __m256d d3 = _mm256_cvtps_pd(_mm256_extractf128_ps(x1, 1));
    a0 = _mm256_fmadd_pd(d0, d0, a0);
    a1 = _mm256_fmadd_pd(d1, d1, a1);
    a2 = _mm256_fmadd_pd(d2, d2, a2);
    a3 = _mm256_fmadd_pd(d3, d3, a3);
  }
  for (; i < n; i += kLanes) {
    const __m256 xv = _mm256_maskload_ps(x + i, tail_mask(n - i));
    const __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(xv));
    const __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1));
    a0 = _mm256_fmadd_pd(d0, d0, a0);
    a1 = _mm256_fmadd_pd(d1, d1, a1);
  }
  const double sum = hsum_pd(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  const __m256 scale = _mm256_set1_ps(static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps)));
  for (i = 0; i + kLanes <= n; i += kLanes) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(xv, scale), _mm256_loadu_ps(w + i)));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    const __m256 xv = _mm256_maskload_ps(x + i, m);
    _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(_mm256_mul_ps(xv, scale), _mm256_maskload_ps(w + i, m)));
  }
}

void rope_avx2(float* x, int64_t head_dim, int64_t n_heads, int64_t n_rot, int64_t pos, float freq_base, bool neox) {
  const RopeTable t = rope_table(pos, n_rot, freq_base);
  const int64_t half = n_rot / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* head = x + h * head_dim;
    if (!neox) {
      // (x0, x1) pairs: swap neighbours and use the table's (-s, +s) signs, as in the AVX-512 code.
      for (int64_t i = 0; i < n_rot; i += kLanes) {
        const __m256i m = tail_mask(n_rot - i);
        const __m256 xv = _mm256_maskload_ps(head + i, m);
        const __m256 c = _mm256_maskload_ps(t.cos_pairs + i, m);
        const __m256 s = _mm256_maskload_ps(t.sin_signed + i, m);
        const __m256 swapped = _mm256_permute_ps(xv, 0xB1);
        _mm256_maskstore_ps(head + i, m, _mm256_fmadd_ps(xv, c, _mm256_mul_ps(swapped, s)));
      }
    } else {
      for (int64_t i = 0; i < half; i += kLanes) {
        const __m256i m = tail_mask(half - i);
        const __m256 a = _mm256_maskload_ps(head + i, m);
        const __m256 b = _mm256_maskload_ps(head + half + i, m);
        const __m256 c = _mm256_maskload_ps(t.cos + i, m);
        const __m256 s = _mm256_maskload_ps(t.sin + i, m);
        _mm256_maskstore_ps(head + i, m, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
        _mm256_maskstore_ps(head + half + i, m, _mm256_fmadd_ps(b, c, _mm256_mul_ps(a, s)));
      }
    }
  }
}

void softmax_avx2(float* x, int64_t n) {
  const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
  __m256 m0 = neg_inf, m1 = neg_inf, m2 = neg_inf, m3 = neg_inf;
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + i + kLanes));
    m2 = _mm256_max_ps(m2, _mm256_loadu_ps(x + i + 2 * kLanes));
    m3 = _mm256_max_ps(m3, _mm256_loadu_ps(x + i + 3 * kLanes));
  }
  for (; i < n; i += kLanes) {
    const __m256i m = tail_mask(n - i);
    const __m256 xv = _mm256_blendv_ps(neg_inf, _mm256_maskload_ps(x + i, m), _mm256_castsi256_ps(m));
    m0 = _mm256_max_ps(m0, xv);
  }
  const float max = hmax(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
  if (max == -INFINITY) {
    softmax_all_masked(x, n);
    return;
  }
  const __m256 mv = _mm256_set1_ps(max);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  for (i = 0; i + 4 * kLanes <= n; i += 4 * kLanes) {
    const __m256 e0 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
    const __m256 e1 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + kLanes), mv));
    const __m256 e2 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 2 * kLanes), mv));
    const __m256 e3 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 3 * kLanes), mv));
    _mm256_storeu_ps(x + i, e0);
    _mm256_storeu_ps(x + i + kLanes, e1);
    _mm256_storeu_ps(x + i + 2 * kLanes, e2);
    _mm256_storeu_ps(x + i + 3 * kLanes, e3);
    s0 = _mm256_add_ps(s0, e0);
    s1 = _mm256_add_ps(s1, e1);
    s2 = _mm256_add_ps(s2, e2);
    s3 = _mm256_add_ps(s3, e3);
  }
  for (; i < n; i += kLanes) {
    const __m256i m = tail_mask(n - i);
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), mv));
    _mm256_maskstore_ps(x + i, m, e);
    s0 = _mm256_add_ps(s0, _mm256_and_ps(e, _mm256_castsi256_ps(m)));
  }
  const float sum = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / static_cast<double>(sum)));
  for (i = 0; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(x + i, m, _mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv));
  }
}

// silu(g) = g * sigmoid(g), sigmoid from e = exp(-|g|) as in the scalar variant (no overflow).
__m256 swiglu8(__m256 g, __m256 u) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 neg_abs = _mm256_or_ps(g, _mm256_set1_ps(-0.0f));
  const __m256 e = exp_ps(neg_abs);
  const __m256 num = _mm256_blendv_ps(e, one, _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_GE_OQ));
  const __m256 sigmoid = _mm256_div_ps(num, _mm256_add_ps(one, e));
  return _mm256_mul_ps(_mm256_mul_ps(g, sigmoid), u);
}

void swiglu_avx2(const float* gate, const float* up, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(y + i, swiglu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, swiglu8(_mm256_maskload_ps(gate + i, m), _mm256_maskload_ps(up + i, m)));
  }
}

void add_avx2(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, _mm256_add_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m)));
  }
}

// The four sums of a0..a3 (a_i summed over its lanes as ((0+1)+(2+3))+((4+5)+(6+7))), times scale.
void store_sums4(__m256 a0, __m256 a1, __m256 a2, __m256 a3, float scale, float* out) {
  const __m256 h01 = _mm256_hadd_ps(a0, a1);
  const __m256 h23 = _mm256_hadd_ps(a2, a3);
  const __m256 h = _mm256_hadd_ps(h01, h23);
  const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  _mm_storeu_ps(out, _mm_mul_ps(sums, _mm_set1_ps(scale)));
}

// dot(q_h, k_j) * scale for four keys at once and kHeads query heads (1 or 2) q + h * q_stride,
// into out + h * out_stride: 4 * kHeads independent FMA chains, each key chunk loaded once for
// both heads. Each head gets the bits of a call of its own.
template <int kHeads>
void dot4(const float* q, int64_t q_stride, const float* k, int64_t kv_stride, int64_t head_dim, float scale,
          float* out, int64_t out_stride) {
  __m256 a[kHeads][4];
#pragma GCC unroll 8
  for (int h = 0; h < kHeads; ++h) {
    for (auto& v : a[h]) v = _mm256_setzero_ps();
  }
  const float* kr[4] = {k, k + kv_stride, k + 2 * kv_stride, k + 3 * kv_stride};
  int64_t d = 0;
  for (; d + kLanes <= head_dim; d += kLanes) {
    __m256 qv[kHeads];
#pragma GCC unroll 8
    for (int h = 0; h < kHeads; ++h) qv[h] = _mm256_loadu_ps(q + h * q_stride + d);
#pragma GCC unroll 8
    for (int r = 0; r < 4; ++r) {
      __m256 kv = _mm256_loadu_ps(kr[r] + d);
      asm("" : "+x"(kv));  // one load for both heads, not a memory operand per head
#pragma GCC unroll 8
      for (int h = 0; h < kHeads; ++h) a[h][r] = _mm256_fmadd_ps(qv[h], kv, a[h][r]);
    }
  }
  if (d < head_dim) {
    const __m256i m = tail_mask(head_dim - d);
    __m256 qv[kHeads];
#pragma GCC unroll 8
    for (int h = 0; h < kHeads; ++h) qv[h] = _mm256_maskload_ps(q + h * q_stride + d, m);
#pragma GCC unroll 8
    for (int r = 0; r < 4; ++r) {
      const __m256 kv = _mm256_maskload_ps(kr[r] + d, m);
#pragma GCC unroll 8
      for (int h = 0; h < kHeads; ++h) a[h][r] = _mm256_fmadd_ps(qv[h], kv, a[h][r]);
    }
  }
#pragma GCC unroll 8
  for (int h = 0; h < kHeads; ++h) store_sums4(a[h][0], a[h][1], a[h][2], a[h][3], scale, out + h * out_stride);
}

float dot1(const float* q, const float* k, int64_t head_dim) {
  __m256 a = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + kLanes <= head_dim; d += kLanes) {
    a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), a);
  }
  if (d < head_dim) {
    const __m256i m = tail_mask(head_dim - d);
    a = _mm256_fmadd_ps(_mm256_maskload_ps(q + d, m), _mm256_maskload_ps(k + d, m), a);
  }
  return hsum(a);
}

// How many cache rows ahead of the one in use the attention kernel prefetches key and value rows.
// One KV head's part of a row is a few lines, a whole cache row away from the next, a pattern the
// hardware prefetchers did not follow: in decoding, whose weight stream evicts the cache between
// layers, attention read its rows at about 5 GB/s per core. Zen 3 VM, TinyLlama Q4_0 decode, steps
// with and without alternating in one process: attention took 22-25% less time at tg128 and 34-35%
// less at tg512 with 8 rows; 16 and 32 rows ahead did no better.
constexpr int64_t kPrefetchRows = 8;

// Prefetches the lines holding row[0, floats).
inline void prefetch_row(const float* row, int64_t floats) {
  for (int64_t d = 0; d < floats; d += 16) prefetch_t0(row + d);
  prefetch_t0(row + floats - 1);
}

// Running sums of out[0, width) = sum_j p_j v_j[0, width) for width <= kNv * 8 dims over rows
// [j0, j1): two accumulator sets (even and odd j) keep 2 * kNv FMA chains in flight; they start
// from state[0, kNv) and state[kNv, 2 kNv) and go back there. Blocks hold an even number of rows
// (but the last) and j0 and j1 are even (or n_kv), so the pairs, hence the sums, are those of one
// pass over contiguous rows, however the rows are split. kPrefetch: the rows are in the cache
// (not a tile in L1), so rows kPrefetchRows ahead are prefetched, two per pair.
template <int kNv, bool kPrefetch>
void weighted_sum_rows(const float* p, const float* const* v_blocks, int64_t block_rows, int64_t kv_stride, int64_t j0,
                       int64_t j1, int64_t d0, int64_t width, __m256* state) {
  __m256i masks[kNv];
  __m256 even[kNv], odd[kNv];
#pragma GCC unroll 16
  for (int c = 0; c < kNv; ++c) {
    masks[c] = tail_mask(width - c * kLanes);
    even[c] = _mm256_load_ps(reinterpret_cast<const float*>(state + c));
    odd[c] = _mm256_load_ps(reinterpret_cast<const float*>(state + kNv + c));
  }
  const bool full = width == kNv * kLanes;
  int64_t j = j0;
  for (int64_t jb = j0 / block_rows * block_rows; jb < j1; jb += block_rows) {
    const float* vb = v_blocks[jb / block_rows] + d0;
    const int64_t end = jb + block_rows < j1 ? jb + block_rows : j1;
    for (; j + 2 <= end; j += 2) {
      const __m256 p0 = _mm256_set1_ps(p[j]);
      const __m256 p1 = _mm256_set1_ps(p[j + 1]);
      const float* v0 = vb + (j - jb) * kv_stride;
      const float* v1 = v0 + kv_stride;
      if (kPrefetch && j + kPrefetchRows + 2 <= end) {
        prefetch_row(v0 + kPrefetchRows * kv_stride, width);
        prefetch_row(v1 + kPrefetchRows * kv_stride, width);
      }
      if (full) {
#pragma GCC unroll 16
        for (int c = 0; c < kNv; ++c) {
          even[c] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + c * kLanes), even[c]);
          odd[c] = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + c * kLanes), odd[c]);
        }
      } else {
#pragma GCC unroll 16
        for (int c = 0; c < kNv; ++c) {
          even[c] = _mm256_fmadd_ps(p0, _mm256_maskload_ps(v0 + c * kLanes, masks[c]), even[c]);
          odd[c] = _mm256_fmadd_ps(p1, _mm256_maskload_ps(v1 + c * kLanes, masks[c]), odd[c]);
        }
      }
    }
    if (j < end) {
      const __m256 p0 = _mm256_set1_ps(p[j]);
      const float* v0 = vb + (j - jb) * kv_stride;
#pragma GCC unroll 16
      for (int c = 0; c < kNv; ++c) {
        even[c] = _mm256_fmadd_ps(p0, _mm256_maskload_ps(v0 + c * kLanes, masks[c]), even[c]);
      }
      ++j;
    }
  }
#pragma GCC unroll 16
  for (int c = 0; c < kNv; ++c) {
    _mm256_store_ps(reinterpret_cast<float*>(state + c), even[c]);
    _mm256_store_ps(reinterpret_cast<float*>(state + kNv + c), odd[c]);
  }
}

// Queries computed together, at most (a prompt's tokens times the heads sharing a KV head): their
// running sums (2 x 4 vectors each) wait in memory while the others pass over the same rows.
constexpr int64_t kMaxQueries = 32;
// Rows the queries pass over at a time, copied once into a contiguous tile that stays in L1 from
// the first query to the last (in place, value rows a power of two apart would crowd into a few L1
// sets and evict each other).
constexpr int64_t kRowTile = 64;
constexpr int64_t kChunk = 4 * kLanes;

// Up to kMaxQueries queries of `a`: where query i reads q and writes out (floats from a.q and
// a.out), its scores (scratch + i * rows), its token and how many rows it attends to.
struct QueryBatch {
  QueryBatch(const AttentionQueries& queries, int64_t first, int64_t n)
      : a(queries), count(n), rows(attention_rows(queries)) {
    for (int64_t i = 0; i < count; ++i) {
      const int64_t t = (first + i) / a.n_heads;
      token_[i] = t;
      offset_[i] = t * a.token_stride + (first + i) % a.n_heads * a.head_stride;
    }
  }
  const AttentionQueries& a;
  int64_t count;  ///< queries in the batch
  int64_t rows;   ///< attention_rows(a): the scratch rows' stride
  int64_t token(int64_t i) const { return token_[i]; }
  int64_t offset(int64_t i) const { return offset_[i]; }
  int64_t n_kv(int64_t i) const { return a.n_kv + token_[i]; }

 private:
  int64_t token_[kMaxQueries];
  int64_t offset_[kMaxQueries];
};

// out[d0, d0 + width) of every query of the batch, its weights at scratch + i * rows: the queries
// take turns over tiles of kRowTile rows, so each tile of the value rows is read from L2 or memory
// once for all of them. Query i stops at its own n_kv; a tile starts at an even row, so its pairs
// of rows, hence its sums, are those of one pass of its own.
template <int kNv>
void weighted_sums(const QueryBatch& b, const float* scratch, const float* const* v_blocks, int64_t block_rows,
                   int64_t kv_stride, int64_t d0, int64_t width) {
  alignas(32) __m256 state[kMaxQueries][2 * kNv];
  for (int64_t i = 0; i < b.count; ++i) {
    for (auto& v : state[i]) v = _mm256_setzero_ps();
  }
  const int64_t n_kv = b.n_kv(b.count - 1);  // the most any query of the batch attends to
  if (b.count == 1) {
    weighted_sum_rows<kNv, true>(scratch, v_blocks, block_rows, kv_stride, 0, n_kv, d0, width, state[0]);
  } else {
    alignas(32) float tile[kRowTile * kNv * kLanes];
    const float* tile_block = tile;
    for (int64_t j0 = 0; j0 < n_kv; j0 += kRowTile) {
      const int64_t rows = n_kv - j0 < kRowTile ? n_kv - j0 : kRowTile;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t j = j0 + r;
        const float* src = v_blocks[j / block_rows] + j % block_rows * kv_stride + d0;
        if (j % block_rows + kPrefetchRows < block_rows && j + kPrefetchRows < n_kv) {
          prefetch_row(src + kPrefetchRows * kv_stride, width);
        }
#pragma GCC unroll 16
        for (int c = 0; c < kNv; ++c) {
          _mm256_store_ps(tile + (r * kNv + c) * kLanes,
                          _mm256_maskload_ps(src + c * kLanes, tail_mask(width - c * kLanes)));
        }
      }
      for (int64_t i = 0; i < b.count; ++i) {
        const int64_t mine = b.n_kv(i) - j0 < rows ? b.n_kv(i) - j0 : rows;
        if (mine <= 0) continue;
        weighted_sum_rows<kNv, false>(scratch + i * b.rows + j0, &tile_block, rows, kNv * kLanes, 0, mine, 0, width,
                                      state[i]);
      }
    }
  }
  for (int64_t i = 0; i < b.count; ++i) {
    float* out = b.a.out + b.offset(i) + d0;
#pragma GCC unroll 16
    for (int c = 0; c < kNv; ++c) {
      _mm256_maskstore_ps(out + c * kLanes, tail_mask(width - c * kLanes),
                          _mm256_add_ps(state[i][c], state[i][kNv + c]));
    }
  }
}

// The scores of one batch into scratch + i * rows. A query scores the keys of each block in groups
// of four (dot4) up to its own n_kv and the block's last whole group, and the rest one by one
// (dot1), exactly as a call of its own does; each group of four keys is scored for every query
// while its rows are in L1, two heads of a token at a time.
void scores(const QueryBatch& b, const float* const* k_blocks, int64_t block_rows, int64_t kv_stride, int64_t head_dim,
            float scale, float* scratch) {
  const int64_t n_kv = b.n_kv(b.count - 1);
  for (int64_t jb = 0; jb < n_kv; jb += block_rows) {
    const float* kb = k_blocks[jb / block_rows];
    const int64_t block_end = jb + block_rows < n_kv ? jb + block_rows : n_kv;
    for (int64_t j = jb; j < block_end; j += 4) {
      const float* kj = kb + (j - jb) * kv_stride;
      for (int64_t r = kPrefetchRows; r < kPrefetchRows + 4 && j + r < block_end; ++r) {
        prefetch_row(kj + r * kv_stride, head_dim);
      }
      int64_t i = 0;
      while (i < b.count) {
        const int64_t end = jb + block_rows < b.n_kv(i) ? jb + block_rows : b.n_kv(i);
        const float* q = b.a.q + b.offset(i);
        float* out = scratch + i * b.rows + j;
        if (j + 4 <= end) {
          const bool pair = i + 1 < b.count && b.token(i + 1) == b.token(i);
          if (pair) {
            dot4<2>(q, b.a.head_stride, kj, kv_stride, head_dim, scale, out, b.rows);
          } else {
            dot4<1>(q, b.a.head_stride, kj, kv_stride, head_dim, scale, out, b.rows);
          }
          i += pair ? 2 : 1;
          continue;
        }
        for (int64_t jj = j; jj < end; ++jj) out[jj - j] = dot1(q, kj + (jj - j) * kv_stride, head_dim) * scale;
        ++i;
      }
    }
  }
}

}  // namespace

// Grouped-query attention: the queries of `a` over the same keys and values, in batches of up to
// kMaxQueries, so the cache rows are read once per batch instead of once per query. Each query gets
// exactly the operations, hence the bits, of a call of its own (attention_head_avx2).
void attention_queries_avx2(const AttentionQueries& a, const float* const* k_blocks, const float* const* v_blocks,
                            int64_t block_rows, int64_t kv_stride, int64_t head_dim, float scale, float* scratch) {
  const int64_t rows = attention_rows(a);
  const int64_t n_q = a.n_tokens * a.n_heads;
  for (int64_t first = 0; first < n_q; first += kMaxQueries) {
    const QueryBatch b(a, first, n_q - first < kMaxQueries ? n_q - first : kMaxQueries);
    float* sb = scratch + first * rows;
    scores(b, k_blocks, block_rows, kv_stride, head_dim, scale, sb);
    for (int64_t i = 0; i < b.count; ++i) softmax_avx2(sb + i * rows, b.n_kv(i));
    for (int64_t d0 = 0; d0 < head_dim; d0 += kChunk) {
      const int64_t width = head_dim - d0 < kChunk ? head_dim - d0 : kChunk;
      switch ((width + kLanes - 1) / kLanes) {
        case 1: weighted_sums<1>(b, sb, v_blocks, block_rows, kv_stride, d0, width); break;
        case 2: weighted_sums<2>(b, sb, v_blocks, block_rows, kv_stride, d0, width); break;
        case 3: weighted_sums<3>(b, sb, v_blocks, block_rows, kv_stride, d0, width); break;
        default: weighted_sums<4>(b, sb, v_blocks, block_rows, kv_stride, d0, width); break;
      }
    }
  }
}

void attention_head_avx2(const float* q, const float* const* k_blocks, const float* const* v_blocks, int64_t block_rows,
                         int64_t kv_stride, int64_t head_dim, int64_t n_kv, float scale, float* out, float* scratch) {
  const AttentionQueries a{.q = q, .out = out, .n_kv = n_kv};
  attention_queries_avx2(a, k_blocks, v_blocks, block_rows, kv_stride, head_dim, scale, scratch);
}

const VectorKernelTable kVectorKernelsAvx2 = {
    "avx2",   rms_norm_avx2,       rope_avx2, softmax_avx2,           swiglu_avx2,
    add_avx2, attention_head_avx2, exp_avx2,  attention_queries_avx2,
};

}  // namespace mixserve::cpu

// AVX-512 matmul kernels (F, BW, VL, VNNI). Tiles of R rows x T tokens share weight and
// activation loads, but every output keeps its own accumulator and sees exactly the same
// instruction sequence whatever the tile shape, so results never depend on n_tok, r0 or r1.
// Only intrinsics and functions of this file are used here (no shared inline templates), so no
// AVX-512 code can leak into generic code through the linker.
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* helpers
// when inlined (GCC bug 105593, fixed in 12.3/13); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "backends/cpu/matmul_variants.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

using quant::BlockQ8_0;
constexpr int64_t kQK = quant::kQK;

int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

// Fixed-order horizontal sum (the same in every kernel of this file).
inline float hsum(__m512 v) {
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}

float half_to_float(const void* p) {
  uint16_t h;
  __builtin_memcpy(&h, p, sizeof(h));
  return _cvtsh_ss(h);
}

// ---- Activation quantisation: byte-identical to quant::quantize_row(Q8_0) for finite input.

// round(v) with halves away from zero, as std::round: trunc, then step by one if |frac| >= 0.5.
inline __m512i round_away(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 frac = _mm512_sub_ps(v, t);
  const __mmask16 step = _mm512_cmp_ps_mask(_mm512_abs_ps(frac), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN));
  const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_set1_epi32(0x3F800000)));
  return _mm512_cvtps_epi32(_mm512_mask_add_ps(t, step, t, one));
}

void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + b * kQK);
    const __m512 v1 = _mm512_loadu_ps(x + b * kQK + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = quant::f32_to_fp16(d);
    const __m512 vid = _mm512_set1_ps(id);
    const __m128i q0 = _mm512_cvtsepi32_epi8(round_away(_mm512_mul_ps(v0, vid)));
    const __m128i q1 = _mm512_cvtsepi32_epi8(round_away(_mm512_mul_ps(v1, vid)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].qs), q0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].qs + 16), q1);
  }
}

void convert_activation_avx512(DType wtype, const float* x, void* dst, int64_t k) {
  if (wtype == DType::kQ8_0 || wtype == DType::kQ4_0) {
    quantize_q8_0(x, static_cast<BlockQ8_0*>(dst), k / kQK);
  } else {
    __builtin_memcpy(dst, x, static_cast<size_t>(k) * sizeof(float));
  }
}

// ---- Quantised weights (Q8_0, Q4_0) x Q8_0 activations.
//
// Every output is computed as  acc = 0; for each block b: acc = fma(float(isum_b), dw_b * dx_b, acc)
// with isum_b the exact integer dot product of the block. The 16 lanes of a register hold 16
// different rows (one output each), so the float work is shared by 16 outputs and no horizontal
// sums are needed. A tile of 16 rows is first transposed ("repacked") so that register i of block
// b holds the 4-byte group i (elements 4i..4i+3) of all 16 rows; one vpdpbusd with the matching
// group of a token's activations, broadcast to all lanes, then advances all 16 dot products.
// vpdpbusd multiplies unsigned by signed bytes, so the weights supply the unsigned side (Q4_0: the
// raw nibbles 0..15; Q8_0: w + 128) and each token block's correction (-8 or -128 times the sum of
// its activations) is the accumulator's starting value.

// After the in-lane 4x4 transposes, lane position 4L+q holds row 4q+L of the tile (an involution).
alignas(64) constexpr int32_t kLaneRow[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
constexpr int kTileRows = 16;
constexpr int kMaxTokens = 8;  // tokens per register tile

// One block of a 16-row tile: the unsigned operands of the 8 groups and the 16 row scales.
struct alignas(64) TileBlock {
  uint8_t a[8][64];
  float d[16];
};

// Per token and block: the correction and the activation scale.
struct XMeta {
  int32_t corr;
  float d;
};

// Rows 4q..4q+3 of the tile (p points at row 4q), 16 bytes each, one per 128-bit lane; rows at or
// beyond n_rows (counted from row 4q) read as zeros when !kFull.
template <bool kFull>
inline __m512i load_rows_x4(const uint8_t* p, size_t stride, int n_rows) {
  if (kFull) {
    const __m512i z = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m512i z1 = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + stride)), 1);
    const __m512i z2 = _mm512_inserti32x4(z1, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * stride)), 2);
    return _mm512_inserti32x4(z2, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 3 * stride)), 3);
  }
  const auto row = [&](int l) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + l * stride)); };
  __m512i z = _mm512_setzero_si512();
  if (n_rows > 0) z = _mm512_inserti32x4(z, row(0), 0);
  if (n_rows > 1) z = _mm512_inserti32x4(z, row(1), 1);
  if (n_rows > 2) z = _mm512_inserti32x4(z, row(2), 2);
  if (n_rows > 3) z = _mm512_inserti32x4(z, row(3), 3);
  return z;
}

// 16 bytes of each of the 16 rows at p + row * stride, as dword groups: u[j] lane position 4L+q
// holds dword j of row 4q+L (in-lane 4x4 transposes).
template <bool kFull>
inline void load_transposed(const uint8_t* p, size_t stride, int n_rows, __m512i (&u)[4]) {
  __m512i z[4];
  const size_t stride4 = 4 * stride;
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) z[q] = load_rows_x4<kFull>(p + q * stride4, stride, n_rows - 4 * q);
  const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]);
  const __m512i t1 = _mm512_unpackhi_epi32(z[0], z[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]);
  const __m512i t3 = _mm512_unpackhi_epi32(z[2], z[3]);
  u[0] = _mm512_unpacklo_epi64(t0, t2);
  u[1] = _mm512_unpackhi_epi64(t0, t2);
  u[2] = _mm512_unpacklo_epi64(t1, t3);
  u[3] = _mm512_unpackhi_epi64(t1, t3);
}

// Where the tile's block scales are: one gather per block when row offsets fit in int32.
struct ScaleGather {
  bool use_gather;
  __m512i offsets;  // kLaneRow[p] * row stride
};

inline __m512 tile_scales(const uint8_t* blk, size_t wrb, int n_rows, const ScaleGather& g) {
  __m512i h;
  if (g.use_gather) {
    const __mmask16 m = _mm512_cmplt_epi32_mask(_mm512_load_si512(kLaneRow), _mm512_set1_epi32(n_rows));
    h = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, g.offsets, blk, 1);
  } else {
    alignas(64) int32_t tmp[16];
    for (int p = 0; p < 16; ++p) {
      uint16_t v = 0;
      if (kLaneRow[p] < n_rows) __builtin_memcpy(&v, blk + kLaneRow[p] * wrb, sizeof(v));
      tmp[p] = v;
    }
    h = _mm512_load_si512(tmp);
  }
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h));  // the fp16 is the low half of each dword
}

// Q4_0: the unsigned operand is the nibble itself; group j < 4 is the low nibbles of qs[4j..4j+3],
// group 4+j the high nibbles.
struct Q4Kind {
  static constexpr size_t kBlockBytes = sizeof(quant::BlockQ4_0);
  static constexpr int kCorr = 8;
  template <bool kFull>
  static inline void transpose(const uint8_t* blk, size_t wrb, int n_rows, __m512i (&a)[8]) {
    __m512i u[4];
    load_transposed<kFull>(blk + 2, wrb, n_rows, u);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      a[j] = _mm512_and_si512(u[j], low4);
      a[4 + j] = _mm512_and_si512(_mm512_srli_epi16(u[j], 4), low4);
    }
  }
};

// Q8_0: the unsigned operand is w + 128 (w xor 0x80).
struct Q8Kind {
  static constexpr size_t kBlockBytes = sizeof(BlockQ8_0);
  static constexpr int kCorr = 128;
  template <bool kFull>
  static inline void transpose(const uint8_t* blk, size_t wrb, int n_rows, __m512i (&a)[8]) {
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i u[4];
    load_transposed<kFull>(blk + 2, wrb, n_rows, u);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) a[j] = _mm512_xor_si512(u[j], bias);
    load_transposed<kFull>(blk + 18, wrb, n_rows, u);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) a[4 + j] = _mm512_xor_si512(u[j], bias);
  }
};

template <class Kind, bool kFull>
void repack_tile(const uint8_t* w, size_t wrb, int n_rows, int64_t nb, const ScaleGather& g,
                 TileBlock* out) {
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = w + b * Kind::kBlockBytes;
    __m512i a[8];
    Kind::template transpose<kFull>(blk, wrb, n_rows, a);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) _mm512_store_si512(out[b].a[i], a[i]);
    _mm512_store_ps(out[b].d, tile_scales(blk, wrb, n_rows, g));
  }
}

void prepare_x(const uint8_t* x, int64_t nb, int corr, XMeta* out) {
  const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = x + b * static_cast<int64_t>(sizeof(BlockQ8_0));
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    const __m256i s4 = _mm256_sad_epu8(_mm256_xor_si256(q, bias), _mm256_setzero_si256());
    const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
    const int64_t sum = _mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1) - 32 * 128;
    out[b].corr = static_cast<int32_t>(-corr * sum);
    out[b].d = half_to_float(blk);
  }
}

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

// Stores the outputs of a tile's rows (lane position p holds row kLaneRow[p]) at y[0..n_rows).
inline void store_rows(__m512 acc, int n_rows, float* y) {
  const __m512 out = _mm512_permutexvar_ps(_mm512_load_si512(kLaneRow), acc);
  if (n_rows >= kTileRows) {
    _mm512_storeu_ps(y, out);
  } else {
    _mm512_mask_storeu_ps(y, static_cast<__mmask16>((1u << n_rows) - 1), out);
  }
}

// 16 rows (repacked in wt) x T tokens (raw Q8_0 rows at x, stride xrb; metadata xm[t * nb + b]).
template <int T>
void tile_kernel(const TileBlock* wt, int64_t nb, const uint8_t* x, size_t xrb, const XMeta* xm,
                 float* y, int64_t ys, int n_rows) {
  __m512 acc[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* xq = x + b * static_cast<int64_t>(sizeof(BlockQ8_0)) + 2;
    __m512i isum[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) isum[t] = _mm512_set1_epi32(xm[t * nb + b].corr);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      const __m512i a = _mm512_load_si512(wt[b].a[i]);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        isum[t] = _mm512_dpbusd_epi32(isum[t], a, _mm512_set1_epi32(load_i32(xq + t * xrb + 4 * i)));
      }
    }
    const __m512 dw = _mm512_load_ps(wt[b].d);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(xm[t * nb + b].d));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), scale, acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) store_rows(acc[t], n_rows, y + t * ys);
}

// Software prefetch for the decode tiles: the hardware prefetchers lose track of 16 interleaved
// row streams. Every kEvery blocks each row gets kLines prefetches (consecutive addresses at most
// 64 bytes apart, so no cache line is skipped) kAhead blocks ahead of use, running on into the
// next tile's rows near the end of a tile.
template <class Kind>
struct RowPrefetch {
  static constexpr int64_t kAhead = 24;
  static constexpr int64_t kEvery = 128 / static_cast<int64_t>(Kind::kBlockBytes);
  const uint8_t* cur;
  const uint8_t* next;  // null: no next tile
  size_t wrb;
  int64_t nb;

  inline void at(int64_t b) const {
    if (b % kEvery != 0) return;
    int64_t ahead = b + kAhead;
    const uint8_t* base = cur;
    if (ahead >= nb) {
      if (next == nullptr) return;
      ahead -= nb;
      base = next;
    }
    const uint8_t* p = base + ahead * static_cast<int64_t>(Kind::kBlockBytes);
#pragma GCC unroll 16
    for (int r = 0; r < kTileRows; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(p + r * wrb), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + r * wrb + 64), _MM_HINT_T0);
    }
  }
};

// n_tok = 1: the same arithmetic as tile_kernel<1>, with each block transposed straight into
// registers instead of through a repacked tile.
template <class Kind, bool kFull>
void tile_decode(const uint8_t* w, size_t wrb, int n_rows, int64_t nb, const ScaleGather& g,
                 const uint8_t* x, const XMeta* xm, const uint8_t* next, float* y) {
  const RowPrefetch<Kind> prefetch{w, next, wrb, nb};
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    prefetch.at(b);
    const uint8_t* blk = w + b * Kind::kBlockBytes;
    const uint8_t* xq = x + b * static_cast<int64_t>(sizeof(BlockQ8_0)) + 2;
    __m512i a[8];
    Kind::template transpose<kFull>(blk, wrb, n_rows, a);
    __m512i isum = _mm512_set1_epi32(xm[b].corr);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) isum = _mm512_dpbusd_epi32(isum, a[i], _mm512_set1_epi32(load_i32(xq + 4 * i)));
    const __m512 scale = _mm512_mul_ps(tile_scales(blk, wrb, n_rows, g), _mm512_set1_ps(xm[b].d));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc);
  }
  store_rows(acc, n_rows, y);
}

void tile_tokens(const TileBlock* wt, int64_t nb, const uint8_t* x, size_t xrb, const XMeta* xm,
                 int64_t n_tok, float* y, int64_t ys, int n_rows) {
  int64_t t = 0;
  for (; t + kMaxTokens <= n_tok; t += kMaxTokens) {
    tile_kernel<kMaxTokens>(wt, nb, x + t * xrb, xrb, xm + t * nb, y + t * ys, ys, n_rows);
  }
  const uint8_t* xt = x + t * xrb;
  const XMeta* mt = xm + t * nb;
  float* yt = y + t * ys;
  switch (n_tok - t) {
    case 7: return tile_kernel<7>(wt, nb, xt, xrb, mt, yt, ys, n_rows);
    case 6: return tile_kernel<6>(wt, nb, xt, xrb, mt, yt, ys, n_rows);
    case 5: return tile_kernel<5>(wt, nb, xt, xrb, mt, yt, ys, n_rows);
    case 4: return tile_kernel<4>(wt, nb, xt, xrb, mt, yt, ys, n_rows);
    case 3: return tile_kernel<3>(wt, nb, xt, xrb, mt, yt, ys, n_rows);
    case 2: return tile_kernel<2>(wt, nb, xt, xrb, mt, yt, ys, n_rows);
    case 1: return tile_kernel<1>(wt, nb, xt, xrb, mt, yt, ys, n_rows);
    default: return;
  }
}

// Tokens are processed in panels whose activations stay in L2 while every row tile passes over them.
constexpr int64_t kPanelBytes = 512 * 1024;
constexpr int64_t kMaxPanel = 128;

template <class Kind>
void matmul_q(int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1, const uint8_t* x,
              size_t xrb, int64_t n_tok, float* y, int64_t ys) {
  const int64_t nb = k / kQK;
  const int64_t per_token = nb * static_cast<int64_t>(sizeof(BlockQ8_0) + sizeof(XMeta));
  const int64_t panel = min_i64(n_tok, max_i64(1, min_i64(kMaxPanel, kPanelBytes / per_token)));
  const auto tile_bytes = static_cast<size_t>(nb) * sizeof(TileBlock);
  auto* scratch = static_cast<uint8_t*>(matmul_scratch(tile_bytes + static_cast<size_t>(panel * nb) * sizeof(XMeta)));
  auto* wt = reinterpret_cast<TileBlock*>(scratch);
  auto* xm = reinterpret_cast<XMeta*>(scratch + tile_bytes);
  ScaleGather g{wrb <= static_cast<size_t>(INT32_MAX / kTileRows), _mm512_setzero_si512()};
  if (g.use_gather) {
    g.offsets = _mm512_mullo_epi32(_mm512_load_si512(kLaneRow), _mm512_set1_epi32(static_cast<int32_t>(wrb)));
  }
  for (int64_t t0 = 0; t0 < n_tok; t0 += panel) {
    const int64_t tp = min_i64(panel, n_tok - t0);
    for (int64_t t = 0; t < tp; ++t) prepare_x(x + (t0 + t) * xrb, nb, Kind::kCorr, xm + t * nb);
    for (int64_t r = r0; r < r1; r += kTileRows) {
      const auto n_rows = static_cast<int>(min_i64(kTileRows, r1 - r));
      if (tp == 1) {
        float* yr = y + t0 * ys + r;
        const uint8_t* next = r + 2 * kTileRows <= r1 ? w + (r + kTileRows) * wrb : nullptr;
        if (n_rows == kTileRows) {
          tile_decode<Kind, true>(w + r * wrb, wrb, n_rows, nb, g, x + t0 * xrb, xm, next, yr);
        } else {
          tile_decode<Kind, false>(w + r * wrb, wrb, n_rows, nb, g, x + t0 * xrb, xm, next, yr);
        }
        continue;
      }
      if (n_rows == kTileRows) {
        repack_tile<Kind, true>(w + r * wrb, wrb, n_rows, nb, g, wt);
      } else {
        repack_tile<Kind, false>(w + r * wrb, wrb, n_rows, nb, g, wt);
      }
      tile_tokens(wt, nb, x + t0 * xrb, xrb, xm, tp, y + t0 * ys + r, ys, n_rows);
    }
  }
}

// ---- Float weights (F32, F16, BF16) x F32 activations: acc += w[j..j+16) * x[j..j+16).

struct F32Weights {
  static __m512 load(const uint8_t* row, int64_t j) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + j);
  }
  static __m512 load_tail(const uint8_t* row, int64_t j, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + j);
  }
};

struct F16Weights {
  static __m512 load(const uint8_t* row, int64_t j) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * j)));
  }
  static __m512 load_tail(const uint8_t* row, int64_t j, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * j));
  }
};

struct BF16Weights {
  static __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 load(const uint8_t* row, int64_t j) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * j)));
  }
  static __m512 load_tail(const uint8_t* row, int64_t j, __mmask16 m) {
    return widen(_mm256_maskz_loadu_epi16(m, row + 2 * j));
  }
};

template <class W, int R, int T>
void f_tile(const uint8_t* w, size_t wrb, const uint8_t* x, size_t xrb, int64_t k, float* y,
            int64_t ys) {
  __m512 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  }
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    __m512 wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = W::load(w + r * wrb, j);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_loadu_ps(reinterpret_cast<const float*>(x + t * xrb) + j);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  if (j < k) {
    const auto m = static_cast<__mmask16>((1u << (k - j)) - 1);
    __m512 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = W::load_tail(w + r * wrb, j, m);
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(x + t * xrb) + j);
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) y[t * ys + r] = hsum(acc[r][t]);
  }
}

template <class W, int R>
void f_tile_tokens(const uint8_t* w, size_t wrb, const uint8_t* x, size_t xrb, int64_t k,
                   int64_t n_tok, float* y, int64_t ys) {
  int64_t t = 0;
  for (; t + 4 <= n_tok; t += 4) f_tile<W, R, 4>(w, wrb, x + t * xrb, xrb, k, y + t * ys, ys);
  switch (n_tok - t) {
    case 3: f_tile<W, R, 3>(w, wrb, x + t * xrb, xrb, k, y + t * ys, ys); break;
    case 2: f_tile<W, R, 2>(w, wrb, x + t * xrb, xrb, k, y + t * ys, ys); break;
    case 1: f_tile<W, R, 1>(w, wrb, x + t * xrb, xrb, k, y + t * ys, ys); break;
    default: break;
  }
}

template <class W>
void matmul_f(int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1, const uint8_t* x,
              size_t xrb, int64_t n_tok, float* y, int64_t ys) {
  const int64_t panel = max_i64(1, min_i64(kMaxPanel, static_cast<int64_t>(kPanelBytes) / (4 * k)));
  for (int64_t t0 = 0; t0 < n_tok; t0 += panel) {
    const int64_t tp = min_i64(panel, n_tok - t0);
    const uint8_t* xp = x + t0 * xrb;
    float* yp = y + t0 * ys;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) f_tile_tokens<W, 4>(w + r * wrb, wrb, xp, xrb, k, tp, yp + r, ys);
    for (; r < r1; ++r) f_tile_tokens<W, 1>(w + r * wrb, wrb, xp, xrb, k, tp, yp + r, ys);
  }
}

void matmul_rows_avx512(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0,
                        int64_t r1, const void* x, size_t x_row_bytes, int64_t n_tok, float* y,
                        int64_t y_stride) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  switch (wtype) {
    case DType::kQ4_0:
      return matmul_q<Q4Kind>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
    case DType::kQ8_0:
      return matmul_q<Q8Kind>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
    case DType::kF16:
      return matmul_f<F16Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
    case DType::kBF16:
      return matmul_f<BF16Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
    default:
      return matmul_f<F32Weights>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
  }
}

}  // namespace

const MatmulKernelTable kMatmulKernelsAvx512 = {"avx512", convert_activation_avx512,
                                                matmul_rows_avx512};

}  // namespace mixserve::cpu

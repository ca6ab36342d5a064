// AVX-512 VNNI kernels for quantised weights (Q8_0, Q4_0) x Q8_0 activations: batches here, one
// token in matmul_decode_avx512.cpp; the arithmetic contract is in matmul_quant_avx512.h.
// Both batch kernels put 16 rows' or 16 blocks' dword groups in the 16 lanes of a register, so one
// vpdpbusd per token advances 16 exact integer sums at once:
//  - small batches (up to 16 tokens, continuous-batching decode): each row in place, its blocks
//    transposed 16 at a time in registers and shared by all the tokens (small_batch_rows);
//  - larger batches (prefill): tiles of 16 rows repacked to scratch once and used by every token
//    of a panel (batch_rows); the 16 partial sums of each output then live in 16 registers (one
//    per partial, lanes = rows) and are added in the same tree as hsum.
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* helpers
// when inlined (GCC bug 105593, fixed in 12.3/13); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "backends/cpu/matmul_quant_avx512.h"

#include <array>
#include <utility>

#include "backends/cpu/matmul_variants.h"

namespace mixserve::cpu {
namespace {

using quant::BlockQ8_0;

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

// ---- Batches: tiles of 16 rows, transposed so that lane position 4L+q holds row 4q+L.

alignas(64) constexpr int32_t kLaneRow[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
constexpr int kTileRows = 16;
constexpr int kMaxTokens = 8;  // tokens per register tile

// One block of a 16-row tile: the unsigned operands of its 8 dword groups and the row scales.
struct alignas(64) TileBlock {
  uint8_t a[8][64];
  float d[16];
};

// Per token and block: the correction and the activation scale.
struct XMeta {
  int32_t corr;
  float d;
};

// Rows 4q..4q+3 (p points at row 4q), 16 bytes each, one per 128-bit lane; rows at or beyond
// n_rows (counted from row 4q) read as zeros when !kFull.
template <bool kFull>
inline __m512i load_rows_x4(const uint8_t* p, size_t stride, int n_rows) {
  const auto row = [&](int l) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + l * stride)); };
  if (kFull) {
    const __m512i z = _mm512_castsi128_si512(row(0));
    return _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(z, row(1), 1), row(2), 2), row(3), 3);
  }
  __m512i z = _mm512_setzero_si512();
  if (n_rows > 0) z = _mm512_inserti32x4(z, row(0), 0);
  if (n_rows > 1) z = _mm512_inserti32x4(z, row(1), 1);
  if (n_rows > 2) z = _mm512_inserti32x4(z, row(2), 2);
  if (n_rows > 3) z = _mm512_inserti32x4(z, row(3), 3);
  return z;
}

// 16 bytes of each tile row at p + row * stride as dword groups: u[j] lane 4L+q = dword j of row 4q+L.
template <bool kFull>
inline void load_transposed(const uint8_t* p, size_t stride, int n_rows, __m512i (&u)[4]) {
  __m512i z[4];
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) z[q] = load_rows_x4<kFull>(p + q * 4 * stride, stride, n_rows - 4 * q);
  const __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]);
  const __m512i t1 = _mm512_unpackhi_epi32(z[0], z[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]);
  const __m512i t3 = _mm512_unpackhi_epi32(z[2], z[3]);
  u[0] = _mm512_unpacklo_epi64(t0, t2);
  u[1] = _mm512_unpackhi_epi64(t0, t2);
  u[2] = _mm512_unpacklo_epi64(t1, t3);
  u[3] = _mm512_unpackhi_epi64(t1, t3);
}

struct Q4Tile {
  static constexpr size_t kBlockBytes = sizeof(quant::BlockQ4_0);
  static constexpr int kCorr = 8;
  static constexpr const int32_t* kLaneBlock = kLaneBlockQ4;
  // Group j < 4: low nibbles of qs[4j..4j+3] (elements 4j..); group 4+j: the high nibbles.
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

struct Q8Tile {
  static constexpr size_t kBlockBytes = sizeof(BlockQ8_0);
  static constexpr int kCorr = 128;
  static constexpr const int32_t* kLaneBlock = kLaneBlockQ8;
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

// The tile rows' fp16 block scales in lane order (one gather when row offsets fit in int32).
inline __m512 tile_scales(const uint8_t* blk, size_t wrb, int n_rows, bool use_gather, __m512i offsets) {
  __m512i h;
  if (use_gather) {
    const __mmask16 m = _mm512_cmplt_epi32_mask(_mm512_load_si512(kLaneRow), _mm512_set1_epi32(n_rows));
    h = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offsets, blk, 1);
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

// The rows of a tile are one contiguous range, but the repack walks it as 16 interleaved streams,
// which the hardware prefetchers serve at a fraction of the memory bandwidth. So while one tile is
// repacked, the next tile's range [next, next + next_bytes) is prefetched as one sequential stream.
template <class Kind, bool kFull>
void repack_tile(const uint8_t* w, size_t wrb, int n_rows, int64_t nb, bool use_gather, __m512i offsets,
                 const uint8_t* next, int64_t next_bytes, TileBlock* out) {
  const int64_t lines_per_block = (next_bytes / 64 + nb - 1) / nb;
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t i = 0; i < lines_per_block; ++i) {
      const int64_t off = (b * lines_per_block + i) * 64;
      if (off < next_bytes) _mm_prefetch(reinterpret_cast<const char*>(next + off), _MM_HINT_T1);
    }
    const uint8_t* blk = w + b * static_cast<int64_t>(Kind::kBlockBytes);
    __m512i a[8];
    Kind::template transpose<kFull>(blk, wrb, n_rows, a);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) _mm512_store_si512(out[b].a[i], a[i]);
    _mm512_store_ps(out[b].d, tile_scales(blk, wrb, n_rows, use_gather, offsets));
  }
}

void prepare_x_meta(const uint8_t* x, int64_t nb, int corr, XMeta* out) {
  for (int64_t b = 0; b < nb; ++b) {
    out[b].corr = -corr * block_sum(x + b * kXBlockBytes);
    out[b].d = half_to_float(x + b * kXBlockBytes);
  }
}

// Stores a tile's outputs (lane position p holds row kLaneRow[p]) at y[0..n_rows).
inline void store_rows(__m512 v, int n_rows, float* y) {
  const __m512 out = _mm512_permutexvar_ps(_mm512_load_si512(kLaneRow), v);
  if (n_rows >= kTileRows) {
    _mm512_storeu_ps(y, out);
  } else {
    _mm512_mask_storeu_ps(y, static_cast<__mmask16>((1u << n_rows) - 1), out);
  }
}

// 16 rows (repacked in wt) x T tokens (raw Q8_0 rows at x, stride xrb; metadata xm[t * nb + b]).
template <int T>
void tile_kernel(const TileBlock* wt, int64_t nb, const uint8_t* x, size_t xrb, const XMeta* xm,
                 const int32_t* lane_block, float* y, int64_t ys, int n_rows) {
  alignas(64) float partial[T][16][16];
  for (int l = 0; l < 16; ++l) {
    __m512 acc[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = lane_block[l]; b < nb; b += 16) {
      const uint8_t* xq = x + b * kXBlockBytes + 2;
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
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) _mm512_store_ps(partial[t][l], acc[t]);
  }
  // The partials reduced with hsum's tree, lane-wise across the 16 registers.
  for (int t = 0; t < T; ++t) {
    __m512 s[8];
    for (int i = 0; i < 8; ++i) s[i] = _mm512_add_ps(_mm512_load_ps(partial[t][i]), _mm512_load_ps(partial[t][i + 8]));
    for (int i = 0; i < 4; ++i) s[i] = _mm512_add_ps(s[i], s[i + 4]);
    for (int i = 0; i < 2; ++i) s[i] = _mm512_add_ps(s[i], s[i + 2]);
    store_rows(_mm512_add_ps(s[0], s[1]), n_rows, y + t * ys);
  }
}

void tile_tokens(const TileBlock* wt, int64_t nb, const uint8_t* x, size_t xrb, const XMeta* xm,
                 const int32_t* lane_block, int64_t n_tok, float* y, int64_t ys, int n_rows) {
  int64_t t = 0;
  for (; t + kMaxTokens <= n_tok; t += kMaxTokens) {
    tile_kernel<kMaxTokens>(wt, nb, x + t * xrb, xrb, xm + t * nb, lane_block, y + t * ys, ys, n_rows);
  }
  const uint8_t* xt = x + t * xrb;
  const XMeta* mt = xm + t * nb;
  float* yt = y + t * ys;
  switch (n_tok - t) {
    case 7: return tile_kernel<7>(wt, nb, xt, xrb, mt, lane_block, yt, ys, n_rows);
    case 6: return tile_kernel<6>(wt, nb, xt, xrb, mt, lane_block, yt, ys, n_rows);
    case 5: return tile_kernel<5>(wt, nb, xt, xrb, mt, lane_block, yt, ys, n_rows);
    case 4: return tile_kernel<4>(wt, nb, xt, xrb, mt, lane_block, yt, ys, n_rows);
    case 3: return tile_kernel<3>(wt, nb, xt, xrb, mt, lane_block, yt, ys, n_rows);
    case 2: return tile_kernel<2>(wt, nb, xt, xrb, mt, lane_block, yt, ys, n_rows);
    case 1: return tile_kernel<1>(wt, nb, xt, xrb, mt, lane_block, yt, ys, n_rows);
    default: return;
  }
}

// ---- Small batches: rows in place, in memory order (one sequential stream, as in decode), 16
// blocks at a time. The blocks of a group are transposed like the 16 rows of a tile (the tile
// loaders with the block size as the stride), so lane p holds block kLaneRow[p] of the group and
// one vpdpbusd chain per token leaves exact block sums in lanes: no repack through memory, no
// per-token reduction, and each activation operand is one plain vector load. Lane p accumulates
// the partial of the blocks b with b % 16 == kLaneRow[p] (the Q4_0 lane order); Q8_0 permutes its
// partials to its own order before the final sum, which changes no sum.
//
// Per token and group the hot loop issues 8 vpdpbusd, a multiply and an FMA (which share two
// ports on Zen 5) and 10 vector loads (two per cycle): 5 cycles either way, about 6 measured. The
// transposition (about 14 cycles for Q4_0, 27 for Q8_0) is shared by the tokens of a pass.

// One token's activations for group g (16 blocks), in kLaneRow order; zeros past nb.
struct alignas(64) XGroup {
  int8_t q[8][64];   // lane p of q[j]: bytes 4j..4j+3 of block 16g + kLaneRow[p]
  int32_t corr[16];  // the block's correction, -kCorr times the sum of its values
  float d[16];       // the block's scale
};

// Token t's groups go to out[g * stride] (all tokens of a group side by side, so that a pass reaches
// each token's group at a fixed offset from one pointer).
template <int kCorr>
void prepare_x_groups(const uint8_t* x, int64_t nb, XGroup* out, int64_t stride) {
  for (int64_t g = 0; 16 * g < nb; ++g) {
    const uint8_t* xb = x + 16 * g * kXBlockBytes;
    const auto n_valid = static_cast<int>(min_i64(16, nb - 16 * g));
    __m512i u[4];
    for (int half = 0; half < 2; ++half) {
      load_transposed<false>(xb + 2 + 16 * half, kXBlockBytes, n_valid, u);
      for (int j = 0; j < 4; ++j) _mm512_store_si512(out[g * stride].q[4 * half + j], u[j]);
    }
    for (int p = 0; p < 16; ++p) {
      const bool valid = kLaneRow[p] < n_valid;
      const uint8_t* blk = xb + kLaneRow[p] * kXBlockBytes;
      out[g * stride].corr[p] = valid ? -kCorr * block_sum(blk) : 0;
      out[g * stride].d[p] = valid ? half_to_float(blk) : 0.0f;
    }
  }
}

// order[l]: the kLaneRow lane holding the partial that Kind's lane order puts at l.
template <class Kind>
struct PartialOrder {
  alignas(64) int32_t order[16];
  constexpr PartialOrder() : order() {
    for (int l = 0; l < 16; ++l) {
      for (int p = 0; p < 16; ++p) {
        if (kLaneRow[p] == Kind::kLaneBlock[l]) order[l] = p;
      }
    }
  }
};

inline __mmask64 first_bytes(int64_t n) { return n >= 64 ? ~0ull : n <= 0 ? 0ull : (1ull << n) - 1; }

// The fp16 scales of a group's blocks in kLaneRow order. A gather costs about 20 cycles here, so
// instead: 64-byte windows of whole blocks (a block's scale opens it), each pair of windows merged
// by one word permute, and the permutes blended by lane.
template <int64_t kBlockBytes>
struct ScalePick {
  static constexpr int kPerWindow = static_cast<int>(62 / kBlockBytes + 1);  // scales in 64 bytes
  static constexpr int kPerms = 16 / (2 * kPerWindow);
  alignas(64) int16_t idx[kPerms][32];
  __mmask32 take[kPerms];  // lanes whose block the permute j holds
  constexpr ScalePick() : idx(), take() {
    for (int p = 0; p < 16; ++p) {
      const int j = kLaneRow[p] / (2 * kPerWindow);
      const int m = kLaneRow[p] % (2 * kPerWindow);
      const auto word = static_cast<int>(m % kPerWindow * kBlockBytes / 2);
      idx[j][p] = static_cast<int16_t>(m < kPerWindow ? word : 32 + word);
      take[j] |= 1u << p;
    }
  }
};

template <int64_t kBlockBytes, bool kFull>
inline __m512 group_scales(const uint8_t* blk, int n_valid) {
  static constexpr ScalePick<kBlockBytes> kPick;
  const auto window = [&](int w) {
    const int64_t off = w * kPick.kPerWindow * kBlockBytes;
    if (kFull) return _mm512_loadu_si512(blk + off);
    return _mm512_maskz_loadu_epi8(first_bytes(n_valid * kBlockBytes - off), blk + off);
  };
  __m512i d = _mm512_setzero_si512();
#pragma GCC unroll 4
  for (int j = 0; j < kPick.kPerms; ++j) {
    const __m512i dj = _mm512_permutex2var_epi16(window(2 * j), _mm512_load_si512(kPick.idx[j]), window(2 * j + 1));
    d = _mm512_mask_blend_epi16(kPick.take[j], d, dj);
  }
  return _mm512_cvtph_ps(_mm512_castsi512_si256(d));
}

// How far ahead of the group being read the row stream is prefetched (bytes), as in decode.
constexpr int64_t kRowPrefetchBytes = 4096;

// acc[t] += the group at blk (n_valid blocks) . token t, for T tokens (token t's group at xg[t]).
template <class Kind, int T, bool kFull>
inline void group_tokens(const uint8_t* blk, int n_valid, const XGroup* xg, __m512 (&acc)[T]) {
  constexpr auto kGroupBytes = static_cast<int64_t>(16 * Kind::kBlockBytes);
  for (int64_t off = 0; off < kGroupBytes; off += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(blk + kRowPrefetchBytes + off), _MM_HINT_T0);
  }
  __m512i a[8];
  Kind::template transpose<kFull>(blk, Kind::kBlockBytes, n_valid, a);
  const __m512 dw = group_scales<static_cast<int64_t>(Kind::kBlockBytes), kFull>(blk, n_valid);
  const __mmask16 valid = _mm512_cmplt_epi32_mask(_mm512_load_si512(kLaneRow), _mm512_set1_epi32(n_valid));
  // Two tokens at a time: their two vpdpbusd chains interleave.
#pragma GCC unroll 8
  for (int t0 = 0; t0 < T; t0 += 2) {
    const int nt = T - t0 < 2 ? 1 : 2;
    __m512i isum[2];
#pragma GCC unroll 2
    for (int u = 0; u < nt; ++u) isum[u] = _mm512_load_si512(xg[t0 + u].corr);
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
#pragma GCC unroll 2
      for (int u = 0; u < nt; ++u) isum[u] = _mm512_dpbusd_epi32(isum[u], a[j], _mm512_load_si512(xg[t0 + u].q[j]));
    }
#pragma GCC unroll 2
    for (int u = 0; u < nt; ++u) {
      const __m512 f = _mm512_cvtepi32_ps(isum[u]);
      const __m512 scale = _mm512_mul_ps(dw, _mm512_load_ps(xg[t0 + u].d));
      acc[t0 + u] = kFull ? _mm512_fmadd_ps(f, scale, acc[t0 + u]) : _mm512_mask3_fmadd_ps(f, scale, acc[t0 + u], valid);
    }
  }
}

// y[t * ys] = row . token t for T tokens (token t's group g at xg[g * xs + t]).
template <class Kind, int T>
void row_tokens(const uint8_t* row, int64_t nb, const XGroup* xg, int64_t xs, float* y, int64_t ys) {
  static constexpr PartialOrder<Kind> kOrder;
  constexpr auto kGroupBytes = static_cast<int64_t>(16 * Kind::kBlockBytes);
  __m512 acc[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  const int64_t full = nb / 16;
  for (int64_t g = 0; g < full; ++g) group_tokens<Kind, T, true>(row + g * kGroupBytes, 16, xg + g * xs, acc);
  if (16 * full < nb) {
    group_tokens<Kind, T, false>(row + full * kGroupBytes, static_cast<int>(nb - 16 * full), xg + full * xs, acc);
  }
  const __m512i order = _mm512_load_si512(kOrder.order);
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) y[t * ys] = hsum(_mm512_permutexvar_ps(order, acc[t]));
}

constexpr int kRowMaxTokens = 16;  // tokens per pass (their accumulators stay in registers)

using RowFn = void (*)(const uint8_t*, int64_t, const XGroup*, int64_t, float*, int64_t);

template <class Kind, int... Ts>
constexpr auto row_table(std::integer_sequence<int, Ts...>) {
  return std::array<RowFn, sizeof...(Ts)>{&row_tokens<Kind, Ts + 1>...};
}

// Activations per pass at most: the hot loop reads them at two vectors per cycle, which only L1
// sustains (past about 45 KiB a token-group costs 14 to 20 cycles instead of 6).
constexpr int64_t kRowPassBytes = 40 * 1024;
// Rows per block when a batch takes two passes: the block's rows stay in L2 for the second.
constexpr int64_t kRowBlock = 16;

// Tokens per pass of the small-batch kernel (0: the batch goes to the tiles). Each pass repeats
// the transposition, so beyond two passes (large k) the tiles are faster.
inline int64_t row_pass_tokens(int64_t k, int64_t n_tok) {
  if (n_tok > kRowMaxTokens) return 0;
  const int64_t per_token = (k / kQKBlock + 15) / 16 * static_cast<int64_t>(sizeof(XGroup));
  const int64_t fit = kRowPassBytes / per_token;
  if (fit >= n_tok) return n_tok;
  return 2 * fit >= n_tok ? (n_tok + 1) / 2 : 0;
}

template <class Kind>
void small_batch_rows(int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1, const uint8_t* x,
                      size_t xrb, int64_t n_tok, int64_t pass, float* y, int64_t ys) {
  static constexpr auto kRowFns = row_table<Kind>(std::make_integer_sequence<int, kRowMaxTokens>());
  const int64_t nb = k / kQKBlock;
  const int64_t n_groups = (nb + 15) / 16;
  auto* xg = static_cast<XGroup*>(matmul_scratch(static_cast<size_t>(n_tok * n_groups) * sizeof(XGroup)));
  for (int64_t t = 0; t < n_tok; ++t) prepare_x_groups<Kind::kCorr>(x + t * xrb, nb, xg + t, n_tok);
  const int64_t block = pass >= n_tok ? r1 - r0 : kRowBlock;
  for (int64_t rb = r0; rb < r1; rb += block) {
    const int64_t re = min_i64(r1, rb + block);
    for (int64_t t0 = 0; t0 < n_tok; t0 += pass) {
      const auto fn = kRowFns[static_cast<size_t>(min_i64(pass, n_tok - t0) - 1)];
      for (int64_t r = rb; r < re; ++r) fn(w + r * wrb, nb, xg + t0, n_tok, y + t0 * ys + r, ys);
    }
  }
}

// Tokens go in panels whose activations stay in L2 while every row tile passes over them.
constexpr int64_t kPanelBytes = 512 * 1024;
constexpr int64_t kMaxPanel = 128;

template <class Kind>
void batch_rows(int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1, const uint8_t* x,
                size_t xrb, int64_t n_tok, float* y, int64_t ys) {
  const int64_t nb = k / kQKBlock;
  const int64_t per_token = nb * static_cast<int64_t>(kXBlockBytes + sizeof(XMeta));
  const int64_t panel = min_i64(n_tok, max_i64(1, min_i64(kMaxPanel, kPanelBytes / per_token)));
  const auto tile_bytes = static_cast<size_t>(nb) * sizeof(TileBlock);
  auto* scratch = static_cast<uint8_t*>(matmul_scratch(tile_bytes + static_cast<size_t>(panel * nb) * sizeof(XMeta)));
  auto* wt = reinterpret_cast<TileBlock*>(scratch);
  auto* xm = reinterpret_cast<XMeta*>(scratch + tile_bytes);
  const bool use_gather = wrb <= static_cast<size_t>(INT32_MAX / kTileRows);
  const __m512i offsets = use_gather ? _mm512_mullo_epi32(_mm512_load_si512(kLaneRow), _mm512_set1_epi32(static_cast<int32_t>(wrb)))
                                     : _mm512_setzero_si512();
  for (int64_t t0 = 0; t0 < n_tok; t0 += panel) {
    const int64_t tp = min_i64(panel, n_tok - t0);
    for (int64_t t = 0; t < tp; ++t) prepare_x_meta(x + (t0 + t) * xrb, nb, Kind::kCorr, xm + t * nb);
    for (int64_t r = r0; r < r1; r += kTileRows) {
      const auto n_rows = static_cast<int>(min_i64(kTileRows, r1 - r));
      const uint8_t* next = w + (r + kTileRows) * wrb;
      const int64_t next_bytes = min_i64(kTileRows, max_i64(0, r1 - r - kTileRows)) * static_cast<int64_t>(wrb);
      if (n_rows == kTileRows) {
        repack_tile<Kind, true>(w + r * wrb, wrb, n_rows, nb, use_gather, offsets, next, next_bytes, wt);
      } else {
        repack_tile<Kind, false>(w + r * wrb, wrb, n_rows, nb, use_gather, offsets, next, next_bytes, wt);
      }
      tile_tokens(wt, nb, x + t0 * xrb, xrb, xm, Kind::kLaneBlock, tp, y + t0 * ys + r, ys, n_rows);
    }
  }
}

}  // namespace

void matmul_quant_avx512(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0,
                         int64_t r1, const void* x, size_t x_row_bytes, int64_t n_tok, float* y,
                         int64_t y_stride) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  if (n_tok == 1) return decode_quant_avx512(wtype, k, wb, w_row_bytes, r0, r1, xb, y);
  if (const int64_t pass = row_pass_tokens(k, n_tok); pass > 0) {
    if (wtype == DType::kQ4_0) return small_batch_rows<Q4Tile>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, pass, y, y_stride);
    return small_batch_rows<Q8Tile>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, pass, y, y_stride);
  }
  if (wtype == DType::kQ4_0) {
    batch_rows<Q4Tile>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
  } else {
    batch_rows<Q8Tile>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
  }
}

}  // namespace mixserve::cpu

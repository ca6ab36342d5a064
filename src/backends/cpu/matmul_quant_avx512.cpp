// AVX-512 VNNI kernels for quantised weights (Q8_0, Q4_0) x Q8_0 activations; the arithmetic
// contract is in matmul_quant_avx512.h. Up to 16 tokens, one included, go to
// matmul_small_batch_avx512.cpp. Larger batches (prefill) here: tiles of 16
// rows repacked to scratch once and used by every token of a panel (batch_rows), 16 rows' dword
// groups in the 16 lanes of a register so that one vpdpbusd per token advances 16 exact integer
// sums at once; the 16 partial sums of each output live in 16 registers (one per partial, lanes =
// rows) and are added in the same tree as hsum. Packed rows (weight_packing.h) are gathered into
// the tiles.
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* helpers
// when inlined (GCC bug 105593, fixed in 12.3/13); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "backends/cpu/matmul_quant_avx512.h"

#include <type_traits>

#include "backends/cpu/matmul_variants.h"

namespace mixserve::cpu {
namespace {

using quant::BlockQ8_0;

// ---- Batches: tiles of 16 rows, transposed so that lane position 4L+q holds row 4q+L.

constexpr int kTileRows = 16;
constexpr int kMaxTokens = 8;  // tokens per register tile

// One block of a 16-row tile: the unsigned operands of its 8 dword groups and the row scales.
struct alignas(64) TileBlock {
  uint8_t a[8][64];
  float d[16];
};

// One block of up to 8 tokens' activations, arranged so that the kernel reaches every operand at a
// fixed offset from one pointer (with the tokens' rows at a run-time stride, GCC kept 8 row pointers
// in vector registers and moved them back for every load): q[i][t] = dword i of token t's block,
// with its correction and scale; tokens past the panel are zeros.
struct alignas(64) XTile {
  int32_t q[8][kMaxTokens];
  int32_t corr[kMaxTokens];
  float d[kMaxTokens];
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

// c[p] lane q = dword p of r[q]: a 16 x 16 transpose of dwords in four rounds of shuffles.
inline void transpose16(const __m512i (&r)[16], __m512i (&c)[16]) {
  __m512i t[16], u[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // u[4i + k], 128-bit lane L: rows 4i..4i+3 of column 4L + k.
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    const __m512i x = _mm512_shuffle_i32x4(u[k], u[4 + k], 0x44);
    const __m512i y = _mm512_shuffle_i32x4(u[k], u[4 + k], 0xEE);
    const __m512i x2 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0x44);
    const __m512i y2 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0xEE);
    c[k] = _mm512_shuffle_i32x4(x, x2, 0x88);
    c[4 + k] = _mm512_shuffle_i32x4(x, x2, 0xDD);
    c[8 + k] = _mm512_shuffle_i32x4(y, y2, 0x88);
    c[12 + k] = _mm512_shuffle_i32x4(y, y2, 0xDD);
  }
}

// A tile of packed rows (weight_packing.h), one group of 16 blocks at a time: register j of the 16
// rows' group (lane p: block order[p]) transposed, so that lane q holds row kLaneRow[q] and each
// of the 16 results is one block's operands; the scale words likewise.
template <class Kind, bool kFull>
void repack_packed_group(const uint8_t* w, size_t wrb, int n_rows, int64_t g, TileBlock* out) {
  constexpr auto kGroupBytes = static_cast<int64_t>(16 * Kind::kBlockBytes);
  const auto row = [&](int q) { return w + kLaneRow[q] * static_cast<int64_t>(wrb) + g * kGroupBytes; };
  const auto exists = [&](int q) { return kFull || kLaneRow[q] < n_rows; };
  __m512i r[16], c[16];
#pragma GCC unroll 16
  for (int q = 0; q < 16; ++q) {
    r[q] = exists(q) ? _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row(q))))
                     : _mm512_setzero_si512();
  }
  transpose16(r, c);
#pragma GCC unroll 16
  for (int p = 0; p < 16; ++p) {
    _mm512_store_ps(out[16 * g + Kind::kLaneBlock[p]].d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(c[p])));
  }
  for (int j = 0; j < Kind::kPackedRegs; ++j) {
#pragma GCC unroll 16
    for (int q = 0; q < 16; ++q) r[q] = exists(q) ? _mm512_loadu_si512(row(q) + 32 + 64 * j) : _mm512_setzero_si512();
    transpose16(r, c);
#pragma GCC unroll 16
    for (int p = 0; p < 16; ++p) {
      TileBlock& blk = out[16 * g + Kind::kLaneBlock[p]];
      if constexpr (Kind::kPackedRegs == 4) {
        const __m512i low4 = _mm512_set1_epi8(0x0F);
        _mm512_store_si512(blk.a[j], _mm512_and_si512(c[p], low4));
        _mm512_store_si512(blk.a[4 + j], _mm512_and_si512(_mm512_srli_epi16(c[p], 4), low4));
      } else {
        _mm512_store_si512(blk.a[j], c[p]);  // stored as q + 128
      }
    }
  }
}

// A tile of packed rows whose last group g holds m < 16 blocks (weight_packing.h): each block's
// fields gathered from its slot in the 16 rows (lane q: row kLaneRow[q]; `offsets` its row's byte
// offset), absent rows as zeros.
template <class Kind>
void repack_packed_partial(const uint8_t* w, int n_rows, int64_t g, int m, __m512i offsets, TileBlock* out) {
  const uint8_t* grp = w + g * static_cast<int64_t>(16 * Kind::kBlockBytes);
  const __mmask16 rows = _mm512_cmplt_epi32_mask(_mm512_load_si512(kLaneRow), _mm512_set1_epi32(n_rows));
  const auto gather = [&](int64_t off) {
    return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), rows, offsets, grp + off, 1);
  };
  int slot = 0;
  for (int p = 0; p < 16; ++p) {
    const int b = Kind::kLaneBlock[p];
    if (b >= m) continue;
    TileBlock& blk = out[16 * g + b];
    _mm512_store_ps(blk.d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(gather(2 * slot))));
    for (int j = 0; j < Kind::kPackedRegs; ++j) {
      const __m512i u = gather(2 * m + 4 * m * j + 4 * slot);
      if constexpr (Kind::kPackedRegs == 4) {
        const __m512i low4 = _mm512_set1_epi8(0x0F);
        _mm512_store_si512(blk.a[j], _mm512_and_si512(u, low4));
        _mm512_store_si512(blk.a[4 + j], _mm512_and_si512(_mm512_srli_epi16(u, 4), low4));
      } else {
        _mm512_store_si512(blk.a[j], u);  // stored as q + 128
      }
    }
    ++slot;
  }
}

// The rows of a tile are one contiguous range, but the repack walks it as 16 interleaved streams,
// which the hardware prefetchers serve at a fraction of the memory bandwidth. So while one tile is
// repacked, the next tile's range [next, next + next_bytes) is prefetched as one sequential stream.
// kPacked: the rows are packed (repacked group by group, by transposes).
template <class Kind, bool kFull, bool kPacked>
void repack_tile(const uint8_t* w, size_t wrb, int n_rows, int64_t nb, bool use_gather, __m512i offsets,
                 const uint8_t* next, int64_t next_bytes, TileBlock* out) {
  const int64_t lines_per_block = (next_bytes / 64 + nb - 1) / nb;
  const auto prefetch_next = [&](int64_t b) {
    for (int64_t i = 0; i < lines_per_block; ++i) {
      const int64_t off = (b * lines_per_block + i) * 64;
      if (off < next_bytes) _mm_prefetch(reinterpret_cast<const char*>(next + off), _MM_HINT_T1);
    }
  };
  if constexpr (kPacked) {
    for (int64_t g = 0; g < nb / 16; ++g) {
      for (int64_t b = 16 * g; b < 16 * g + 16; ++b) prefetch_next(b);
      repack_packed_group<Kind, kFull>(w, wrb, n_rows, g, out);
    }
    if (nb % 16 != 0) {
      for (int64_t b = nb / 16 * 16; b < nb; ++b) prefetch_next(b);
      repack_packed_partial<Kind>(w, n_rows, nb / 16, static_cast<int>(nb % 16), offsets, out);
    }
    return;
  }
  for (int64_t b = 0; b < nb; ++b) {
    prefetch_next(b);
    __m512i a[8];
    const uint8_t* blk = w + b * static_cast<int64_t>(Kind::kBlockBytes);
    Kind::template transpose<kFull>(blk, wrb, n_rows, a);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) _mm512_store_si512(out[b].a[i], a[i]);
    _mm512_store_ps(out[b].d, tile_scales(blk, wrb, n_rows, use_gather, offsets));
  }
}

// The panel's tokens [0, tp) (rows at x, stride xrb) as XTiles: block b of token group g at
// out[b * n_groups + g].
void prepare_x_tiles(const uint8_t* x, size_t xrb, int64_t tp, int64_t nb, int corr, XTile* out) {
  const int64_t n_groups = (tp + kMaxTokens - 1) / kMaxTokens;
  for (int64_t b = 0; b < nb; ++b) {
    for (int64_t g = 0; g < n_groups; ++g) {
      XTile& xt = out[b * n_groups + g];
      for (int t = 0; t < kMaxTokens; ++t) {
        const int64_t token = kMaxTokens * g + t;
        if (token >= tp) {
          for (int i = 0; i < 8; ++i) xt.q[i][t] = 0;
          xt.corr[t] = 0;
          xt.d[t] = 0.0f;
          continue;
        }
        const uint8_t* blk = x + token * static_cast<int64_t>(xrb) + b * kXBlockBytes;
        for (int i = 0; i < 8; ++i) xt.q[i][t] = load_i32(blk + 2 + 4 * i);
        xt.corr[t] = -corr * block_sum(blk);
        xt.d[t] = half_to_float(blk);
      }
    }
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

// acc + a . (the dword at p in every lane), the broadcast embedded in the instruction: for most
// _mm512_set1_epi32 operands GCC 12 emits a separate vpbroadcastd, one more instruction per product.
inline __m512i dpbusd_broadcast(__m512i acc, __m512i a, const int32_t* p) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(a), "m"(*p));
  return acc;
}

// 16 rows (repacked in wt) x T tokens (block b of the tokens at xt[b * xs]).
template <int T>
void tile_kernel(const TileBlock* wt, int64_t nb, const XTile* xt, int64_t xs, const int32_t* lane_block, float* y,
                 int64_t ys, int n_rows) {
  alignas(64) float partial[T][16][16];
  for (int l = 0; l < 16; ++l) {
    __m512 acc[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = lane_block[l]; b < nb; b += 16) {
      const XTile& x = xt[b * xs];
      __m512i isum[T];
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) isum[t] = _mm512_set1_epi32(x.corr[t]);
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const __m512i a = _mm512_load_si512(wt[b].a[i]);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) isum[t] = dpbusd_broadcast(isum[t], a, &x.q[i][t]);
      }
      const __m512 dw = _mm512_load_ps(wt[b].d);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(x.d[t]));
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

// The panel's tp tokens, 8 at a time (xt: their XTiles, n_groups to a block).
void tile_tokens(const TileBlock* wt, int64_t nb, const XTile* xt, const int32_t* lane_block, int64_t tp, float* y,
                 int64_t ys, int n_rows) {
  const int64_t n_groups = (tp + kMaxTokens - 1) / kMaxTokens;
  for (int64_t g = 0; g < n_groups; ++g) {
    const XTile* xg = xt + g;
    float* yg = y + kMaxTokens * g * ys;
    static_assert(kMaxTokens == 8, "one case per tile width");
    switch (min_i64(kMaxTokens, tp - kMaxTokens * g)) {
      case 8: tile_kernel<8>(wt, nb, xg, n_groups, lane_block, yg, ys, n_rows); break;
      case 7: tile_kernel<7>(wt, nb, xg, n_groups, lane_block, yg, ys, n_rows); break;
      case 6: tile_kernel<6>(wt, nb, xg, n_groups, lane_block, yg, ys, n_rows); break;
      case 5: tile_kernel<5>(wt, nb, xg, n_groups, lane_block, yg, ys, n_rows); break;
      case 4: tile_kernel<4>(wt, nb, xg, n_groups, lane_block, yg, ys, n_rows); break;
      case 3: tile_kernel<3>(wt, nb, xg, n_groups, lane_block, yg, ys, n_rows); break;
      case 2: tile_kernel<2>(wt, nb, xg, n_groups, lane_block, yg, ys, n_rows); break;
      default: tile_kernel<1>(wt, nb, xg, n_groups, lane_block, yg, ys, n_rows); break;
    }
  }
}

// Tokens go in panels whose activations stay in L2 while every row tile passes over them; each
// tile is repacked once per panel, so larger panels (768 KiB of XTiles, 256 tokens, on a 1 MiB L2)
// cut the repacking, which gathers from packed rows (BM_Prefill packed, 1 thread: 5-7% faster than
// 512 KiB and 128 tokens; the GGUF layout unchanged).
constexpr int64_t kPanelBytes = 768 * 1024;
constexpr int64_t kMaxPanel = 256;

template <class Kind, bool kPacked>
void batch_rows(int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1, const uint8_t* x, size_t xrb,
                int64_t n_tok, float* y, int64_t ys) {
  const int64_t nb = k / kQKBlock;
  const int64_t per_token = nb * static_cast<int64_t>(sizeof(XTile) / kMaxTokens);
  const int64_t panel = min_i64(n_tok, max_i64(1, min_i64(kMaxPanel, kPanelBytes / per_token)));
  const auto tile_bytes = static_cast<size_t>(nb) * sizeof(TileBlock);
  const auto x_bytes = static_cast<size_t>((panel + kMaxTokens - 1) / kMaxTokens * nb) * sizeof(XTile);
  auto* scratch = static_cast<uint8_t*>(matmul_scratch(tile_bytes + x_bytes));
  auto* wt = reinterpret_cast<TileBlock*>(scratch);
  auto* xt = reinterpret_cast<XTile*>(scratch + tile_bytes);
  const bool use_gather = wrb <= static_cast<size_t>(INT32_MAX / kTileRows);
  const __m512i offsets = use_gather ? _mm512_mullo_epi32(_mm512_load_si512(kLaneRow), _mm512_set1_epi32(static_cast<int32_t>(wrb)))
                                     : _mm512_setzero_si512();
  for (int64_t t0 = 0; t0 < n_tok; t0 += panel) {
    const int64_t tp = min_i64(panel, n_tok - t0);
    prepare_x_tiles(x + t0 * xrb, xrb, tp, nb, Kind::kCorr, xt);
    for (int64_t r = r0; r < r1; r += kTileRows) {
      const auto n_rows = static_cast<int>(min_i64(kTileRows, r1 - r));
      const uint8_t* next = w + (r + kTileRows) * wrb;
      const int64_t next_bytes = min_i64(kTileRows, max_i64(0, r1 - r - kTileRows)) * static_cast<int64_t>(wrb);
      if (n_rows == kTileRows) {
        repack_tile<Kind, true, kPacked>(w + r * wrb, wrb, n_rows, nb, use_gather, offsets, next, next_bytes, wt);
      } else {
        repack_tile<Kind, false, kPacked>(w + r * wrb, wrb, n_rows, nb, use_gather, offsets, next, next_bytes, wt);
      }
      tile_tokens(wt, nb, xt, Kind::kLaneBlock, tp, y + t0 * ys + r, ys, n_rows);
    }
  }
}

}  // namespace

void matmul_quant_avx512(DType wtype, bool packed, int64_t k, const void* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                         const void* x, size_t x_row_bytes, int64_t n_tok, float* y, int64_t y_stride) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  if (small_batch_quant_avx512(wtype, packed, k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride)) return;
  const auto rows = [&](auto kind, auto packed_layout) {
    batch_rows<decltype(kind), decltype(packed_layout)::value>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y,
                                                               y_stride);
  };
  if (wtype == DType::kQ4_0) {
    packed ? rows(Q4Operands{}, std::true_type{}) : rows(Q4Operands{}, std::false_type{});
  } else {
    packed ? rows(Q8Operands{}, std::true_type{}) : rows(Q8Operands{}, std::false_type{});
  }
}

}  // namespace mixserve::cpu

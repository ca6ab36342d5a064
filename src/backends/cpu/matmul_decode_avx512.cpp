// AVX-512 VNNI decode (one token) for Q4_0 and Q8_0 weights; the arithmetic contract is in
// matmul_quant_avx512.h. Each weight row is read once, in memory order, with software prefetch
// ahead: on this class of machine one sequential stream per core is what reaches the memory
// bandwidth, while interleaved row streams or a core busy with dependent work leave it at half.
// The 16 partial sums of a row live in the 16 lanes of one register; the integer dot products of
// a group of 16 blocks are reduced so that lane l holds block lane_block[l] of the group.
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* helpers
// when inlined (GCC bug 105593, fixed in 12.3/13); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "backends/cpu/matmul_quant_avx512.h"

#include "backends/cpu/matmul_variants.h"

namespace mixserve::cpu {
namespace {

// How far ahead rows are prefetched (bytes, past the row end into the next row).
constexpr int64_t kPrefetchBytes = 4096;

// Per group of 16 activation blocks, in the format's lane order (0 past nb): the scales, and the
// corrections -corr * (sum of the block's values) that turn the unsigned-weight sums into isum.
struct alignas(64) GroupLanes {
  float dx[16];
  int32_t corr[16];
};

void prepare_lanes(const uint8_t* x, int64_t nb, const int32_t* lane_block, int corr, GroupLanes* out) {
  for (int64_t g = 0; g < (nb + 15) / 16; ++g) {
    for (int l = 0; l < 16; ++l) {
      const int64_t b = 16 * g + lane_block[l];
      out[g].dx[l] = b < nb ? half_to_float(x + b * kXBlockBytes) : 0.0f;
      out[g].corr[l] = b < nb ? -corr * block_sum(x + b * kXBlockBytes) : 0;
    }
  }
}

// ---- Q4_0: chunks of 4 blocks (72 bytes). The 16 qs bytes of block L go to 128-bit lane L; one
// vpdpbusd takes the low nibbles (elements 0..15), a second the high ones (16..31), so each lane
// sums 8 products and a group of 16 blocks needs only 4 registers reduced.
struct Q4Decode {
  static constexpr size_t kBlockBytes = sizeof(quant::BlockQ4_0);
  static constexpr const int32_t* kLaneBlock = kLaneBlockQ4;
  static constexpr int kCorr = 8;
  // Activations of 4 blocks: elements 0..15 and 16..31 of block L in 128-bit lane L.
  struct alignas(64) XEntry {
    int8_t lo[64];
    int8_t hi[64];
  };
  static constexpr int64_t kBlocksPerEntry = 4;

  static void prepare(const uint8_t* x, int64_t nb, XEntry* out) {
    for (int64_t c = 0; c < (nb + 3) / 4; ++c) {
      __m512i lo = _mm512_setzero_si512();
      __m512i hi = _mm512_setzero_si512();
      for (int l = 0; l < 4 && 4 * c + l < nb; ++l) {
        const uint8_t* blk = x + (4 * c + l) * kXBlockBytes;
        const __m512i l0 = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
        const __m512i h0 = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18)));
        const auto lane = static_cast<__mmask16>(0xF << (4 * l));
        lo = _mm512_mask_mov_epi32(lo, lane, l0);
        hi = _mm512_mask_mov_epi32(hi, lane, h0);
      }
      _mm512_store_si512(out[c].lo, lo);
      _mm512_store_si512(out[c].hi, hi);
    }
  }

  // One chunk (za: its 64 bytes, zb: the 64 from byte 8): the integer sums, 4 dwords per block,
  // block L in 128-bit lane L.
  static inline __m512i chunk(__m512i za, __m512i zb, const XEntry& xe) {
    // qs of block L: words 9L+1.. of za for L < 3, of zb for L = 3.
    alignas(64) static constexpr int16_t kQs[32] = {1,  2,  3,  4,  5,  6,  7,  8,  10, 11, 12,
                                                    13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24,
                                                    25, 26, 56, 57, 58, 59, 60, 61, 62, 63};
    const __m512i z = _mm512_permutex2var_epi16(za, _mm512_load_si512(kQs), zb);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i a_lo = _mm512_and_si512(z, low4);
    const __m512i a_hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), low4);
    const __m512i v = _mm512_dpbusd_epi32(_mm512_setzero_si512(), a_lo, _mm512_load_si512(xe.lo));
    return _mm512_dpbusd_epi32(v, a_hi, _mm512_load_si512(xe.hi));
  }

  // Integer sums of group g (blocks 16g..16g+15); d gets the weight scales in lane order.
  // kFull: all 16 blocks exist; else only blocks below nb are read.
  template <bool kFull>
  static inline __m512i group(const uint8_t* row, int64_t nb, int64_t g, const XEntry* xe, __m512i& d) {
    __m512i za[4], v[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const int64_t c = 4 * g + q;
      const uint8_t* p = row + c * 4 * static_cast<int64_t>(kBlockBytes);
      if (kFull) {
        za[q] = _mm512_loadu_si512(p);
        v[q] = chunk(za[q], _mm512_loadu_si512(p + 8), xe[c]);
      } else {
        const int64_t avail = (nb - 4 * c) * static_cast<int64_t>(kBlockBytes);
        za[q] = _mm512_maskz_loadu_epi8(first_bytes(avail), p);
        v[q] = avail <= 0 ? _mm512_setzero_si512()
                          : chunk(za[q], _mm512_maskz_loadu_epi8(first_bytes(avail - 8), p + 8), xe[c]);
      }
    }
    // Scale of block L of chunk q (word 9L of za[q]) to lane 4L+q, without a serial merge chain.
    alignas(64) static constexpr int16_t kScale01[32] = {0, 32, 0, 0, 9,  41, 0, 0, 18, 50, 0, 0, 27, 59, 0, 0};
    alignas(64) static constexpr int16_t kScale23[32] = {0, 0, 0, 32, 0, 0, 9,  41, 0, 0, 18, 50, 0, 0, 27, 59};
    const __m512i d01 = _mm512_permutex2var_epi16(za[0], _mm512_load_si512(kScale01), za[1]);
    const __m512i d23 = _mm512_permutex2var_epi16(za[2], _mm512_load_si512(kScale23), za[3]);
    d = _mm512_mask_blend_epi16(0xCCCC, d01, d23);
    const __m512i w0 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[0], v[1]), _mm512_unpackhi_epi32(v[0], v[1]));
    const __m512i w1 = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2], v[3]), _mm512_unpackhi_epi32(v[2], v[3]));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(w0, w1), _mm512_unpackhi_epi64(w0, w1));
  }
};

// ---- Q8_0: pairs of blocks (68 bytes), block b in bytes 0..31 of a register, b+1 in 32..63.
struct Q8Decode {
  static constexpr size_t kBlockBytes = sizeof(quant::BlockQ8_0);
  static constexpr const int32_t* kLaneBlock = kLaneBlockQ8;
  static constexpr int kCorr = 128;
  // Activations of 2 blocks.
  struct alignas(64) XEntry {
    int8_t q[64];
  };
  static constexpr int64_t kBlocksPerEntry = 2;

  static void prepare(const uint8_t* x, int64_t nb, XEntry* out) {
    for (int64_t p = 0; p < (nb + 1) / 2; ++p) {
      const int64_t b = 2 * p;
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + b * kXBlockBytes + 2));
      const __m256i hi = b + 1 < nb ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + (b + 1) * kXBlockBytes + 2))
                                    : _mm256_setzero_si256();
      _mm512_store_si512(out[p].q, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
    }
  }

  template <bool kFull>
  static inline __m512i group(const uint8_t* row, int64_t nb, int64_t g, const XEntry* xe, __m512i& d) {
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i raw[8], v[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      const int64_t p = 8 * g + i;
      const uint8_t* blk = row + 2 * p * static_cast<int64_t>(kBlockBytes);
      const int64_t blocks = kFull ? 2 : min_i64(2, nb - 2 * p);
      if (blocks <= 0) {
        raw[i] = v[i] = _mm512_setzero_si512();
        continue;
      }
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
      const __m256i hi = blocks == 2 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 36)) : _mm256_setzero_si256();
      const __m512i a = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), bias);
      raw[i] = blocks == 2 ? _mm512_loadu_si512(blk) : _mm512_maskz_loadu_epi8(first_bytes(34), blk);
      v[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), a, _mm512_load_si512(xe[p].q));
    }
    // Scale words (0 and 17 of a pair) to the lanes where the reduction leaves its blocks: pair
    // i's first block at lane i (i < 4) or i + 4, its second 4 lanes higher.
    alignas(64) static constexpr int16_t kScale[4][32] = {
        {0, 32, 0, 0, 17, 49},
        {0, 0, 0, 32, 0, 0, 17, 49},
        {0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 17, 49},
        {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 17, 49}};
    __m512i dp[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) dp[j] = _mm512_permutex2var_epi16(raw[2 * j], _mm512_load_si512(kScale[j]), raw[2 * j + 1]);
    d = _mm512_mask_blend_epi16(0xFF00, _mm512_mask_blend_epi16(0x00CC, dp[0], dp[1]),
                                _mm512_mask_blend_epi16(0xCC00, dp[2], dp[3]));
    __m512i w[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      w[k] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_epi32(v[2 * k], v[2 * k + 1]));
    }
    const __m512i x0 = _mm512_add_epi32(_mm512_unpacklo_epi64(w[0], w[1]), _mm512_unpackhi_epi64(w[0], w[1]));
    const __m512i x1 = _mm512_add_epi32(_mm512_unpacklo_epi64(w[2], w[3]), _mm512_unpackhi_epi64(w[2], w[3]));
    // 128-bit lanes: first blocks of pairs 0-3, second blocks 0-3, first 4-7, second 4-7.
    return _mm512_add_epi32(_mm512_shuffle_i32x4(x0, x1, 0x88), _mm512_shuffle_i32x4(x0, x1, 0xDD));
  }
};

// acc += group g of one row (the scales, corrections and partial-group mask shared by all rows).
template <class Kind>
inline __m512 row_group(const uint8_t* row, int64_t nb, int64_t g, const typename Kind::XEntry* xe,
                        const GroupLanes& lanes, __m512 acc) {
  const int64_t group_bytes = 16 * static_cast<int64_t>(Kind::kBlockBytes);
  const uint8_t* ahead = row + g * group_bytes + kPrefetchBytes;
  for (int64_t off = 0; off < group_bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(ahead + off), _MM_HINT_T0);
  __m512i d = _mm512_setzero_si512();
  const bool full = 16 * (g + 1) <= nb;
  const __m512i isum = full ? Kind::template group<true>(row, nb, g, xe, d) : Kind::template group<false>(row, nb, g, xe, d);
  const __m512 f = _mm512_cvtepi32_ps(_mm512_add_epi32(isum, _mm512_load_si512(lanes.corr)));
  const __m512 scale = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(d)), _mm512_load_ps(lanes.dx));
  if (full) return _mm512_fmadd_ps(f, scale, acc);
  const auto blocks = static_cast<int32_t>(nb - 16 * g);
  const __mmask16 valid = _mm512_cmplt_epi32_mask(_mm512_load_si512(Kind::kLaneBlock), _mm512_set1_epi32(blocks));
  return _mm512_mask3_fmadd_ps(f, scale, acc, valid);
}

template <class Kind>
float decode_row(const uint8_t* row, int64_t nb, const typename Kind::XEntry* xe, const GroupLanes* lanes) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t g = 0; 16 * g < nb; ++g) acc = row_group<Kind>(row, nb, g, xe, lanes[g], acc);
  return hsum(acc);
}

template <class Kind>
void decode_rows(int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1, const uint8_t* x, float* y) {
  using XEntry = typename Kind::XEntry;
  const int64_t nb = k / kQKBlock;
  const int64_t n_entries = (nb + Kind::kBlocksPerEntry - 1) / Kind::kBlocksPerEntry;
  const int64_t n_groups = (nb + 15) / 16;
  const size_t entry_bytes = static_cast<size_t>(n_entries) * sizeof(XEntry);
  auto* scratch = static_cast<uint8_t*>(matmul_scratch(entry_bytes + static_cast<size_t>(n_groups) * sizeof(GroupLanes)));
  auto* xe = reinterpret_cast<XEntry*>(scratch);
  auto* lanes = reinterpret_cast<GroupLanes*>(scratch + entry_bytes);
  Kind::prepare(x, nb, xe);
  prepare_lanes(x, nb, Kind::kLaneBlock, Kind::kCorr, lanes);
  // One row after the other, never two interleaved: a second stream halves the bandwidth here.
  for (int64_t r = r0; r < r1; ++r) y[r] = decode_row<Kind>(w + r * wrb, nb, xe, lanes);
}

}  // namespace

void decode_quant_avx512(DType wtype, int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1,
                         const uint8_t* x, float* y) {
  if (wtype == DType::kQ4_0) {
    decode_rows<Q4Decode>(k, w, wrb, r0, r1, x, y);
  } else {
    decode_rows<Q8Decode>(k, w, wrb, r0, r1, x, y);
  }
}

}  // namespace mixserve::cpu

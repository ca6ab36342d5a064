// AVX2 kernels for Q4_0 and Q8_0 weights, in the GGUF layout or packed (weight_packing.h), under
// the arithmetic contract of matmul_quant_avx512.h: every output keeps 16 partial sums, partial l
// summing the blocks b with b % 16 == order[l] (order = kPackedOrderQ4 / kPackedOrderQ8) in
// increasing order, P_l = fma(float(isum_b), dw_b * dx_b, P_l), and y is hsum's fixed tree over the
// 16 partials. isum_b is the exact integer dot product. So results never depend on n_tok, r0, r1 or
// the layout, and they are the bits the AVX-512 kernels give.
//
// Here the 16 partials are two 8-lane vectors, one per half of a group (positions 0-7 and 8-15).
// For one half, operand register j holds in dword i the bytes 4j..4j+3 of the weight block at
// position i (packed: half of register j; GGUF layout: an 8x4 dword transposition of the blocks),
// and the activations are arranged likewise per token, once per thread and product, so a product
// is 8 maddubs whose 16-bit lanes never overflow (Q4_0: |nibble * x| pairs <= 3810, 8 of them <=
// 30480), one madd, one conversion and one fma for 8 blocks.
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/lane_reduce_avx2.h"
#include "backends/cpu/matmul_variants.h"
#include "backends/cpu/prefetch.h"
#include "backends/cpu/weight_packing.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

using quant::BlockQ8_0;
constexpr int64_t kQK = quant::kQK;
constexpr int64_t kGroup = kPackGroupBlocks;

inline int64_t min_i64(int64_t a, int64_t b) {
  return a < b ? a : b;
}
inline int64_t max_i64(int64_t a, int64_t b) {
  return a > b ? a : b;
}

/// One token's activations for one group of 16 blocks, in the order of the packed operands.
struct alignas(64) XGroup {
  int8_t q[8][64];   ///< q[j] dword p: elements 4j..4j+3 of the block at position p
  int32_t corr[16];  ///< Q4_0: -8 * the sum of that block's values; Q8_0: 0
  float d[16];       ///< that block's scale (0 for a block past the end of the row)
};

/// Half h of an XGroup's activation registers: register j at + 64 * j. From the object's own bytes,
/// not from q[0], whose 64 bytes a read of register j > 0 would overrun (GCC 12 -O3 made the Q8_0
/// 8-token products of two rows at once zero when they were read through q[0]).
inline const int8_t* x_half(const XGroup& xg, int h) {
  return reinterpret_cast<const int8_t*>(&xg) + 32 * h;
}

/// Zero bytes for blocks past the end of a row (read instead of memory that may not exist).
alignas(64) constexpr uint8_t kZeros[64] = {};

/// u[j] dword i = dword j of the 16 bytes at p[i] (i < 8, j < 4).
inline void transpose_8x4(const uint8_t* const (&p)[8], __m256i (&u)[4]) {
  const auto pair = [&](int a) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[a]));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo),
                                   _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[a + 4])), 1);
  };
  const __m256i z0 = pair(0), z1 = pair(1), z2 = pair(2), z3 = pair(3);
  const __m256i t0 = _mm256_unpacklo_epi32(z0, z1), t1 = _mm256_unpackhi_epi32(z0, z1);
  const __m256i t2 = _mm256_unpacklo_epi32(z2, z3), t3 = _mm256_unpackhi_epi32(z2, z3);
  u[0] = _mm256_unpacklo_epi64(t0, t2);
  u[1] = _mm256_unpackhi_epi64(t0, t2);
  u[2] = _mm256_unpacklo_epi64(t1, t3);
  u[3] = _mm256_unpackhi_epi64(t1, t3);
}

/// Fixed-order horizontal sum of both halves' partials: lanes (i, i+8), (i, i+4), (i, i+2), (0, 1),
/// hsum of matmul_quant_avx512.h.
inline float hsum16(__m256 p0, __m256 p1) {
  const __m256 s8 = _mm256_add_ps(p0, p1);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}

/// Whether group g of a row of nb blocks is whole (16 blocks): packed rows pack only those.
inline bool whole_group(int64_t g, int64_t nb) {
  return (g + 1) * kGroup <= nb;
}

/// The fp16 scales of half h of the packed group at grp, as floats.
inline __m256 packed_scales(const uint8_t* grp, int h) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(grp + 16 * h)));
}

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

/// Sum of the 32 signed bytes at p.
inline int32_t sum_bytes(const uint8_t* p) {
  const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
  return _mm_cvtsi128_si32(s4);
}

/// The weight operands of half h of group g of one row: a[j] pairs with activation register j;
/// dw holds the 8 blocks' scales. Q4_0: nibbles 0..15; Q8_0: magnitudes, whose signs (sgn) go to
/// the activations (maddubs multiplies unsigned by signed bytes; kSigned says there are signs).
/// first/mac/finish give one token's isum of 8 blocks from the 8 operand registers in turn.
struct Q4 {
  static constexpr const int32_t* kOrder = kPackedOrderQ4;
  static constexpr int32_t kCorr = 8;
  static constexpr bool kSigned = false;
  /// Whether packed_dots computes T tokens' sums (see Q8::packed_dots): for 2-6 tokens, whose
  /// running sums and operands do not fit in the registers together (Zen 3 VM, TinyLlama, steps
  /// alternating in one process: 2-4 sequences 13-17% less time per step, 5-6 sequences 9-11%);
  /// one token's 8 operands fit, and that path was 2-5% faster than this one; 7 and 8 tokens were
  /// 12-20% slower this way.
  static constexpr bool packed_dots_for(int T) { return T >= 2 && T <= 6; }
  /// Whether one token's whole packed groups are computed two rows at once (packed_dots_pair). For
  /// Q4_0 that takes half the loads: the old loop loaded each activation register once per row and
  /// each nibble register twice. Zen 3 VM, one token, rows in L2, both variants alternating in one
  /// process: rows_streamed 4-11% less time, a loop of row_group calls of its own no faster (GCC's
  /// layout of the loop matters as much); bench_matmul DecodeStep of_plain_read 0.90-0.95 (mean
  /// 0.935, 5 runs) before, 0.95-1.01 (mean 0.974) after. Q8_0 was 4-17% slower this way.
  static constexpr bool kPairRows = true;
  static constexpr size_t kBlockBytes = sizeof(quant::BlockQ4_0);
  static constexpr size_t kPackedGroupBytes = kGroup * kBlockBytes;
  static inline void split(const __m256i (&u)[4], __m256i (&a)[8]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int j = 0; j < 4; ++j) {
      a[j] = _mm256_and_si256(u[j], low4);
      a[4 + j] = _mm256_and_si256(_mm256_srli_epi16(u[j], 4), low4);
    }
  }
  static inline void packed(const uint8_t* grp, int h, __m256i (&a)[8], __m256& dw) {
    __m256i u[4];
    for (int j = 0; j < 4; ++j) u[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(grp + 32 + 64 * j + 32 * h));
    split(u, a);
    dw = packed_scales(grp, h);
  }
  static inline void gguf(const uint8_t* const (&blk)[8], __m256i (&a)[8]) {
    const uint8_t* p[8];
    for (int i = 0; i < 8; ++i) p[i] = blk[i] + 2;
    __m256i u[4];
    transpose_8x4(p, u);
    split(u, a);
  }
  static inline void magnitudes(__m256i (&)[8], __m256i (&)[8]) {}
  /// Packed registers per group half (64-byte registers of the packed layout, half each).
  static constexpr int kRegs = 4;
  static inline void from_registers(const __m256i (&u)[kRegs], __m256i (&a)[8]) { split(u, a); }
  /// As Q8::packed_dots, one register of nibbles (two operands) at a time.
  template <int T>
  static inline void packed_dots(const uint8_t* grp, int h, const int8_t* const (&xq)[T], __m256i (&s)[T]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(grp + 32 + 64 * j + 32 * h));
      const __m256i lo = _mm256_and_si256(u, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(u, 4), low4);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m256i p = _mm256_add_epi16(
            _mm256_maddubs_epi16(lo, _mm256_load_si256(reinterpret_cast<const __m256i*>(xq[t] + 64 * j))),
            _mm256_maddubs_epi16(hi, _mm256_load_si256(reinterpret_cast<const __m256i*>(xq[t] + 64 * (j + 4)))));
        s[t] = j == 0 ? p : _mm256_add_epi16(s[t], p);
      }
      asm volatile("" ::: "memory");
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) s[t] = finish(s[t]);
  }
  /// One token's isums of half h of the packed groups at ga and gb (two rows), from its activations
  /// of the group at xq: each activation register is loaded once for both rows, each nibble register
  /// once for both of its operands.
  static inline void packed_dots_pair(const uint8_t* ga, const uint8_t* gb, int h, const int8_t* xq, __m256i& sa,
                                      __m256i& sb) {
    dots_pair(
        [&](int j, int r) {
          return _mm256_loadu_si256(reinterpret_cast<const __m256i*>((r == 0 ? ga : gb) + 32 + 64 * j + 32 * h));
        },
        xq, sa, sb);
  }
  /// packed_dots_pair with register j of row r (0: a, 1: b) from load(j, r).
  template <class Load>
  static inline void dots_pair(const Load& load, const int8_t* xq, __m256i& sa, __m256i& sb) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const auto dots = [&](__m256i u, __m256i xl, __m256i xh) {
      return _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(u, low4), xl),
                              _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(u, 4), low4), xh));
    };
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m256i xl = _mm256_load_si256(reinterpret_cast<const __m256i*>(xq + 64 * j));
      __m256i xh = _mm256_load_si256(reinterpret_cast<const __m256i*>(xq + 64 * (j + 4)));
      __m256i ua = load(j, 0);
      __m256i ub = load(j, 1);
      asm("" : "+x"(xl), "+x"(xh), "+x"(ua), "+x"(ub));  // one load each, not a memory operand per use
      const __m256i pa = dots(ua, xl, xh);
      const __m256i pb = dots(ub, xl, xh);
      sa = j == 0 ? pa : _mm256_add_epi16(sa, pa);
      sb = j == 0 ? pb : _mm256_add_epi16(sb, pb);
    }
    sa = finish(sa);
    sb = finish(sb);
  }
  /// Running 16-bit sums of one token's products (8 of them stay below 2^15), widened by finish.
  static inline __m256i first(__m256i a, __m256i, __m256i x) { return _mm256_maddubs_epi16(a, x); }
  static inline __m256i mac(__m256i s, __m256i a, __m256i, __m256i x) {
    return _mm256_add_epi16(s, _mm256_maddubs_epi16(a, x));
  }
  static inline __m256i finish(__m256i s) { return _mm256_madd_epi16(s, _mm256_set1_epi16(1)); }
};

struct Q8 {
  static constexpr const int32_t* kOrder = kPackedOrderQ8;
  static constexpr int32_t kCorr = 0;
  static constexpr bool kSigned = true;
  /// Whether packed_dots computes T tokens' sums: always (one token and 2-4 sequences 15-21% less
  /// time per step than holding the operands, 8 sequences 2%; measured as for Q4).
  static constexpr bool packed_dots_for(int) { return true; }
  static constexpr bool kPairRows = false;  ///< see Q4::kPairRows
  static constexpr size_t kBlockBytes = sizeof(BlockQ8_0);
  static constexpr size_t kPackedGroupBytes = kGroup * kBlockBytes;
  static inline void packed(const uint8_t* grp, int h, __m256i (&a)[8], __m256& dw) {
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
    for (int j = 0; j < 8; ++j) {
      a[j] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(grp + 32 + 64 * j + 32 * h)), bias);
    }
    dw = packed_scales(grp, h);
  }
  static constexpr int kRegs = 8;  ///< see Q4::kRegs
  static inline void from_registers(const __m256i (&u)[kRegs], __m256i (&a)[8]) {
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
    for (int j = 0; j < 8; ++j) a[j] = _mm256_xor_si256(u[j], bias);
  }
  /// Splits signed weights into magnitudes (a) and the signs to give the activations (sgn).
  static inline void magnitudes(__m256i (&a)[8], __m256i (&sgn)[8]) {
    for (int j = 0; j < 8; ++j) {
      sgn[j] = a[j];
      a[j] = _mm256_abs_epi8(a[j]);
    }
  }
  static inline void gguf(const uint8_t* const (&blk)[8], __m256i (&a)[8]) {
    const uint8_t* p[8];
    for (int i = 0; i < 8; ++i) p[i] = blk[i] + 2;
    __m256i u[4];
    transpose_8x4(p, u);
    for (int j = 0; j < 4; ++j) a[j] = u[j];
    for (int i = 0; i < 8; ++i) p[i] += 16;
    transpose_8x4(p, u);
    for (int j = 0; j < 4; ++j) a[4 + j] = u[j];
  }
  /// Running 32-bit sums: two products of magnitudes up to 128 * 127 already fill 16 bits.
  static inline __m256i first(__m256i a, __m256i sgn, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(x, sgn)), _mm256_set1_epi16(1));
  }
  static inline __m256i mac(__m256i s, __m256i a, __m256i sgn, __m256i x) {
    return _mm256_add_epi32(s, first(a, sgn, x));
  }
  static inline __m256i finish(__m256i s) { return s; }
  /// Packed weights: s[t] = token t's isum of half h of the group at grp (token t's activations of
  /// the group at xq[t]). Each weight register is loaded, unbiased and split into magnitudes and
  /// signs once for the T tokens, and used at once: holding a half's 16 operand registers
  /// (operands()) leaves none for the rest, and GCC spilled them to the stack on every group. The
  /// empty asm statement with a memory clobber keeps it from hoisting the next register's loads
  /// above this one's arithmetic, which brought the spills back.
  template <int T>
  static inline void packed_dots(const uint8_t* grp, int h, const int8_t* const (&xq)[T], __m256i (&s)[T]) {
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const __m256i w =
          _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(grp + 32 + 64 * j + 32 * h)), bias);
      const __m256i a = _mm256_abs_epi8(w);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        const __m256i p = first(a, w, _mm256_load_si256(reinterpret_cast<const __m256i*>(xq[t] + 64 * j)));
        s[t] = j == 0 ? p : _mm256_add_epi32(s[t], p);
      }
      asm volatile("" ::: "memory");
    }
  }
};

/// Arranges one token's Q8_0 row (nb blocks) into XGroups for weights whose packed order is `order`
/// (the activation blocks transpose exactly as Q8_0 weight blocks do).
void arrange_x(const uint8_t* x, int64_t nb, const int32_t* order, int32_t corr, XGroup* out) {
  for (int64_t g = 0; g * kGroup < nb; ++g) {
    XGroup& xg = out[g];
    for (int h = 0; h < 2; ++h) {
      const uint8_t* blk[8];
      for (int i = 0; i < 8; ++i) {
        const int64_t b = g * kGroup + order[8 * h + i];
        const int l = 8 * h + i;
        blk[i] = b < nb ? x + b * static_cast<int64_t>(sizeof(BlockQ8_0)) : kZeros;
        xg.corr[l] = b < nb && corr != 0 ? -corr * sum_bytes(blk[i] + 2) : 0;
        xg.d[l] = b < nb ? _cvtsh_ss(load_u16(blk[i])) : 0.0f;
      }
      __m256i u[8];
      Q8::gguf(blk, u);
      for (int j = 0; j < 8; ++j) _mm256_store_si256(reinterpret_cast<__m256i*>(xg.q[j] + 32 * h), u[j]);
    }
  }
}

/// Operands of half h of group g of a row at `row`, in either layout; blocks past nb read as zero.
/// kPacked: a whole packed group (a packed row's last group, when it has fewer than 16 blocks, is
/// read by partial_operands).
template <class W, bool kPacked>
inline void operands(const uint8_t* row, int64_t nb, int64_t g, int h, __m256i (&a)[8], __m256i (&sgn)[8], __m256& dw) {
  if (kPacked) {
    W::packed(row + g * W::kPackedGroupBytes, h, a, dw);
    W::magnitudes(a, sgn);
    return;
  }
  const uint8_t* blk[8];
  if (whole_group(g, nb)) {
    const uint8_t* grp = row + g * kGroup * static_cast<int64_t>(W::kBlockBytes);
    for (int i = 0; i < 8; ++i) blk[i] = grp + W::kOrder[8 * h + i] * W::kBlockBytes;
  } else {
    for (int i = 0; i < 8; ++i) {
      const int64_t b = g * kGroup + W::kOrder[8 * h + i];
      blk[i] = b < nb ? row + b * W::kBlockBytes : kZeros;
    }
  }
  W::gguf(blk, a);
  W::magnitudes(a, sgn);
  const __m128i scales = _mm_setr_epi16(static_cast<int16_t>(load_u16(blk[0])), static_cast<int16_t>(load_u16(blk[1])),
                                        static_cast<int16_t>(load_u16(blk[2])), static_cast<int16_t>(load_u16(blk[3])),
                                        static_cast<int16_t>(load_u16(blk[4])), static_cast<int16_t>(load_u16(blk[5])),
                                        static_cast<int16_t>(load_u16(blk[6])), static_cast<int16_t>(load_u16(blk[7])));
  dw = _mm256_cvtph_ps(scales);
}

/// Where a packed row's last, partial group of m blocks keeps half h's blocks (weight_packing.h):
/// count[h] slots from slot first[h]; lane l of an operand takes dword perm[h][l] of the loaded run
/// (dword 0 for a lane whose block is absent: its activations are zero, so whatever it holds adds
/// nothing), and its fp16 scale from bytes shuffle[h] of the 16 bytes at the half's first scale
/// (zero for an absent block).
struct PartialGroup {
  int64_t m;
  int count[2], first[2];
  __m256i load_mask[2], perm[2];
  __m128i shuffle[2];
};

template <class W>
PartialGroup partial_group(int64_t m) {
  PartialGroup pg{};
  pg.m = m;
  int slot = 0;
  for (int h = 0; h < 2; ++h) {
    alignas(32) int32_t mask[8] = {}, perm[8] = {};
    alignas(16) int8_t shuffle[16];
    pg.first[h] = slot;
    for (int l = 0; l < 8; ++l) {
      const bool present = W::kOrder[8 * h + l] < m;
      const int rank = slot - pg.first[h];
      perm[l] = present ? rank : 0;
      shuffle[2 * l] = static_cast<int8_t>(present ? 2 * rank : -128);
      shuffle[2 * l + 1] = static_cast<int8_t>(present ? 2 * rank + 1 : -128);
      if (present) ++slot;
    }
    pg.count[h] = slot - pg.first[h];
    for (int l = 0; l < pg.count[h]; ++l) mask[l] = -1;
    pg.load_mask[h] = _mm256_load_si256(reinterpret_cast<const __m256i*>(mask));
    pg.perm[h] = _mm256_load_si256(reinterpret_cast<const __m256i*>(perm));
    pg.shuffle[h] = _mm_load_si128(reinterpret_cast<const __m128i*>(shuffle));
  }
  return pg;
}

/// Register j of half h of a packed row's partial group at `grp` (pg: its layout), its run read
/// with a masked load (nothing past the group) and placed into its lanes.
inline __m256i partial_register(const uint8_t* grp, const PartialGroup& pg, int h, int j) {
  const uint8_t* run = grp + 2 * pg.m + 4 * pg.m * j + 4 * pg.first[h];
  return _mm256_permutevar8x32_epi32(_mm256_maskload_epi32(reinterpret_cast<const int*>(run), pg.load_mask[h]),
                                     pg.perm[h]);
}

/// The scales of half h of the partial group at grp, as floats (zero for absent blocks): 16 bytes
/// from the half's first scale, which the group's registers follow (a partial group is at least 18
/// bytes).
inline __m256 partial_scales(const uint8_t* grp, const PartialGroup& pg, int h) {
  const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(grp + 2 * pg.first[h]));
  return _mm256_cvtph_ps(_mm_shuffle_epi8(scales, pg.shuffle[h]));
}

/// operands() of half h of a packed row's partial group (at `grp`).
template <class W>
inline void partial_operands(const uint8_t* grp, const PartialGroup& pg, int h, __m256i (&a)[8], __m256i (&sgn)[8],
                             __m256& dw) {
  __m256i u[W::kRegs];
  for (int j = 0; j < W::kRegs; ++j) u[j] = partial_register(grp, pg, h, j);
  W::from_registers(u, a);
  W::magnitudes(a, sgn);
  dw = partial_scales(grp, pg, h);
}

/// isum of the 8 blocks of a half for one token (without the correction), xq its activations.
template <class W>
inline __m256i dot(const __m256i (&a)[8], const __m256i (&sgn)[8], const int8_t* xq) {
  const auto x = [xq](int j) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(xq + 64 * j)); };
  __m256i s = W::first(a[0], sgn[0], x(0));
  for (int j = 1; j < 8; ++j) s = W::mac(s, a[j], sgn[j], x(j));
  return W::finish(s);
}

/// acc = fma(float(isum + corr), dw * dx, acc) for half h of one token's group (the contract's one
/// fma per block, 8 blocks at a time).
template <class W>
inline __m256 accumulate(__m256i isum, __m256 dw, const XGroup& xg, int h, __m256 acc) {
  if (W::kCorr != 0)
    isum = _mm256_add_epi32(isum, _mm256_load_si256(reinterpret_cast<const __m256i*>(xg.corr + 8 * h)));
  const __m256 scale = _mm256_mul_ps(dw, _mm256_load_ps(xg.d + 8 * h));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc);
}

template <class W>
inline __m256 step(const __m256i (&a)[8], const __m256i (&sgn)[8], __m256 dw, const XGroup& xg, int h, __m256 acc) {
  return accumulate<W>(dot<W>(a, sgn, x_half(xg, h)), dw, xg, h, acc);
}

/// How far ahead of the product a one-token pass prefetches its rows, every line, as non-temporal
/// (they are read once). Measured on a Zen 3 core with mixserve bench, TinyLlama Q4_0 decode:
/// no prefetch 30-32 t/s, one line per group worse still, T0 hint 1024 bytes ahead 34-42 t/s,
/// NTA hint 39-46 t/s; 2048 and 1536 bytes did no better, 3072 and 4096 worse.
constexpr int64_t kPrefetchAhead = 1024;

/// Group g of one row (both halves) into acc[t] for T tokens (token t's group at xg[t * ng]), after
/// prefetching every line of the group kPrefetchAhead bytes further (in either layout a group is 16
/// whole blocks in a row). Each token gets the operations of a pass of its own. kPacked: a whole
/// packed group.
template <class W, bool kPacked, int T>
inline void row_group(const uint8_t* row, int64_t nb, int64_t g, const XGroup* xg, int64_t ng, __m256 (&acc)[T][2]) {
  constexpr size_t kGroupBytes = W::kPackedGroupBytes;
  const uint8_t* ahead = row + g * kGroupBytes + kPrefetchAhead;
  for (size_t i = 0; i < kGroupBytes; i += 64) prefetch_nta(ahead + i);
  if constexpr (kPacked && W::packed_dots_for(T)) {
    const uint8_t* grp = row + g * kGroupBytes;
    for (int h = 0; h < 2; ++h) {
      const __m256 dw = packed_scales(grp, h);
      const int8_t* xq[T];
      for (int t = 0; t < T; ++t) xq[t] = x_half(xg[t * ng], h);
      __m256i s[T];
      W::template packed_dots<T>(grp, h, xq, s);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) acc[t][h] = accumulate<W>(s[t], dw, xg[t * ng], h, acc[t][h]);
    }
    return;
  }
  for (int h = 0; h < 2; ++h) {
    __m256i a[8], sgn[8];
    __m256 dw;
    operands<W, kPacked>(row, nb, g, h, a, sgn, dw);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[t][h] = step<W>(a, sgn, dw, xg[t * ng], h, acc[t][h]);
  }
}

/// row_group for one token and whole packed groups of two rows at once (W::packed_dots_pair).
template <class W>
inline void row_group_pair(const uint8_t* row_a, const uint8_t* row_b, int64_t g, const XGroup& xg,
                           __m256 (&acc_a)[1][2], __m256 (&acc_b)[1][2]) {
  constexpr size_t kGroupBytes = W::kPackedGroupBytes;
  const uint8_t* ga = row_a + g * kGroupBytes;
  const uint8_t* gb = row_b + g * kGroupBytes;
  for (size_t i = 0; i < kGroupBytes; i += 64) prefetch_nta(ga + kPrefetchAhead + i);
  for (size_t i = 0; i < kGroupBytes; i += 64) prefetch_nta(gb + kPrefetchAhead + i);
  for (int h = 0; h < 2; ++h) {
    __m256i sa, sb;
    W::packed_dots_pair(ga, gb, h, x_half(xg, h), sa, sb);
    acc_a[0][h] = accumulate<W>(sa, packed_scales(ga, h), xg, h, acc_a[0][h]);
    acc_b[0][h] = accumulate<W>(sb, packed_scales(gb, h), xg, h, acc_b[0][h]);
  }
}

/// row_group for the partial group g of a packed row (pg: its layout).
template <class W, int T>
inline void row_group_partial(const uint8_t* row, int64_t g, const PartialGroup& pg, const XGroup* xg, int64_t ng,
                              __m256 (&acc)[T][2]) {
  const uint8_t* grp = row + g * static_cast<int64_t>(W::kPackedGroupBytes);
  const int64_t bytes = pg.m * static_cast<int64_t>(W::kBlockBytes);
  for (int64_t i = 0; i < bytes; i += 64) prefetch_nta(grp + kPrefetchAhead + i);
  for (int h = 0; h < 2; ++h) {
    __m256i a[8], sgn[8];
    __m256 dw;
    partial_operands<W>(grp, pg, h, a, sgn, dw);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[t][h] = step<W>(a, sgn, dw, xg[t * ng], h, acc[t][h]);
  }
}

/// row_group_pair for the partial groups g of two packed rows (pg: their layout).
template <class W>
inline void row_group_pair_partial(const uint8_t* row_a, const uint8_t* row_b, int64_t g, const PartialGroup& pg,
                                   const XGroup& xg, __m256 (&acc_a)[1][2], __m256 (&acc_b)[1][2]) {
  const uint8_t* ga = row_a + g * static_cast<int64_t>(W::kPackedGroupBytes);
  const uint8_t* gb = row_b + g * static_cast<int64_t>(W::kPackedGroupBytes);
  const int64_t bytes = pg.m * static_cast<int64_t>(W::kBlockBytes);
  for (int64_t i = 0; i < bytes; i += 64) prefetch_nta(ga + kPrefetchAhead + i);
  for (int64_t i = 0; i < bytes; i += 64) prefetch_nta(gb + kPrefetchAhead + i);
  for (int h = 0; h < 2; ++h) {
    __m256i sa, sb;
    W::dots_pair([&](int j, int r) { return partial_register(r == 0 ? ga : gb, pg, h, j); }, x_half(xg, h), sa, sb);
    acc_a[0][h] = accumulate<W>(sa, partial_scales(ga, pg, h), xg, h, acc_a[0][h]);
    acc_b[0][h] = accumulate<W>(sb, partial_scales(gb, pg, h), xg, h, acc_b[0][h]);
  }
}

/// T tokens (token t's groups from xg + t * ng, outputs at y + t * ys): y[r] for r in [r0, r1),
/// streaming the rows once, each group's operands prepared once for the T tokens' passes. The range
/// is read as two streams at once, rows from its first and second halves in step, so that a core
/// has more reads in flight (one token, Zen 3, TinyLlama decode, alternating runs: Q4_0 39-46 ->
/// 42-50 t/s, Q8_0 25 -> 25-26 t/s, 71-78% -> 72-88% of the roofline of each run's moment).
template <class W, bool kPacked, int T, bool kPairPartial>
void rows_streamed(const uint8_t* w, size_t wrb, int64_t nb, int64_t r0, int64_t r1, const XGroup* xg, float* y,
                   int64_t ys) {
  const int64_t ng = (nb + kGroup - 1) / kGroup;
  // Packed rows: whole groups, then a partial group, each in code of its own so that the group loop
  // tests no layout (a test in operands() made one token's Q4_0 decode read at 0.62-0.82 of a plain
  // read instead of 0.87-0.89: bench_matmul DecodeStep, Zen 3 VM).
  const int64_t n_packed = kPacked ? nb / kGroup : 0;
  const PartialGroup pg = kPacked && nb % kGroup != 0 ? partial_group<W>(nb % kGroup) : PartialGroup{};
  const int64_t half = (r1 - r0) / 2;
  int64_t r = r0;
  for (; r < r0 + half; ++r) {
    const uint8_t* row_a = w + r * wrb;
    const uint8_t* row_b = w + (r + half) * wrb;
    __m256 acc_a[T][2], acc_b[T][2];
    for (int t = 0; t < T; ++t) {
      acc_a[t][0] = acc_a[t][1] = acc_b[t][0] = acc_b[t][1] = _mm256_setzero_ps();
    }
    if constexpr (kPacked && T == 1 && W::kPairRows) {
      for (int64_t g = 0; g < n_packed; ++g) row_group_pair<W>(row_a, row_b, g, xg[g], acc_a, acc_b);
    } else {
      for (int64_t g = 0; g < n_packed; ++g) {
        row_group<W, kPacked, T>(row_a, nb, g, xg + g, ng, acc_a);
        row_group<W, kPacked, T>(row_b, nb, g, xg + g, ng, acc_b);
      }
    }
    if constexpr (kPairPartial) {
      row_group_pair_partial<W>(row_a, row_b, n_packed, pg, xg[n_packed], acc_a, acc_b);
    } else if constexpr (kPacked) {
      if (n_packed < ng) {
        row_group_partial<W, T>(row_a, n_packed, pg, xg + n_packed, ng, acc_a);
        row_group_partial<W, T>(row_b, n_packed, pg, xg + n_packed, ng, acc_b);
      }
    } else {
      for (int64_t g = 0; g < ng; ++g) {
        row_group<W, false, T>(row_a, nb, g, xg + g, ng, acc_a);
        row_group<W, false, T>(row_b, nb, g, xg + g, ng, acc_b);
      }
    }
    for (int t = 0; t < T; ++t) {
      y[t * ys + r] = hsum16(acc_a[t][0], acc_a[t][1]);
      y[t * ys + r + half] = hsum16(acc_b[t][0], acc_b[t][1]);
    }
  }
  for (r += half; r < r1; ++r) {
    const uint8_t* row = w + r * wrb;
    __m256 acc[T][2];
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    if constexpr (kPacked) {
      for (int64_t g = 0; g < n_packed; ++g) row_group<W, true, T>(row, nb, g, xg + g, ng, acc);
      if (n_packed < ng) row_group_partial<W, T>(row, n_packed, pg, xg + n_packed, ng, acc);
    } else {
      for (int64_t g = 0; g < ng; ++g) row_group<W, false, T>(row, nb, g, xg + g, ng, acc);
    }
    for (int t = 0; t < T; ++t) y[t * ys + r] = hsum16(acc[t][0], acc[t][1]);
  }
}

/// rows_streamed; for one token over rows that end in a partial group, with the partial groups of
/// two rows at once too (row_group_pair_partial), in a function of its own: in the same function,
/// its code changed GCC's register allocation of the whole-group loop, and one token's Q4_0 decode
/// of TinyLlama read at 0.95-0.97 of a plain read instead of 0.99-1.01 (bench_matmul DecodeStep,
/// 5 alternating runs, Zen 3 VM).
template <class W, bool kPacked, int T>
void streamed(const uint8_t* w, size_t wrb, int64_t nb, int64_t r0, int64_t r1, const XGroup* xg, float* y,
              int64_t ys) {
  if constexpr (kPacked && T == 1 && W::kPairRows) {
    if (nb % kGroup != 0) return rows_streamed<W, true, 1, true>(w, wrb, nb, r0, r1, xg, y, ys);
  }
  rows_streamed<W, kPacked, T, false>(w, wrb, nb, r0, r1, xg, y, ys);
}

/// One row's operands for one half-group, prepared once and read by every token tile.
struct alignas(32) RowOperands {
  __m256i a[8];
  __m256i sgn[8];  ///< Q8_0 only
  __m256 dw;
};

/// R rows x T tokens of one half-group, kept in R*T registers: each operand register loaded serves
/// T (weights) or R (activations) products. ops: the R rows' operands; xg: the first token's group
/// (token t at xg[t * ng]); acc: partials, row r token t at acc[(r * n_tok + t) * 2 + h], which the
/// first group (first) starts from zero instead of reading. Alone, a tile takes about 7 cycles per
/// token and 8 blocks on a Zen 3 core, where its 9 multiplies (8 vpmaddubsw, 1 vpmaddwd) need 4.5
/// at two per cycle (bench_isa).
template <class W, int R, int T>
__attribute__((always_inline)) inline void tile(const RowOperands* ops, const XGroup* xg, int64_t ng, int h,
                                                __m256* acc, int64_t n_tok, bool first) {
  __m256i s[R][T];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    __m256i a[R], sg[R] = {};
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      a[r] = _mm256_load_si256(&ops[r].a[j]);
      if (W::kSigned) sg[r] = _mm256_load_si256(&ops[r].sgn[j]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(xg[t * ng].q[j] + 32 * h));
      asm("" : "+x"(xv));  // one load for the R rows, not one memory operand per row
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        s[r][t] = j == 0 ? W::first(a[r], sg[r], xv) : W::mac(s[r][t], a[r], sg[r], xv);
        // Keeps the sums running in registers: GCC would otherwise reassociate the integer adds into
        // trees over all 8 products, which spills most of them.
        asm("" : "+x"(s[r][t]));
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      __m256* p = acc + (r * n_tok + t) * 2 + h;
      *p = accumulate<W>(W::finish(s[r][t]), ops[r].dw, xg[t * ng], h, first ? _mm256_setzero_ps() : *p);
    }
  }
}

constexpr int kTileTokens = 4;

/// All n_tok tokens of R rows in tiles of kTileTokens tokens. A function of its own, so that GCC
/// allocates the tiles' registers apart from the loops around it: inlined there, it spilled the sums
/// (Zen 3, 16 tokens, cycles per token and 8 blocks: tiles inlined 12.3, each tile a call 11.2–11.7,
/// this 9.6–9.9).
template <class W, int R>
__attribute__((noinline)) void tiles(const RowOperands* ops, const XGroup* xg, int64_t ng, int h, __m256* acc,
                                     int64_t n_tok, bool first) {
  int64_t t = 0;
  for (; t + kTileTokens <= n_tok; t += kTileTokens) {
    tile<W, R, kTileTokens>(ops, xg + t * ng, ng, h, acc + t * 2, n_tok, first);
  }
  switch (n_tok - t) {
    case 3: return tile<W, R, 3>(ops, xg + t * ng, ng, h, acc + t * 2, n_tok, first);
    case 2: return tile<W, R, 2>(ops, xg + t * ng, ng, h, acc + t * 2, n_tok, first);
    case 1: return tile<W, R, 1>(ops, xg + t * ng, ng, h, acc + t * 2, n_tok, first);
    default: return;
  }
}

/// hsum16 of 8 rows' partials at once (p[r] = {positions 0-7, 8-15} of row r), lane r of the
/// result = row r: the same additions of the same operands, 8 rows to a vector.
inline __m256 hsum16_rows(const __m256* const (&p)[8]) {
  __m256 v[8];
  for (int r = 0; r < 8; ++r) v[r] = _mm256_add_ps(p[r][0], p[r][1]);  // (i, i+8)
  return combine_lanes8(v, [](__m256 l, __m256 r) { return _mm256_add_ps(l, r); });
}

/// n_tok tokens over rows [r0, r1) in blocks of kRowBlock rows: each row's operands are prepared
/// once per half-group (the next group's weights prefetched meanwhile), then every token passes
/// over them in tiles of 2 rows; the partials wait in `acc`, and 8 rows are summed at a time.
/// Against one row at a time with every token's activations reloaded per row (Zen 3, one thread,
/// weights in L2, best of interleaved runs), cycles per token and 8 blocks for 16 tokens: Q4_0
/// 12.8 -> 9.6-9.9, Q8_0 19.8 -> 15.3-15.8. Blocks of 16 rows, tiles of 6 tokens and panels of 16
/// tokens did no better.
constexpr int64_t kRowBlock = 8;

template <class W, bool kPacked>
void rows_tokens(const uint8_t* w, size_t wrb, int64_t nb, int64_t r0, int64_t r1, const XGroup* xg, int64_t n_tok,
                 __m256* acc, float* y, int64_t ys) {
  const int64_t ng = (nb + kGroup - 1) / kGroup;
  constexpr auto kGroupBytes = static_cast<int64_t>(W::kPackedGroupBytes);  // either layout
  const PartialGroup pg = kPacked && nb % kGroup != 0 ? partial_group<W>(nb % kGroup) : PartialGroup{};
  RowOperands ops[kRowBlock];
  for (int64_t rb = r0; rb < r1; rb += kRowBlock) {
    const int64_t nr = min_i64(kRowBlock, r1 - rb);
    for (int64_t g = 0; g < ng; ++g) {
      // The block's next group, or the next block's first group: one row before each call of tiles,
      // so that the reads spread over the group's work. All 8 rows at once left the operand loads
      // waiting for memory (bench --batch 16, TinyLlama Q4_0, alternating runs: 92-111 t/s against
      // 107-127 spread out).
      const int64_t pf_row = g + 1 < ng ? rb : rb + kRowBlock;
      const int64_t pf_group = g + 1 < ng ? g + 1 : 0;
      int64_t pf_next = 0;
      const auto prefetch_row = [&] {
        if (pf_next >= kRowBlock || pf_row + pf_next >= r1) return;
        const uint8_t* next = w + (pf_row + pf_next) * wrb + pf_group * kGroupBytes;
        for (int64_t i = 0; i < kGroupBytes + 63; i += 64)  // the last line too, however the group is aligned
          _mm_prefetch(reinterpret_cast<const char*>(next + min_i64(i, kGroupBytes - 1)), _MM_HINT_T0);
        ++pf_next;
      };
      for (int h = 0; h < 2; ++h) {
        for (int64_t rr = 0; rr < nr; ++rr) {
          const uint8_t* row = w + (rb + rr) * wrb;
          if (kPacked && whole_group(g, nb)) {
            operands<W, kPacked>(row, nb, g, h, ops[rr].a, ops[rr].sgn, ops[rr].dw);
          } else if (kPacked) {
            partial_operands<W>(row + g * kGroupBytes, pg, h, ops[rr].a, ops[rr].sgn, ops[rr].dw);
          } else {
            operands<W, false>(row, nb, g, h, ops[rr].a, ops[rr].sgn, ops[rr].dw);
          }
        }
        int64_t rr = 0;
        for (; rr + 2 <= nr; rr += 2) {
          prefetch_row();
          tiles<W, 2>(ops + rr, xg + g, ng, h, acc + rr * n_tok * 2, n_tok, g == 0);
        }
        prefetch_row();
        if (rr < nr) tiles<W, 1>(ops + rr, xg + g, ng, h, acc + rr * n_tok * 2, n_tok, g == 0);
      }
    }
    for (int64_t t = 0; t < n_tok; ++t) {
      const auto partials = [&](int64_t rr) { return acc + (rr * n_tok + t) * 2; };
      int64_t rr = 0;
      for (; rr + 8 <= nr; rr += 8) {
        const __m256* const p[8] = {partials(rr),     partials(rr + 1), partials(rr + 2), partials(rr + 3),
                                    partials(rr + 4), partials(rr + 5), partials(rr + 6), partials(rr + 7)};
        _mm256_storeu_ps(y + t * ys + rb + rr, hsum16_rows(p));
      }
      for (; rr < nr; ++rr) y[t * ys + rb + rr] = hsum16(partials(rr)[0], partials(rr)[1]);
    }
  }
}

// Tokens go in panels whose arranged activations stay in L2 while the rows pass over them, and
// whose running sums and activations for one half-group stay in L1: 16 tokens, not 32 (Zen 3, one
// thread, bench_matmul BM_Prefill Q4_0 2048x5632 / 5632x2048: 113 / 106 -> 100 / 94 ms, best of 5
// alternating runs).
constexpr int64_t kPanelBytes = 256 * 1024;
constexpr int64_t kMaxPanel = 16;

// Activations of n_tok tokens (rows xrb bytes apart) arranged for weights of W, ng groups per
// token, once per product and thread (arranged_activations; the tag's address names the arrangement).
template <class W>
constexpr char kArrangedTag = 0;
template <class W>
const XGroup* arranged_once(const uint8_t* x, size_t xrb, int64_t nb, int64_t n_tok) {
  const int64_t ng = (nb + kGroup - 1) / kGroup;
  const auto row_bytes = static_cast<size_t>(nb) * sizeof(BlockQ8_0);
  const auto groups_bytes = static_cast<size_t>(n_tok * ng) * sizeof(XGroup);
  const ArrangedArea area = arranged_activations(&kArrangedTag<W>, x, xrb, row_bytes, n_tok, groups_bytes);
  auto* groups = static_cast<XGroup*>(area.data);
  if (!area.valid) {
    for (int64_t t = 0; t < n_tok; ++t) arrange_x(x + t * xrb, nb, W::kOrder, W::kCorr, groups + t * ng);
  }
  return groups;
}

template <class W, bool kPacked>
void matmul(int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1, const uint8_t* x, size_t xrb,
            int64_t n_tok, float* y, int64_t ys) {
  const int64_t nb = k / kQK;
  const int64_t ng = (nb + kGroup - 1) / kGroup;
  const auto token_bytes = static_cast<int64_t>(ng * sizeof(XGroup));
  const int64_t panel = min_i64(n_tok, max_i64(1, min_i64(kMaxPanel, kPanelBytes / token_bytes)));
  const int64_t acc_bytes = kRowBlock * panel * 2 * static_cast<int64_t>(sizeof(__m256));
  auto* acc = static_cast<__m256*>(matmul_scratch(static_cast<size_t>(acc_bytes)));
  for (int64_t t0 = 0; t0 < n_tok; t0 += panel) {
    const int64_t tp = min_i64(panel, n_tok - t0);
    const XGroup* xg = arranged_once<W>(x + t0 * xrb, xrb, nb, tp);
    // Up to 8 tokens, the rows stream past once with every token's pass (rows_streamed); from 9 on,
    // the register tiles of rows_tokens, which share each loaded operand between rows and tokens.
    // Streaming against tiles, decode steps of TinyLlama alternating in one process (Zen 3 VM):
    // Q4_0 2 tokens 36% less time, 3 27%, 4 21%, 6 21%, 7 22%, 8 9-18%, 12 6% more, 16 11% more;
    // Q8_0 2 tokens 23% less, 4 16% less, 8 2% more.
    switch (tp) {
      case 1: streamed<W, kPacked, 1>(w, wrb, nb, r0, r1, xg, y + t0 * ys, ys); break;
      case 2: streamed<W, kPacked, 2>(w, wrb, nb, r0, r1, xg, y + t0 * ys, ys); break;
      case 3: streamed<W, kPacked, 3>(w, wrb, nb, r0, r1, xg, y + t0 * ys, ys); break;
      case 4: streamed<W, kPacked, 4>(w, wrb, nb, r0, r1, xg, y + t0 * ys, ys); break;
      case 5: streamed<W, kPacked, 5>(w, wrb, nb, r0, r1, xg, y + t0 * ys, ys); break;
      case 6: streamed<W, kPacked, 6>(w, wrb, nb, r0, r1, xg, y + t0 * ys, ys); break;
      case 7: streamed<W, kPacked, 7>(w, wrb, nb, r0, r1, xg, y + t0 * ys, ys); break;
      case 8: streamed<W, kPacked, 8>(w, wrb, nb, r0, r1, xg, y + t0 * ys, ys); break;
      default: rows_tokens<W, kPacked>(w, wrb, nb, r0, r1, xg, tp, acc, y + t0 * ys, ys);
    }
  }
}

}  // namespace

void matmul_quant_avx2(DType wtype, bool packed, int64_t k, const void* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                       const void* x, size_t x_row_bytes, int64_t n_tok, float* y, int64_t y_stride) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  if (wtype == DType::kQ4_0) {
    return packed ? matmul<Q4, true>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride)
                  : matmul<Q4, false>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
  }
  return packed ? matmul<Q8, true>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride)
                : matmul<Q8, false>(k, wb, w_row_bytes, r0, r1, xb, x_row_bytes, n_tok, y, y_stride);
}

}  // namespace mixserve::cpu

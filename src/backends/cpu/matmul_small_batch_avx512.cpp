// AVX-512 VNNI products of Q4_0/Q8_0 weights with 1 to 16 tokens (decode, and continuous-batching
// decode); the arithmetic contract is in matmul_quant_avx512.h.
// Rows are read in place, in memory order (one sequential stream, as in decode), 16 blocks at a
// time, with lane p of every register holding block order[p] of the group, so one vpdpbusd chain
// per token leaves exact block sums in lanes: no repack through memory, no per-token reduction,
// and each activation operand is one plain vector load.
//  - GGUF layout: the 16 blocks are transposed in registers (the tile loaders with the block size
//    as the stride; order = kLaneRow), about 14 cycles a group for Q4_0 and 27 for Q8_0, shared by
//    the tokens of the batch;
//  - packed layout (weight_packing.h): the operands are plain loads (order = the type's partial
//    order); a partial group at the end of the row, masked loads expanded into its blocks' lanes.
// One token reads two rows at a time (one_token_rows), so each activation operand loaded serves
// both: for GGUF-layout Q4_0 rows (tied output matrices, --no-pack) this took the place of a
// kernel of its own that permuted 4-block chunks (hot 48-54 -> 60-62 GB/s a thread; Q8_0 67-70
// either way; Zen 5 VM, bench_matmul ProductHot batch:1 packed:0).
// The activations are arranged once per product and thread (arranged_activations), not once per
// work item.
// Per token and group the hot loop issues 8 vpdpbusd, a multiply and an FMA and 10 vector loads:
// about 6 cycles measured on a Zen 5 class core (two 512-bit loads and two vpdpbusd a cycle), 14 on
// a Zen 4 class one (one of each). The activations a pass reads must stay in L1: a batch whose
// activations do not fit goes in two passes of tokens, or else in chunks of k (small_batch_rows).
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* helpers
// when inlined (GCC bug 105593, fixed in 12.3/13); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <unistd.h>

#include <array>
#include <utility>

#include "backends/cpu/matmul_quant_avx512.h"
#include "backends/cpu/matmul_variants.h"
#include "backends/cpu/prefetch.h"

namespace mixserve::cpu {
namespace {

// A weight format in one layout: Ops (Q4Operands, Q8Operands) and where its blocks sit in lanes.
template <class Ops, bool kPacked>
struct RowKind : Ops {
  static constexpr bool kIsPacked = kPacked;
  static constexpr const int32_t* kOrder = kPacked ? Ops::kLaneBlock : kLaneRow;  // lane p: block kOrder[p]
};

// perm[p] = the lane of `from` holding block to[p].
struct LanePerm {
  alignas(64) int32_t perm[16];
  constexpr LanePerm(const int32_t* from, const int32_t* to) : perm() {
    for (int p = 0; p < 16; ++p) {
      for (int q = 0; q < 16; ++q) {
        if (from[q] == to[p]) perm[p] = q;
      }
    }
  }
};

// One token's activations for group g (16 blocks), lane p holding block order[p]; zeros past nb.
struct alignas(64) XGroup {
  int8_t q[8][64];   // lane p of q[j]: bytes 4j..4j+3 of the block
  int32_t corr[16];  // the block's correction, -kCorr times the sum of its values
  float d[16];       // the block's scale
};

// Names the arrangement of prepare_x_groups<Kind> (arranged_activations): the work items of one
// product reuse it.
template <class Kind>
constexpr char kArrangedTag = 0;

// Token t's groups go to out[g * stride] (all tokens of a group side by side, so that a pass reaches
// each token's group at a fixed offset from one pointer).
template <class Kind>
void prepare_x_groups(const uint8_t* x, int64_t nb, XGroup* out, int64_t stride) {
  static constexpr LanePerm kToOrder(kLaneRow, Kind::kOrder);
  const __m512i perm = _mm512_load_si512(kToOrder.perm);
  for (int64_t g = 0; 16 * g < nb; ++g) {
    const uint8_t* xb = x + 16 * g * kXBlockBytes;
    const auto n_valid = static_cast<int>(min_i64(16, nb - 16 * g));
    __m512i u[4];
    for (int half = 0; half < 2; ++half) {
      load_transposed<false>(xb + 2 + 16 * half, kXBlockBytes, n_valid, u);
      for (int j = 0; j < 4; ++j) {
        _mm512_store_si512(out[g * stride].q[4 * half + j], _mm512_permutexvar_epi32(perm, u[j]));
      }
    }
    for (int p = 0; p < 16; ++p) {
      const bool valid = Kind::kOrder[p] < n_valid;
      const uint8_t* blk = xb + Kind::kOrder[p] * kXBlockBytes;
      out[g * stride].corr[p] = valid ? -Kind::kCorr * block_sum(blk) : 0;
      out[g * stride].d[p] = valid ? half_to_float(blk) : 0.0f;
    }
  }
}

// The fp16 scales of a GGUF-layout group's blocks in kLaneRow order. A gather costs about 20
// cycles here, so instead: 64-byte windows of whole blocks (a block's scale opens it), each pair
// of windows merged by one word permute, and the permutes blended by lane.
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

// How far ahead of the group being read the rows are prefetched (bytes) when they are read whole,
// one after the other: the stream continues, as in decode.
constexpr int64_t kRowPrefetchBytes = 8192;

// acc[t] += the group at blk (n_valid blocks) . token t, for T tokens (token t's group at xg[t]).
// The bytes `ahead` past the group are prefetched.
template <class Kind, int T, bool kFull>
__attribute__((always_inline)) inline void group_tokens(const uint8_t* blk, int n_valid, const XGroup* xg,
                                                        int64_t ahead, __m512 (&acc)[T]) {
  constexpr auto kGroupBytes = static_cast<int64_t>(16 * Kind::kBlockBytes);
  for (int64_t off = 0; off < kGroupBytes; off += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(blk + ahead + off), _MM_HINT_T1);
  }
  __m512i a[8];
  __m512 dw;
  if constexpr (Kind::kIsPacked && !kFull) {
    dw = packed_partial_group<Kind>(blk, n_valid, a);
  } else if constexpr (Kind::kIsPacked) {
    dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
    Kind::from_packed(blk + 32, a);
  } else {
    Kind::template transpose<kFull>(blk, Kind::kBlockBytes, n_valid, a);
    dw = group_scales<static_cast<int64_t>(Kind::kBlockBytes), kFull>(blk, n_valid);
  }
  const __mmask16 valid = _mm512_cmplt_epi32_mask(_mm512_load_si512(Kind::kOrder), _mm512_set1_epi32(n_valid));
  // Two tokens at a time, each token's 8 vpdpbusd split over kChains independent chains so that
  // enough are in flight to cover the instruction's latency (one 8-long chain alone costs 5x the
  // rest of a group); integer sums are exact, so the split changes no result.
  constexpr int kChains = T == 1 ? 4 : T <= 3 ? 2 : 1;
#pragma GCC unroll 8
  for (int t0 = 0; t0 < T; t0 += 2) {
    const int nt = T - t0 < 2 ? 1 : 2;
    __m512i isum[2][kChains];
#pragma GCC unroll 2
    for (int u = 0; u < nt; ++u) {
      isum[u][0] = _mm512_load_si512(xg[t0 + u].corr);
#pragma GCC unroll 4
      for (int c = 1; c < kChains; ++c) isum[u][c] = _mm512_setzero_si512();
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
#pragma GCC unroll 2
      for (int u = 0; u < nt; ++u) {
        isum[u][j % kChains] = _mm512_dpbusd_epi32(isum[u][j % kChains], a[j], _mm512_load_si512(xg[t0 + u].q[j]));
      }
    }
#pragma GCC unroll 2
    for (int u = 0; u < nt; ++u) {
#pragma GCC unroll 4
      for (int c = 1; c < kChains; ++c) isum[u][0] = _mm512_add_epi32(isum[u][0], isum[u][c]);
      const __m512 f = _mm512_cvtepi32_ps(isum[u][0]);
      const __m512 scale = _mm512_mul_ps(dw, _mm512_load_ps(xg[t0 + u].d));
      acc[t0 + u] =
          kFull ? _mm512_fmadd_ps(f, scale, acc[t0 + u]) : _mm512_mask3_fmadd_ps(f, scale, acc[t0 + u], valid);
    }
  }
}

// Groups [g0, g1) of one row for T tokens (token t's group g at xg[g * xs + t]). The accumulators
// start at zero when `first`, else at state (16 floats a token, 64-byte aligned); at the end they go
// to y[t * ys] (permuted to the type's partial order and summed) when y is set, else back to state.
// Each group read prefetches the bytes `ahead` of it.
template <class Kind, int T>
void row_groups(const uint8_t* row, int64_t nb, int64_t g0, int64_t g1, const XGroup* xg, int64_t xs, int64_t ahead,
                float* state, bool first, float* y, int64_t ys) {
  static constexpr LanePerm kToPartials(Kind::kOrder, Kind::kLaneBlock);
  constexpr auto kGroupBytes = static_cast<int64_t>(16 * Kind::kBlockBytes);
  __m512 acc[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc[t] = first ? _mm512_setzero_ps() : _mm512_load_ps(state + 16 * t);
  const int64_t full = min_i64(g1, nb / 16);
  for (int64_t g = g0; g < full; ++g) group_tokens<Kind, T, true>(row + g * kGroupBytes, 16, xg + g * xs, ahead, acc);
  if (full < g1) {
    group_tokens<Kind, T, false>(row + full * kGroupBytes, static_cast<int>(nb - 16 * full), xg + full * xs, ahead,
                                 acc);
  }
  if (y == nullptr) {
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) _mm512_store_ps(state + 16 * t, acc[t]);
    return;
  }
  const __m512i perm = _mm512_load_si512(kToPartials.perm);
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) y[t * ys] = hsum(_mm512_permutexvar_ps(perm, acc[t]));
}

// How far ahead one token's two row streams are prefetched (bytes past the group being read,
// non-temporal; 0: not at all, the hardware prefetchers alone). Zen 5 VM, TinyLlama decode, steps
// alternating in one process, products' time per step at 83-87 GB/s probes: Q4_0 with 4 KiB
// ahead 2-5% less than with none, 5-9% less than 2 KiB or 8 KiB, 1-2% less than 3 KiB, 0-4% less
// than prefetcht0; Q8_0 with none 2-4% less than 4 KiB. (bench_matmul DecodeStep at ~50 GB/s
// agreed: Q8_0 0.99 of a plain read without prefetch, 0.93 with 8 KiB prefetcht1.)
// Q8_0 rows that end in a partial group (Qwen2-0.5B's 896 and 4864 widths) are prefetched too: the
// masked loads that read that group did not keep the memory busy on their own (Zen 5 VM, Qwen2-0.5B
// shape Q8_0 decode, steps alternating in one process at 85-86 GB/s probes: the 896-wide gate+up
// job read at 70-79 GB/s with 4 KiB ahead against 30-33 GB/s without, the whole step's products
// 5.5-6.2 ms against 10.9-11.6).
constexpr int64_t kPairPrefetchBytes = 4096;
template <class Kind>
int64_t pair_prefetch_bytes(int64_t nb) {
  const bool q4 = Kind::kBlockBytes == sizeof(quant::BlockQ4_0);
  return q4 || nb % 16 != 0 ? kPairPrefetchBytes : 0;
}

// One token, two rows: acc_a/acc_b += the groups at blk_a/blk_b (n_valid blocks) . the token's
// group xg, each activation operand loaded once for both rows; the same arithmetic per row as
// group_tokens<Kind, 1> (integer sums are exact, so the chains' split changes nothing).
template <class Kind, bool kFull>
__attribute__((always_inline)) inline void group_row_pair(const uint8_t* blk_a, const uint8_t* blk_b, int n_valid,
                                                          const XGroup& xg, int64_t ahead, __m512& acc_a,
                                                          __m512& acc_b) {
  constexpr auto kGroupBytes = static_cast<int64_t>(16 * Kind::kBlockBytes);
  if (ahead > 0) {
    for (int64_t off = 0; off < kGroupBytes; off += 64) {
      prefetch_nta(blk_a + ahead + off);
      prefetch_nta(blk_b + ahead + off);
    }
  }
  __m512i a[8], b[8];
  __m512 dw_a, dw_b;
  if constexpr (Kind::kIsPacked && !kFull) {
    dw_a = packed_partial_group<Kind>(blk_a, n_valid, a);
    dw_b = packed_partial_group<Kind>(blk_b, n_valid, b);
  } else if constexpr (Kind::kIsPacked) {
    dw_a = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk_a)));
    dw_b = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk_b)));
    Kind::from_packed_scaled(blk_a + 32, a);
    Kind::from_packed_scaled(blk_b + 32, b);
  } else {
    Kind::template transpose<kFull>(blk_a, Kind::kBlockBytes, n_valid, a);
    Kind::template transpose<kFull>(blk_b, Kind::kBlockBytes, n_valid, b);
    dw_a = group_scales<static_cast<int64_t>(Kind::kBlockBytes), kFull>(blk_a, n_valid);
    dw_b = group_scales<static_cast<int64_t>(Kind::kBlockBytes), kFull>(blk_b, n_valid);
  }
  // Registers 0-3 go to chain 0 and 4-7 to chain 1, whose sum (over whole packed groups, the
  // operands from from_packed_scaled) is shifted back before the two are added.
  constexpr int kShift = Kind::kIsPacked && kFull ? Kind::kScaledShift : 0;
  __m512i sa[2] = {_mm512_load_si512(xg.corr), _mm512_setzero_si512()};
  asm("" : "+v"(sa[0]));
  __m512i sb[2] = {sa[0], _mm512_setzero_si512()};
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    __m512i xv = _mm512_load_si512(xg.q[j]);
    asm("" : "+v"(xv));  // one load for both rows, not a memory operand of each
    sa[j / 4] = _mm512_dpbusd_epi32(sa[j / 4], a[j], xv);
    sb[j / 4] = _mm512_dpbusd_epi32(sb[j / 4], b[j], xv);
  }
  if constexpr (kShift > 0) {
    sa[1] = _mm512_srai_epi32(sa[1], kShift);
    sb[1] = _mm512_srai_epi32(sb[1], kShift);
  }
  const __m512 dx = _mm512_load_ps(xg.d);
  const __m512 fa = _mm512_cvtepi32_ps(_mm512_add_epi32(sa[0], sa[1]));
  const __m512 fb = _mm512_cvtepi32_ps(_mm512_add_epi32(sb[0], sb[1]));
  const __m512 scale_a = _mm512_mul_ps(dw_a, dx);
  const __m512 scale_b = _mm512_mul_ps(dw_b, dx);
  if constexpr (kFull) {
    acc_a = _mm512_fmadd_ps(fa, scale_a, acc_a);
    acc_b = _mm512_fmadd_ps(fb, scale_b, acc_b);
  } else {
    const __mmask16 valid = _mm512_cmplt_epi32_mask(_mm512_load_si512(Kind::kOrder), _mm512_set1_epi32(n_valid));
    acc_a = _mm512_mask3_fmadd_ps(fa, scale_a, acc_a, valid);
    acc_b = _mm512_mask3_fmadd_ps(fb, scale_b, acc_b, valid);
  }
}

// One token over whole rows [r0, r1), two rows at a time: half the activation loads of one row at
// a time, which on a core that loads two vectors a cycle are most of a group's loads (Q4_0: 8 of
// 15 for one row). Row r goes with row r + half, so that two streams are read at once, as in the
// AVX2 kernel (two adjacent rows took 1.16-1.26x the time per decode step, four streams 1.04-1.12x;
// Zen 5 VM, alternating in one process).
template <class Kind>
void one_token_rows(const uint8_t* w, size_t wrb, int64_t nb, int64_t r0, int64_t r1, const XGroup* xg, float* y) {
  static constexpr LanePerm kToPartials(Kind::kOrder, Kind::kLaneBlock);
  constexpr auto kGroupBytes = static_cast<int64_t>(16 * Kind::kBlockBytes);
  const __m512i perm = _mm512_load_si512(kToPartials.perm);
  const int64_t full = nb / 16;
  const int64_t half = (r1 - r0) / 2;
  const int64_t ahead = pair_prefetch_bytes<Kind>(nb);
  for (int64_t r = r0; r < r0 + half; ++r) {
    const uint8_t* row_a = w + r * wrb;
    const uint8_t* row_b = w + (r + half) * wrb;
    __m512 acc_a = _mm512_setzero_ps(), acc_b = _mm512_setzero_ps();
    for (int64_t g = 0; g < full; ++g) {
      group_row_pair<Kind, true>(row_a + g * kGroupBytes, row_b + g * kGroupBytes, 16, xg[g], ahead, acc_a, acc_b);
    }
    if (full * 16 < nb) {
      group_row_pair<Kind, false>(row_a + full * kGroupBytes, row_b + full * kGroupBytes,
                                  static_cast<int>(nb - 16 * full), xg[full], ahead, acc_a, acc_b);
    }
    y[r] = hsum(_mm512_permutexvar_ps(perm, acc_a));
    y[r + half] = hsum(_mm512_permutexvar_ps(perm, acc_b));
  }
  if ((r1 - r0) % 2 != 0) {
    row_groups<Kind, 1>(w + (r1 - 1) * wrb, nb, 0, (nb + 15) / 16, xg, 1, kRowPrefetchBytes, nullptr, true, y + r1 - 1,
                        0);
  }
}

constexpr int kRowMaxTokens = 16;  // tokens per call (their accumulators stay in registers)

using RowFn = void (*)(const uint8_t*, int64_t, int64_t, int64_t, const XGroup*, int64_t, int64_t, float*, bool, float*,
                       int64_t);

template <class Kind, int... Ts>
constexpr auto row_table(std::integer_sequence<int, Ts...>) {
  return std::array<RowFn, sizeof...(Ts)>{&row_groups<Kind, Ts + 1>...};
}

// Activations read per chunk of groups at most: the hot loop reads them as fast as the core can
// load, which only L1 sustains; 5/8 of the L1 data cache leaves room for the rows streaming through
// (measured: on a 48 KiB L1, 40 KiB per chunk kept 6 cycles a token-group, past 45 KiB it took
// 14 to 20; on a 32 KiB L1, 16 tokens of 40 KiB took 3x the time of 8 tokens of 20 KiB).
int64_t chunk_bytes() {
  static const int64_t bytes = [] {
    const long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    return (l1 > 0 ? static_cast<int64_t>(l1) : 32 * 1024) * 5 / 8;
  }();
  return bytes;
}
// Rows per block when a row is read in several chunks: the accumulators of a block's rows wait in
// scratch between chunks, and its rows stay in L2 for the next chunk. Each group read then
// prefetches the same group of the row one block further, which is read next in that order (a
// stream a fixed distance ahead of the next reader; the plain 4 KiB ahead of whole rows would
// fetch groups of later chunks and miss the next row, measured as a third of the kernel's time
// waiting on weights at 16 tokens).
constexpr int64_t kRowBlock = 16;

template <class Kind>
void small_batch_rows(int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1, const uint8_t* x, size_t xrb,
                      int64_t n_tok, float* y, int64_t ys) {
  static constexpr auto kRowFns = row_table<Kind>(std::make_integer_sequence<int, kRowMaxTokens>());
  const RowFn fn = kRowFns[static_cast<size_t>(n_tok - 1)];
  const int64_t nb = k / kQKBlock;
  const int64_t n_groups = (nb + 15) / 16;
  const auto x_bytes = static_cast<size_t>(n_tok * n_groups) * sizeof(XGroup);
  const ArrangedArea area =
      arranged_activations(&kArrangedTag<Kind>, x, xrb, static_cast<size_t>(nb) * kXBlockBytes, n_tok, x_bytes);
  auto* xg = static_cast<XGroup*>(area.data);
  if (!area.valid) {
    for (int64_t t = 0; t < n_tok; ++t) prepare_x_groups<Kind>(x + t * xrb, nb, xg + t, n_tok);
  }
  auto* state = static_cast<float*>(matmul_scratch(static_cast<size_t>(kRowBlock * n_tok * 16) * sizeof(float)));
  const int64_t per_token = n_groups * static_cast<int64_t>(sizeof(XGroup));
  const int64_t fit = chunk_bytes() / per_token;  // tokens whose whole rows of activations fit
  if (fit < n_tok && 2 * fit >= n_tok) {
    // Two passes of tokens over each block of rows, each with whole rows: cheaper than chunks of k
    // (hot, 16 tokens x k 2048: 8 tokens cost 3.8 ns a token and group, 16 in chunks 4.2 ns).
    const int64_t first = (n_tok + 1) / 2;
    const RowFn pass1 = kRowFns[static_cast<size_t>(first - 1)];
    const RowFn pass2 = kRowFns[static_cast<size_t>(n_tok - first - 1)];
    const auto ahead = static_cast<int64_t>(kRowBlock * wrb);
    for (int64_t rb = r0; rb < r1; rb += kRowBlock) {
      const int64_t re = min_i64(r1, rb + kRowBlock);
      for (int64_t r = rb; r < re; ++r) pass1(w + r * wrb, nb, 0, n_groups, xg, n_tok, ahead, state, true, y + r, ys);
      for (int64_t r = rb; r < re; ++r) {
        pass2(w + r * wrb, nb, 0, n_groups, xg + first, n_tok, 0, state, true, y + first * ys + r, ys);
      }
    }
    return;
  }
  const int64_t chunk = max_i64(1, chunk_bytes() / (n_tok * static_cast<int64_t>(sizeof(XGroup))));
  if (n_tok == 1 && chunk >= n_groups) {
    one_token_rows<Kind>(w, wrb, nb, r0, r1, xg, y);
    return;
  }
  if (chunk >= n_groups) {
    for (int64_t r = r0; r < r1; ++r) {
      fn(w + r * wrb, nb, 0, n_groups, xg, n_tok, kRowPrefetchBytes, state, true, y + r, ys);
    }
    return;
  }
  const auto ahead = static_cast<int64_t>(kRowBlock * wrb);
  for (int64_t rb = r0; rb < r1; rb += kRowBlock) {
    const int64_t re = min_i64(r1, rb + kRowBlock);
    for (int64_t g0 = 0; g0 < n_groups; g0 += chunk) {
      const int64_t g1 = min_i64(n_groups, g0 + chunk);
      for (int64_t r = rb; r < re; ++r) {
        fn(w + r * wrb, nb, g0, g1, xg, n_tok, ahead, state + (r - rb) * n_tok * 16, g0 == 0,
           g1 == n_groups ? y + r : nullptr, ys);
      }
    }
  }
}

}  // namespace

bool small_batch_quant_avx512(DType wtype, bool packed, int64_t k, const uint8_t* w, size_t wrb, int64_t r0, int64_t r1,
                              const uint8_t* x, size_t xrb, int64_t n_tok, float* y, int64_t ys) {
  if (n_tok > kRowMaxTokens) return false;
  if (wtype == DType::kQ4_0) {
    if (packed) {
      small_batch_rows<RowKind<Q4Operands, true>>(k, w, wrb, r0, r1, x, xrb, n_tok, y, ys);
    } else {
      small_batch_rows<RowKind<Q4Operands, false>>(k, w, wrb, r0, r1, x, xrb, n_tok, y, ys);
    }
  } else if (packed) {
    small_batch_rows<RowKind<Q8Operands, true>>(k, w, wrb, r0, r1, x, xrb, n_tok, y, ys);
  } else {
    small_batch_rows<RowKind<Q8Operands, false>>(k, w, wrb, r0, r1, x, xrb, n_tok, y, ys);
  }
  return true;
}

}  // namespace mixserve::cpu

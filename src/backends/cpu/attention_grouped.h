// Internal to the SIMD vector kernels (vector_kernels_avx2.cpp, vector_kernels_avx512.cpp): the
// grouped-query attention kernel, written once over a vector type `S` and compiled in each of
// those files with its own instruction set. Include only from them: everything here has internal
// linkage, so no copy compiled for one instruction set can be linked into code built for another.
//
// S provides, for float vectors of S::kLanes lanes:
//   using V (vector), using M (lane mask); kLanes;
//   M tail(int64_t r): the first min(r, kLanes) lanes;
//   V zero(), set1(float), load_aligned(const float*);
//   V load(P), load_masked(P, M) (zeros elsewhere) for the cache's row pointer types P: const float*,
//     const Half* (f16 converted to float, exactly) and Q8Row (Q8_0 blocks: float(q) * d, as
//     quant::dequantize_row);
//   V fmadd(V a, V b, V c) = a * b + c, add(V, V);
//   void store_aligned(float*, V), store_masked(float*, M, V);
//   void keep(V&): an empty asm statement, so that a loaded vector stays one load for all its uses;
//   void store_sums4(V, V, V, V, float scale, float* out): out[i] = (sum of the lanes of a_i) * scale,
//     each sum in the variant's own fixed order;
//   float hsum(V); void softmax(float*, int64_t) (the variant's softmax).
// A row pointer P moves by elements (P + n); the caches' rows and blocks are arrays of P.
// Every query gets exactly the operations, hence the bits, of a call of its own; the bits differ
// between vector types (lane counts and sum orders), within the variants' tolerances. An f16 or Q8_0
// cache gives the bits of an f32 cache holding the same values: its rows are converted as they are
// loaded or copied into an L1 tile, and every float operation is the same.
#pragma once

#include <cstdint>
#include <type_traits>

#include "backends/cpu/prefetch.h"
#include "backends/cpu/vector_kernels.h"

namespace mixserve::cpu {
namespace {
namespace grouped {

// How many cache rows ahead of the one in use the attention kernel prefetches key and value rows.
// One KV head's part of a row is a few lines, a whole cache row away from the next, a pattern the
// hardware prefetchers did not follow: in decoding, whose weight stream evicts the cache between
// layers, attention read its rows at about 5 GB/s per core. Zen 3 VM, TinyLlama Q4_0 decode, steps
// with and without alternating in one process: attention took 22-25% less time at tg128 and 34-35%
// less at tg512 with 8 rows; 16 and 32 rows ahead did no better. (Zen 5 VM, 64 rows cold:
// prefetcht1/t2 16-64 rows ahead took 1.3-1.6x the time; prefetcht0 4-32 rows ahead, or every row
// of the item at its start, within the run-to-run spread.)
constexpr int64_t kPrefetchRows = 8;
// From kLongRows rows on, kLongPrefetchRows ahead, the rows before that distance prefetched as a
// pass starts: Zen 5 VM, AVX-512, bench_vector_kernels attention_heads_cold (5 runs each): 512 rows
// 20.7 us against 23.2 (64 rows: 6.3 against 5.9, hence short contexts keep 8); TinyLlama Q4_0
// decode at depth 1024, steps alternating in one process: attention 0.88-0.98 of the time (mean
// 0.93, 6 runs of 6 below 1).
constexpr int64_t kLongRows = 256;
constexpr int64_t kLongPrefetchRows = 16;

// Rows of the cache's type that take the bytes of one f32 row (prefetch distances are in f32 rows).
template <class P>
constexpr int64_t kRowsPerF32Row = static_cast<int64_t>(sizeof(float) / sizeof(*P{}));
template <>
constexpr int64_t kRowsPerF32Row<Q8Row> = 4;  // 34 bytes per 32 elements: 3.8x fewer than f32

// Prefetches the lines holding row[0, n).
template <class E>
inline void prefetch_row(const E* row, int64_t n) {
  constexpr int64_t kPerLine = 64 / static_cast<int64_t>(sizeof(E));
  for (int64_t d = 0; d < n; d += kPerLine) prefetch_t0(row + d);
  prefetch_t0(row + n - 1);
}

inline void prefetch_row(Q8Row row, int64_t n) {
  const int64_t bytes = (row.at + n + 31) / 32 * 34;
  for (int64_t b = 0; b < bytes; b += 64) prefetch_t0(row.block + b);
  prefetch_t0(row.block + bytes - 1);
}

// dot(q_h, k_j) * scale for four keys at once and kHeads query heads (1 or 2) q + h * q_stride,
// into out + h * out_stride: 4 * kHeads independent FMA chains, each key chunk loaded once for
// both heads. Each head gets the bits of a call of its own.
template <class S, int kHeads, class P>
void dot4(const float* q, int64_t q_stride, P k, int64_t kv_stride, int64_t head_dim, float scale, float* out,
          int64_t out_stride) {
  using V = typename S::V;
  V a[kHeads][4];
#pragma GCC unroll 8
  for (int h = 0; h < kHeads; ++h) {
    for (auto& v : a[h]) v = S::zero();
  }
  P kr[4] = {k, k + kv_stride, k + 2 * kv_stride, k + 3 * kv_stride};
  int64_t d = 0;
  for (; d + S::kLanes <= head_dim; d += S::kLanes) {
    V qv[kHeads];
#pragma GCC unroll 8
    for (int h = 0; h < kHeads; ++h) qv[h] = S::load(q + h * q_stride + d);
#pragma GCC unroll 8
    for (int r = 0; r < 4; ++r) {
      V kv = S::load(kr[r] + d);
      S::keep(kv);  // one load for both heads, not a memory operand per head
#pragma GCC unroll 8
      for (int h = 0; h < kHeads; ++h) a[h][r] = S::fmadd(qv[h], kv, a[h][r]);
    }
  }
  if (d < head_dim) {
    const typename S::M m = S::tail(head_dim - d);
    V qv[kHeads];
#pragma GCC unroll 8
    for (int h = 0; h < kHeads; ++h) qv[h] = S::load_masked(q + h * q_stride + d, m);
#pragma GCC unroll 8
    for (int r = 0; r < 4; ++r) {
      const V kv = S::load_masked(kr[r] + d, m);
#pragma GCC unroll 8
      for (int h = 0; h < kHeads; ++h) a[h][r] = S::fmadd(qv[h], kv, a[h][r]);
    }
  }
#pragma GCC unroll 8
  for (int h = 0; h < kHeads; ++h) S::store_sums4(a[h][0], a[h][1], a[h][2], a[h][3], scale, out + h * out_stride);
}

template <class S, class P>
float dot1(const float* q, P k, int64_t head_dim) {
  typename S::V a = S::zero();
  int64_t d = 0;
  for (; d + S::kLanes <= head_dim; d += S::kLanes) a = S::fmadd(S::load(q + d), S::load(k + d), a);
  if (d < head_dim) {
    const typename S::M m = S::tail(head_dim - d);
    a = S::fmadd(S::load_masked(q + d, m), S::load_masked(k + d, m), a);
  }
  return S::hsum(a);
}

// Running sums of out[0, width) = sum_j p_j v_j[0, width) for width <= kNv * kLanes dims over rows
// [j0, j1): two accumulator sets (even and odd j) keep 2 * kNv FMA chains in flight; they start
// from state[0, kNv) and state[kNv, 2 kNv) and go back there. Blocks hold an even number of rows
// (but the last) and j0 and j1 are even (or n_kv), so the pairs, hence the sums, are those of one
// pass over contiguous rows, however the rows are split. kPrefetch: the rows are in the cache
// (not a tile in L1), so rows `ahead` rows ahead are prefetched, two per pair.
template <class S, int kNv, bool kPrefetch, class P>
void weighted_sum_rows(const float* p, const P* v_blocks, int64_t block_rows, int64_t kv_stride, int64_t j0, int64_t j1,
                       int64_t d0, int64_t width, typename S::V* state, int64_t ahead = kPrefetchRows) {
  using V = typename S::V;
  typename S::M masks[kNv];
  V even[kNv], odd[kNv];
#pragma GCC unroll 16
  for (int c = 0; c < kNv; ++c) {
    masks[c] = S::tail(width - c * S::kLanes);
    even[c] = S::load_aligned(reinterpret_cast<const float*>(state + c));
    odd[c] = S::load_aligned(reinterpret_cast<const float*>(state + kNv + c));
  }
  const bool full = width == kNv * S::kLanes;
  int64_t j = j0;
  for (int64_t jb = j0 / block_rows * block_rows; jb < j1; jb += block_rows) {
    const P vb = v_blocks[jb / block_rows] + d0;
    const int64_t end = jb + block_rows < j1 ? jb + block_rows : j1;
    if (kPrefetch && ahead > kPrefetchRows) {
      for (int64_t r = j - jb + 2; r < j - jb + ahead && jb + r < end; ++r) prefetch_row(vb + r * kv_stride, width);
    }
    for (; j + 2 <= end; j += 2) {
      const V p0 = S::set1(p[j]);
      const V p1 = S::set1(p[j + 1]);
      const P v0 = vb + (j - jb) * kv_stride;
      const P v1 = v0 + kv_stride;
      if (kPrefetch && j + ahead + 2 <= end) {
        prefetch_row(v0 + ahead * kv_stride, width);
        prefetch_row(v1 + ahead * kv_stride, width);
      }
      if (full) {
#pragma GCC unroll 16
        for (int c = 0; c < kNv; ++c) {
          even[c] = S::fmadd(p0, S::load(v0 + c * S::kLanes), even[c]);
          odd[c] = S::fmadd(p1, S::load(v1 + c * S::kLanes), odd[c]);
        }
      } else {
#pragma GCC unroll 16
        for (int c = 0; c < kNv; ++c) {
          even[c] = S::fmadd(p0, S::load_masked(v0 + c * S::kLanes, masks[c]), even[c]);
          odd[c] = S::fmadd(p1, S::load_masked(v1 + c * S::kLanes, masks[c]), odd[c]);
        }
      }
    }
    if (j < end) {
      const V p0 = S::set1(p[j]);
      const P v0 = vb + (j - jb) * kv_stride;
#pragma GCC unroll 16
      for (int c = 0; c < kNv; ++c) even[c] = S::fmadd(p0, S::load_masked(v0 + c * S::kLanes, masks[c]), even[c]);
      ++j;
    }
  }
#pragma GCC unroll 16
  for (int c = 0; c < kNv; ++c) {
    S::store_aligned(reinterpret_cast<float*>(state + c), even[c]);
    S::store_aligned(reinterpret_cast<float*>(state + kNv + c), odd[c]);
  }
}

// Queries computed together, at most (a prompt's tokens times the heads sharing a KV head): their
// running sums (2 x 4 vectors each) wait in memory while the others pass over the same rows.
constexpr int64_t kMaxQueries = 32;
// Rows the queries pass over at a time, copied once into a contiguous tile that stays in L1 from
// the first query to the last (in place, value rows a power of two apart would crowd into a few L1
// sets and evict each other).
constexpr int64_t kRowTile = 64;

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
template <class S, int kNv, class P>
void weighted_sums(const QueryBatch& b, const float* scratch, const P* v_blocks, int64_t block_rows, int64_t kv_stride,
                   int64_t d0, int64_t width, int64_t ahead) {
  using V = typename S::V;
  alignas(64) V state[kMaxQueries][2 * kNv];
  for (int64_t i = 0; i < b.count; ++i) {
    for (auto& v : state[i]) v = S::zero();
  }
  const int64_t n_kv = b.n_kv(b.count - 1);  // the most any query of the batch attends to
  if (b.count == 1) {
    weighted_sum_rows<S, kNv, true>(scratch, v_blocks, block_rows, kv_stride, 0, n_kv, d0, width, state[0], ahead);
  } else {
    alignas(64) float tile[kRowTile * kNv * S::kLanes];
    const float* tile_block = tile;
    for (int64_t j = 1; ahead > kPrefetchRows && j < ahead && j < n_kv && j < block_rows; ++j) {
      prefetch_row(v_blocks[0] + j * kv_stride + d0, width);
    }
    for (int64_t j0 = 0; j0 < n_kv; j0 += kRowTile) {
      const int64_t rows = n_kv - j0 < kRowTile ? n_kv - j0 : kRowTile;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t j = j0 + r;
        const P src = v_blocks[j / block_rows] + j % block_rows * kv_stride + d0;
        if (j % block_rows + ahead < block_rows && j + ahead < n_kv) prefetch_row(src + ahead * kv_stride, width);
#pragma GCC unroll 16
        for (int c = 0; c < kNv; ++c) {
          S::store_aligned(tile + (r * kNv + c) * S::kLanes,
                           S::load_masked(src + c * S::kLanes, S::tail(width - c * S::kLanes)));
        }
      }
      for (int64_t i = 0; i < b.count; ++i) {
        const int64_t mine = b.n_kv(i) - j0 < rows ? b.n_kv(i) - j0 : rows;
        if (mine <= 0) continue;
        weighted_sum_rows<S, kNv, false>(scratch + i * b.rows + j0, &tile_block, rows, kNv * S::kLanes, 0, mine, 0,
                                         width, state[i]);
      }
    }
  }
  for (int64_t i = 0; i < b.count; ++i) {
    float* out = b.a.out + b.offset(i) + d0;
#pragma GCC unroll 16
    for (int c = 0; c < kNv; ++c) {
      S::store_masked(out + c * S::kLanes, S::tail(width - c * S::kLanes), S::add(state[i][c], state[i][kNv + c]));
    }
  }
}

// Keys j.. (up to 4 of block jb; row r at k + r * stride) scored for every query of the batch
// that attends to them, into scratch + i * rows + j: dot4 for a whole group of four (two heads of a
// token at a time), dot1 for the rows of a last partial group.
template <class S, class K>
void score_keys(const QueryBatch& b, K k, int64_t stride, int64_t jb, int64_t block_rows, int64_t j, int64_t head_dim,
                float scale, float* scratch) {
  int64_t i = 0;
  while (i < b.count) {
    const int64_t end = jb + block_rows < b.n_kv(i) ? jb + block_rows : b.n_kv(i);
    const float* q = b.a.q + b.offset(i);
    float* out = scratch + i * b.rows + j;
    if (j + 4 <= end) {
      const bool pair = i + 1 < b.count && b.token(i + 1) == b.token(i);
      if (pair) {
        dot4<S, 2>(q, b.a.head_stride, k, stride, head_dim, scale, out, b.rows);
      } else {
        dot4<S, 1>(q, b.a.head_stride, k, stride, head_dim, scale, out, b.rows);
      }
      i += pair ? 2 : 1;
      continue;
    }
    for (int64_t jj = j; jj < end; ++jj) out[jj - j] = dot1<S>(q, k + (jj - j) * stride, head_dim) * scale;
    ++i;
  }
}

// Head dimensions up to which Q8_0 keys go through a float tile.
constexpr int64_t kKeyTileDims = 256;

// The scores of one batch into scratch + i * rows. A query scores the keys of each block in groups
// of four (dot4) up to its own n_kv and the block's last whole group, and the rest one by one
// (dot1), exactly as a call of its own does; each group of four keys is scored for every query
// while its rows are in L1, two heads of a token at a time.
template <class S, class P>
void scores(const QueryBatch& b, const P* k_blocks, int64_t block_rows, int64_t kv_stride, int64_t head_dim,
            float scale, float* scratch, int64_t ahead) {
  const int64_t n_kv = b.n_kv(b.count - 1);
  for (int64_t jb = 0; jb < n_kv; jb += block_rows) {
    const P kb = k_blocks[jb / block_rows];
    const int64_t block_end = jb + block_rows < n_kv ? jb + block_rows : n_kv;
    for (int64_t r = 4; ahead > kPrefetchRows && r < ahead && jb + r < block_end; ++r) {
      prefetch_row(kb + r * kv_stride, head_dim);
    }
    for (int64_t j = jb; j < block_end; j += 4) {
      const P kj = kb + (j - jb) * kv_stride;
      for (int64_t r = ahead; r < ahead + 4 && j + r < block_end; ++r) {
        prefetch_row(kj + r * kv_stride, head_dim);
      }
      if constexpr (std::is_same_v<P, Q8Row>) {
        // Q8_0 keys are converted once into a float tile that every query pair then reads (in place
        // each pair would convert them again: 5 instructions a vector instead of one load).
        if (head_dim <= kKeyTileDims) {
          alignas(64) float tile[4 * kKeyTileDims];
          const int64_t n = block_end - j < 4 ? block_end - j : 4;
          for (int64_t r = 0; r < n; ++r) {
            for (int64_t d = 0; d < head_dim; d += S::kLanes) {
              S::store_aligned(tile + r * head_dim + d, S::load(kj + r * kv_stride + d));
            }
          }
          score_keys<S>(b, static_cast<const float*>(tile), head_dim, jb, block_rows, j, head_dim, scale, scratch);
          continue;
        }
      }
      score_keys<S>(b, kj, kv_stride, jb, block_rows, j, head_dim, scale, scratch);
    }
  }
}

}  // namespace grouped

// Grouped-query attention: the queries of `a` over the same keys and values, in batches of up to
// kMaxQueries, so the cache rows are read once per batch instead of once per query. Each query gets
// exactly the operations, hence the bits, of a call of its own. The value rows go in chunks of
// 4 vectors of dimensions.
template <class S, class P>
void attention_queries_grouped(const AttentionQueries& a, const P* k_blocks, const P* v_blocks, int64_t block_rows,
                               int64_t kv_stride, int64_t head_dim, float scale, float* scratch) {
  using grouped::kMaxQueries;
  constexpr int64_t kChunk = 4 * S::kLanes;
  const int64_t rows = attention_rows(a);
  const int64_t n_q = a.n_tokens * a.n_heads;
  // The distances are in f32 rows: an f16 cache prefetches twice the rows, the same bytes ahead
  // (Zen 5 VM, AVX-512, bench_vector_kernels attention_heads_cold f16, 5 runs each, twice: 512 rows
  // 14.3-14.5 us against 15.6-15.9 us at the same rows ahead, 2048 rows 49.4 against 58.4).
  const int64_t ahead =
      (a.n_kv >= grouped::kLongRows ? grouped::kLongPrefetchRows : grouped::kPrefetchRows) * grouped::kRowsPerF32Row<P>;
  for (int64_t first = 0; first < n_q; first += kMaxQueries) {
    const grouped::QueryBatch b(a, first, n_q - first < kMaxQueries ? n_q - first : kMaxQueries);
    float* sb = scratch + first * rows;
    grouped::scores<S>(b, k_blocks, block_rows, kv_stride, head_dim, scale, sb, ahead);
    for (int64_t i = 0; i < b.count; ++i) S::softmax(sb + i * rows, b.n_kv(i));
    for (int64_t d0 = 0; d0 < head_dim; d0 += kChunk) {
      const int64_t width = head_dim - d0 < kChunk ? head_dim - d0 : kChunk;
      switch ((width + S::kLanes - 1) / S::kLanes) {
        case 1: grouped::weighted_sums<S, 1>(b, sb, v_blocks, block_rows, kv_stride, d0, width, ahead); break;
        case 2: grouped::weighted_sums<S, 2>(b, sb, v_blocks, block_rows, kv_stride, d0, width, ahead); break;
        case 3: grouped::weighted_sums<S, 3>(b, sb, v_blocks, block_rows, kv_stride, d0, width, ahead); break;
        default: grouped::weighted_sums<S, 4>(b, sb, v_blocks, block_rows, kv_stride, d0, width, ahead); break;
      }
    }
  }
}

// One query: attention_queries_grouped's bits for it.
template <class S, class P>
void attention_head_grouped(const float* q, const P* k_blocks, const P* v_blocks, int64_t block_rows, int64_t kv_stride,
                            int64_t head_dim, int64_t n_kv, float scale, float* out, float* scratch) {
  const AttentionQueries a{.q = q, .out = out, .n_kv = n_kv};
  attention_queries_grouped<S, P>(a, k_blocks, v_blocks, block_rows, kv_stride, head_dim, scale, scratch);
}

}  // namespace
}  // namespace mixserve::cpu

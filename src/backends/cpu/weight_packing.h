// The CPU backend's packed layout of Q4_0 and Q8_0 weight rows: the same bytes as the GGUF blocks,
// regrouped so that the AVX-512 and AVX2 kernels load each operand with one plain vector load
// instead of transposing blocks in registers for every product (which cost as much as the dot
// products). AVX2 reads each 64-byte register as two halves: positions 0-7 and 8-15.
//
// A row of k elements (k a multiple of 32, at least 512) is nb = k / 32 blocks in groups of 16
// blocks, and each group keeps its size and place in the row (288 bytes for Q4_0, 544 for Q8_0;
// m < 16 blocks' bytes for a last partial group of m = nb % 16 blocks). A whole group:
//   bytes [0, 32): the 16 fp16 scales, the one of block order[p] at 2p;
//   then registers of 64 bytes (4 for Q4_0, 8 for Q8_0): dword p of register j holds the 4 bytes
//   qs[4j .. 4j+3] of block order[p] of the group. Q8_0 stores them as unsigned (q + 128).
// A partial group holds the same for the positions p whose block is present (order[p] < m), in
// increasing p, its "slots": bytes [0, 2m) the scales, slot s at 2s; then per register j, 4m bytes
// with slot s's dword at 4s. (The AVX-512 kernels read whole groups only.)
// `order` is the type's partial-sum lane order (kPackedOrderQ4 / kPackedOrderQ8), so that a
// packed row's dot products accumulate in exactly the order the GGUF-layout kernels use, and
// packed and unpacked weights give bit-identical results.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"

namespace mixserve::cpu {

/// Block of a group whose data sits at position p of a packed Q4_0 group (and whose partial sum
/// the SIMD kernels keep in lane p).
alignas(64) inline constexpr int32_t kPackedOrderQ4[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
/// The same for Q8_0.
alignas(64) inline constexpr int32_t kPackedOrderQ8[16] = {0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15};

/// Blocks per packed group.
inline constexpr int64_t kPackGroupBlocks = 16;

/// Whether rows of `type` with k elements have a packed layout: Q4_0 or Q8_0 rows of at least one
/// whole group (k >= 512; k is a multiple of the 32-element block).
bool packable_rows(DType type, int64_t k);

/// Rearranges rows [0, rows) (row r at w + r * row_bytes) from the GGUF layout to the packed one,
/// in place. Requires packable_rows(type, k).
void pack_rows(DType type, int64_t k, void* w, size_t row_bytes, int64_t rows);

/// The inverse of pack_rows.
void unpack_rows(DType type, int64_t k, void* w, size_t row_bytes, int64_t rows);

}  // namespace mixserve::cpu

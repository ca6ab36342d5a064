// Block tables of paged KV caches as the CPU stream reads them: logical cache rows mapped to
// physical ones through blocks of a fixed number of rows (vLLM's PagedAttention layout).
#pragma once

#include <cstdint>

#include "common/error.h"
#include "hal/tensor.h"

namespace mixserve::cpu {

/// Physical cache row of logical row `row` under a block table (rows per block `block`); the
/// identity without a table.
inline int64_t physical_row(const int32_t* table, int64_t block, int64_t row) {
  return table == nullptr ? row : static_cast<int64_t>(table[row / block]) * block + row % block;
}

/// Whether the blocks holding rows [0, rows) follow each other in the cache.
inline bool contiguous_blocks(const int32_t* table, int64_t block, int64_t rows) {
  for (int64_t b = 1; b * block < rows; ++b) {
    if (table[b] != table[b - 1] + 1) return false;
  }
  return true;
}

/// The block ids of `table` (nullptr without one), checked against the rows it must map and the
/// cache it maps into (kInternal when they do not fit).
inline const int32_t* block_table(const hal::Tensor* table, int64_t block, int64_t rows, int64_t cache_rows) {
  if (table == nullptr) {
    MIXSERVE_CHECK(rows <= cache_rows, "cache access past row ", cache_rows);
    return nullptr;
  }
  MIXSERVE_CHECK(table->dtype == DType::kI32 && block > 0, "block table must be i32 with a positive block size");
  const int64_t needed = (rows + block - 1) / block;
  MIXSERVE_CHECK(needed <= table->elements(), "block table of ", table->elements(), " blocks maps fewer than ", rows,
                 " rows");
  const auto* ids = static_cast<const int32_t*>(table->host_data());
  for (int64_t i = 0; i < needed; ++i) {
    MIXSERVE_CHECK(ids[i] >= 0 && (ids[i] + 1) * block <= cache_rows, "block id ", ids[i], " outside the cache");
  }
  return ids;
}

}  // namespace mixserve::cpu

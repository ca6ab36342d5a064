#include "backends/cpu/attention_work.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "backends/cpu/aligned_bytes.h"
#include "backends/cpu/paged_cache.h"
#include "backends/cpu/vector_kernels.h"
#include "common/error.h"

namespace mixserve::cpu {
namespace {

// Consecutive tokens of a prompt whose queries (times the heads sharing a KV head) attention
// computes together: 4 x 8 heads of TinyLlama fill the AVX2 kernel's batches of 32 queries.
constexpr int64_t kAttentionTokens = 4;

// Everything about an op's work that does not depend on the cache's element type.
struct Shape {
  const hal::Op& op;
  int64_t head_dim, n_head, n_tok, n_head_kv, pos0, kv_stride, group, n_ctx, block;
  const int32_t* table;
  bool paged, gather;
  int64_t rows_per_block, n_blocks, per_item, item_tokens, head_items, token_items;
  size_t work_floats, gather_at, gather_bytes, pointers, row_bytes;

  Shape(const hal::Op& o, int n_threads) : op(o) {
    const hal::Tensor& q = *op.src[0];
    head_dim = q.ne[0];
    n_head = q.ne[1];
    n_tok = q.ne[2];
    n_head_kv = op.i[1];
    pos0 = op.i[0];
    kv_stride = head_dim * n_head_kv;
    MIXSERVE_CHECK(n_head_kv > 0 && n_head % n_head_kv == 0 && op.src[1]->ne[0] == kv_stride, "attention head layout");
    group = n_head / n_head_kv;
    n_ctx = pos0 + n_tok;
    block = op.i[2];
    table = block_table(op.src[3], block, n_ctx, op.src[1]->rows());
    // The kernels read a paged cache in place, block by block: per KV head, the address of each
    // block's first row (one block holding every row when the cache is not paged, or when its
    // blocks do not hold a multiple of 4 rows, which the kernels need, or are consecutive anyway).
    paged = table != nullptr && block % 4 == 0 && block < n_ctx;
    rows_per_block = paged ? block : n_ctx;
    n_blocks = paged ? (n_ctx + block - 1) / block : 1;
    pointers = static_cast<size_t>(2 * n_head_kv * n_blocks);
    // Work items: `per_item` query heads that share a KV head, of up to kAttentionTokens consecutive
    // tokens, computed together so that they share each read of the cache rows; fewer heads and
    // tokens per item when the items would be too few to keep every thread busy.
    const int64_t min_items = 2 * static_cast<int64_t>(n_threads);
    per_item = group;
    while (per_item % 2 == 0 && n_tok * n_head / per_item < min_items) per_item /= 2;
    item_tokens = std::min(n_tok, kAttentionTokens);
    while (item_tokens > 1 && (n_tok + item_tokens - 1) / item_tokens * (n_head / per_item) < min_items) {
      item_tokens /= 2;
    }
    head_items = n_head / per_item;
    token_items = (n_tok + item_tokens - 1) / item_tokens;
    work_floats = static_cast<size_t>(item_tokens * per_item * n_ctx * n_threads);
    gather = table != nullptr && !paged && !contiguous_blocks(table, block, n_ctx);
    // Scratch: the work floats, then the gathered rows from a 64-byte boundary.
    row_bytes = op.src[1]->row_bytes();
    gather_at = whole_lines(sizeof(float) * work_floats);
    gather_bytes = gather ? static_cast<size_t>(2 * n_ctx) * row_bytes : 0;
  }

  AttentionLayout layout(size_t pointer_bytes) const {
    return {.items = token_items * head_items,
            .heads_per_item = per_item,
            .item_outputs = per_item * head_dim,
            .scratch_bytes = gather_at + gather_bytes,
            .address_bytes = pointer_bytes * pointers,
            .gathers = gather};
  }
};

// The first row of a cache's bytes, as the attention kernels' row pointer type.
template <class P>
P rows_at(const uint8_t* bytes) {
  if constexpr (std::is_same_v<P, Q8Row>) {
    return Q8Row{bytes, 0};
  } else {
    return reinterpret_cast<P>(bytes);
  }
}

// The size of the kernels' row pointer type for a cache of this type.
size_t pointer_bytes(DType cache) {
  switch (cache) {
    case DType::kF16: return sizeof(const Half*);
    case DType::kQ8_0: return sizeof(Q8Row);
    default: return sizeof(const float*);
  }
}

template <class P>
AttentionWork prepare(const Shape& s, uint8_t* base, uint8_t* addresses, int n_threads) {
  auto* work = reinterpret_cast<float*>(base);
  auto* k_blocks = reinterpret_cast<P*>(addresses);
  P* v_blocks = k_blocks + s.n_head_kv * s.n_blocks;
  const auto* k_bytes = static_cast<const uint8_t*>(s.op.src[1]->host_data());
  const auto* v_bytes = static_cast<const uint8_t*>(s.op.src[2]->host_data());
  const int32_t* table = s.table;
  if (s.gather) {  // blocks of other sizes, scattered: copied once per op into consecutive rows
    uint8_t* kg = base + s.gather_at;
    uint8_t* vg = kg + static_cast<size_t>(s.n_ctx) * s.row_bytes;
    for (int64_t j = 0; j < s.n_ctx; j += s.block) {
      const auto rows = static_cast<size_t>(std::min(s.block, s.n_ctx - j));
      const auto phys = static_cast<size_t>(physical_row(table, s.block, j));
      std::memcpy(kg + static_cast<size_t>(j) * s.row_bytes, k_bytes + phys * s.row_bytes, rows * s.row_bytes);
      std::memcpy(vg + static_cast<size_t>(j) * s.row_bytes, v_bytes + phys * s.row_bytes, rows * s.row_bytes);
    }
    k_bytes = kg;
    v_bytes = vg;
    table = nullptr;
  }
  const P kc = rows_at<P>(k_bytes);
  const P vc = rows_at<P>(v_bytes);
  for (int64_t h = 0; h < s.n_head_kv; ++h) {
    for (int64_t b = 0; b < s.n_blocks; ++b) {
      const int64_t row = physical_row(table, s.block, b * s.rows_per_block);
      k_blocks[h * s.n_blocks + b] = kc + row * s.kv_stride + h * s.head_dim;
      v_blocks[h * s.n_blocks + b] = vc + row * s.kv_stride + h * s.head_dim;
    }
  }
  AttentionWork w;
  w.layout = s.layout(sizeof(P));
  const float* qp = static_cast<const float*>(s.op.src[0]->host_data());
  float* out = static_cast<float*>(s.op.dst->host_data());
  const float scale = s.op.f[0];
  // Copies of what the items read: the work outlives this call (not the Shape).
  w.run = [=, n_head = s.n_head, head_dim = s.head_dim, n_tok = s.n_tok, pos0 = s.pos0, group = s.group,
           n_blocks = s.n_blocks, rows_per_block = s.rows_per_block, kv_stride = s.kv_stride, per_item = s.per_item,
           item_tokens = s.item_tokens, head_items = s.head_items,
           n_ctx = s.n_ctx](int64_t begin, int64_t end, int ith) {
    MIXSERVE_CHECK(ith < n_threads, "attention prepared for ", n_threads, " threads run on thread ", ith);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i / head_items * item_tokens;  // first token and head of the item
      const int64_t h = i % head_items * per_item;
      const int64_t kvh = h / group;
      AttentionQueries a;
      a.q = qp + (t * n_head + h) * head_dim;
      a.out = out + (t * n_head + h) * head_dim;
      a.n_heads = per_item;
      a.n_tokens = std::min(item_tokens, n_tok - t);
      a.head_stride = head_dim;
      a.token_stride = n_head * head_dim;
      a.n_kv = pos0 + t + 1;
      attention_queries_paged(a, k_blocks + kvh * n_blocks, v_blocks + kvh * n_blocks, rows_per_block, kv_stride,
                              head_dim, scale, work + ith * item_tokens * per_item * n_ctx);
    }
  };
  return w;
}

}  // namespace

AttentionLayout attention_layout(const hal::Op& op, int n_threads) {
  return Shape(op, n_threads).layout(pointer_bytes(op.src[1]->dtype));
}

AttentionWork prepare_attention(const hal::Op& op, int n_threads, uint8_t* scratch, uint8_t* addresses) {
  const Shape s(op, n_threads);
  switch (op.src[1]->dtype) {
    case DType::kF16: return prepare<const Half*>(s, scratch, addresses, n_threads);
    case DType::kQ8_0: return prepare<Q8Row>(s, scratch, addresses, n_threads);
    default: return prepare<const float*>(s, scratch, addresses, n_threads);
  }
}

}  // namespace mixserve::cpu

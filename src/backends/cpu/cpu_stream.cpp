#include "backends/cpu/cpu_stream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>

#include "backends/cpu/decode_epilogues.h"
#include "backends/cpu/matmul_kernels.h"
#include "backends/cpu/vector_kernels.h"
#include "common/error.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

float* f32(const hal::Tensor* t) { return static_cast<float*>(t->host_data()); }

void check_host(const hal::Tensor* t, const char* what, const hal::Op& op) {
  MIXSERVE_CHECK(t != nullptr && t->host_data() != nullptr, "op ", hal::op_name(op.kind), ": ", what,
                 " is not in host memory");
}

// Tokens per work item of a matrix product: all of them up to kMaxItemTokens (a decoding batch),
// else equal ranges of at most that many, in multiples of 4 (the AVX2 tiles' width). With row
// ranges alone, a 512-token prompt had about two items per thread per product, and one thread
// waited for the other for 4% of the run (Zen 3 VM, perf; 1% with token ranges). 16: the AVX2
// kernel's activation panel (kMaxPanel in matmul_quant_avx2.cpp, where the measurements are), so
// the ranges read the weights no more often than the kernel does (TinyLlama pp512, 10 alternating
// runs, ranges of 16 against 32: mean 111 against 101 t/s).
constexpr int64_t kMaxItemTokens = 16;

int64_t matmul_token_grain(int64_t n_tok) {
  if (n_tok <= kMaxItemTokens) return std::max<int64_t>(1, n_tok);
  const int64_t ranges = (n_tok + kMaxItemTokens - 1) / kMaxItemTokens;
  const int64_t per_range = (n_tok + ranges - 1) / ranges;
  return (per_range + 3) / 4 * 4;
}

// Rows per work item of a prompt's product (already split into ranges of tokens), or of a batch's
// whose kernels prepare the activations on every call (matmul_batch_splits_finely): two items per
// thread (16 made no clear difference on AVX2, Zen 3 VM, TinyLlama pp512; 8 cost 3-4% of a 16-token
// step where every call prepares the activations).
int64_t matmul_grain(int64_t rows, int n_threads) {
  const int64_t per_thread = (rows + n_threads - 1) / n_threads;
  const int64_t grain = std::max<int64_t>(16, per_thread / 2);
  return (grain + 15) / 16 * 16;
}

// Rows per chunk at the end of a decoding product (ThreadPool::parallel_for_guided), a multiple of
// 16 so that no two threads write into one 64-byte line of the outputs. 64 rather than 16: every
// chunk starts its row streams anew, with nothing prefetched yet (Zen 5 VM, TinyLlama decode, steps
// alternating in one process: products 2-3.5% less time at 83-87 GB/s probes, Q4_0 and Q8_0; 128
// no better than 64; within +-1.5% at ~50 GB/s).
constexpr int64_t kDecodeRowGrain = 64;
// Share of a decoding job's rows that goes out as one run per thread before the guided chunks:
// fewer chunks, so fewer streams started anew. Zen 5 VM, TinyLlama Q4_0 decode, steps alternating
// in one process, 14 runs at 47-84 GB/s probes: 7/8 took 0.945-1.032 (mean 0.982, 11 of 14 below
// 1) of the products' time of the guided chunks alone; attn_output alone went 0.77-0.95 with two
// halves. 15/16 against 7/8: 0.949-1.032, mean 0.996 (no difference; 7/8 leaves more to even out).
constexpr double kDecodeFirstShare = 7.0 / 8.0;

// Consecutive tokens of a prompt whose queries (times the heads sharing a KV head) attention
// computes together: 4 x 8 heads of TinyLlama fill the AVX2 kernel's batches of 32 queries.
constexpr int64_t kAttentionTokens = 4;

// Rows per task for row-wise ops: about 16k elements, so short rows are batched together.
int64_t rows_per_task(int64_t width) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, width)); }

}  // namespace

CpuStream::CpuStream(hal::Device& device, int n_threads)
    : device_(device), pool_(n_threads), equal_decode_shares_(pool_.size() <= ThreadPool::hardware_threads()) {}

uint8_t* CpuStream::scratch(size_t bytes) {
  return scratch_.reserve(bytes);
}

void CpuStream::write(hal::Buffer& dst, size_t offset, const void* src, size_t bytes) {
  MIXSERVE_CHECK(offset + bytes <= dst.size() && dst.host_ptr() != nullptr, "write out of range");
  std::memcpy(static_cast<uint8_t*>(dst.host_ptr()) + offset, src, bytes);
}

void CpuStream::read(const hal::Buffer& src, size_t offset, void* dst, size_t bytes) {
  MIXSERVE_CHECK(offset + bytes <= src.size() && src.host_ptr() != nullptr, "read out of range");
  std::memcpy(dst, static_cast<const uint8_t*>(src.host_ptr()) + offset, bytes);
}

void CpuStream::check(const hal::Op& op) const {
  if (!device_.supports_op(op)) {
    fail(ErrorCode::kUnimplemented, "cpu: unsupported op ", hal::op_name(op.kind),
         op.src[0] != nullptr ? str_cat(" on ", dtype_name(op.src[0]->dtype)) : std::string());
  }
  check_host(op.dst, "dst", op);
  for (const hal::Tensor* src : op.src) {
    if (src != nullptr) check_host(src, "src", op);
  }
}

namespace {

// Whether `next` may join the products of `group` (which starts with a matrix product): the same
// input, weights of the same type, layout and width, and no product of the group writing what a
// later one reads.
bool joins(std::span<const hal::Op> group, const hal::Op& next) {
  const hal::Op& first = group.front();
  if (next.kind != hal::OpKind::kMatMul || next.src[1] != first.src[1] || next.src[0] == nullptr ||
      first.src[0] == nullptr) {
    return false;
  }
  const hal::Tensor& w = *next.src[0];
  const hal::Tensor& w0 = *first.src[0];
  if (w.dtype != w0.dtype || w.layout != w0.layout || w.ne[0] != w0.ne[0]) return false;
  for (const hal::Op& op : group) {
    if (op.dst == next.src[1] || op.dst == next.dst || op.dst == next.src[0]) return false;
  }
  return true;
}

}  // namespace

void CpuStream::run_all(std::span<const hal::Op> ops) {
  converted_for_ = nullptr;  // a conversion planned in another graph (which failed before its consumer)
  for (size_t i = 0; i < ops.size();) {
    if (converted_for_ != &ops[i]) converted_for_ = nullptr;  // only the very next op may consume it
    size_t j = i + 1;
    DecodeEpilogues epilogues;
    if (ops[i].kind == hal::OpKind::kMatMul) {
      while (j < ops.size() && joins(ops.subspan(i, j - i), ops[j])) ++j;
      if (equal_decode_shares_ && ops[i].src[1] != nullptr && ops[i].src[1]->rows() == 1) {
        epilogues = plan_decode_epilogues(ops.subspan(i, j - i), ops.subspan(j));
      }
    }
    const auto start = profile_ != nullptr ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    if (ops[i].kind == hal::OpKind::kMatMul) {
      for (size_t g = i; g < j + epilogues.ops.size(); ++g) check(ops[g]);
      mat_mul(ops.subspan(i, j - i), epilogues);
    } else {
      execute(ops[i]);
    }
    if (profile_ != nullptr) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      profile_->add(ops[i].kind, j - i, seconds);
      if (ops[i].kind == hal::OpKind::kMatMul) add_product_profile(ops.subspan(i, j - i), seconds);
      for (const Epilogue& e : epilogues.ops) profile_->add_fused(e.op->kind);
    }
    i = j + epilogues.ops.size();
  }
}

void CpuStream::add_product_profile(std::span<const hal::Op> group, double seconds) {
  uint64_t bytes = 0;
  for (const hal::Op& op : group) bytes += op.src[0]->bytes();
  profile_->add_products(hal::product_shape(group), bytes, seconds);
}

void CpuStream::run(const hal::Op& op) {
  run_all(std::span<const hal::Op>(&op, 1));
}

void CpuStream::execute(const hal::Op& op) {
  check(op);
  switch (op.kind) {
    case hal::OpKind::kGetRows: return get_rows(op);
    case hal::OpKind::kMatMul: return mat_mul(std::span<const hal::Op>(&op, 1), {});
    case hal::OpKind::kAdd: return add(op);
    case hal::OpKind::kRmsNorm: return rms_norm(op);
    case hal::OpKind::kRope: return rope(op);
    case hal::OpKind::kSwiGLU: return swiglu(op);
    case hal::OpKind::kAttention: return attention(op);
    case hal::OpKind::kStoreKV: return store_kv(op);
  }
}

void CpuStream::get_rows(const hal::Op& op) {
  const hal::Tensor& table = *op.src[0];
  const auto* ids = static_cast<const int32_t*>(op.src[1]->host_data());
  const int64_t n = op.src[1]->elements();
  const int64_t width = table.ne[0];
  MIXSERVE_CHECK(op.dst->ne[0] == width && op.dst->rows() >= n, "get_rows shape mismatch");
  for (int64_t t = 0; t < n; ++t) {
    if (ids[t] < 0 || ids[t] >= table.rows()) {
      fail(ErrorCode::kInvalidArgument, "token id ", ids[t], " is out of range [0, ", table.rows(), ")");
    }
  }
  const auto* base = static_cast<const uint8_t*>(table.host_data());
  const size_t row_bytes = table.row_bytes();
  float* out = f32(op.dst);
  for (int64_t t = 0; t < n; ++t) {
    quant::dequantize_row(table.dtype, base + static_cast<size_t>(ids[t]) * row_bytes, out + t * width, width);
  }
}

void CpuStream::mat_mul(std::span<const hal::Op> ops, const DecodeEpilogues& epilogues) {
  const hal::Tensor& x = *ops.front().src[1];
  const DType wtype = ops.front().src[0]->dtype;
  const int64_t k = ops.front().src[0]->ne[0];
  const int64_t n_tok = x.rows();
  int64_t total_rows = 0;
  for (const hal::Op& op : ops) {
    const hal::Tensor& w = *op.src[0];
    MIXSERVE_CHECK(x.ne[0] == k && op.dst->ne[0] == w.rows() && op.dst->rows() == n_tok, "mat_mul shapes ",
                   w.shape_string(), " x ", x.shape_string(), " -> ", op.dst->shape_string());
    total_rows += w.rows();
  }
  const DType act = activation_type(wtype);
  const size_t act_row = *dtype_row_bytes(act, k);
  // The input as converted by the job before, when it planned this product as its conversion's
  // consumer (DecodeEpilogues::converts_for), else converted now.
  const uint8_t* xq = converted_for_ == &ops.front() ? converted_[converted_slot_].data : nullptr;
  converted_for_ = nullptr;
  if (xq == nullptr) {
    uint8_t* out = scratch(act_row * static_cast<size_t>(n_tok));
    const float* xf = f32(&x);
    pool_.parallel_for(n_tok, 8, [&](int64_t begin, int64_t end, int) {
      for (int64_t t = begin; t < end; ++t) convert_activation(wtype, xf + t * k, out + t * act_row, k);
    });
    xq = out;
  }
  // Decoding (one token, or a batch of sequences whose kernels split finely): one equal share of
  // each product per thread (decode_job), or, when the pool has more threads than it has cores,
  // the rows of all the products one after the other, handed out in shrinking chunks, so that a
  // thread that is not running holds up no fixed share.
  if (n_tok == 1 || (n_tok <= kMaxItemTokens && matmul_batch_splits_finely(wtype))) {
    if (equal_decode_shares_) {
      decode_job(ops, epilogues, xq, act_row, n_tok);
      return;
    }
    std::vector<int64_t> first_row;  // of each product, among the rows of all of them
    int64_t rows_before = 0;
    for (const hal::Op& op : ops) {
      first_row.push_back(rows_before);
      rows_before += op.src[0]->rows();
    }
    pool_.parallel_for_guided(
        total_rows, kDecodeRowGrain,
        [&](int64_t begin, int64_t end, int) {
          for (size_t p = 0; p < ops.size() && begin < end; ++p) {
            const int64_t rows = ops[p].src[0]->rows();
            if (begin >= first_row[p] + rows) continue;
            const int64_t r1 = std::min(rows, end - first_row[p]);
            product_rows(ops[p], begin - first_row[p], r1, 0, n_tok, xq, act_row);
            begin = first_row[p] + r1;
          }
        },
        kDecodeFirstShare);
    return;
  }
  // Else work items: row ranges of one product each, sized for all the rows together, times ranges
  // of tokens when there are many (a prompt).
  struct Item {
    const hal::Op* op;
    int64_t r0, r1, t0, t1;
  };
  const int64_t grain = matmul_grain(total_rows, pool_.size());
  const int64_t token_grain = matmul_token_grain(n_tok);
  std::vector<Item> items;
  for (int64_t t = 0; t < n_tok; t += token_grain) {
    const int64_t t1 = std::min(n_tok, t + token_grain);
    for (const hal::Op& op : ops) {
      for (int64_t r = 0; r < op.src[0]->rows(); r += grain) {
        items.push_back({&op, r, std::min(op.src[0]->rows(), r + grain), t, t1});
      }
    }
  }
  pool_.parallel_for(static_cast<int64_t>(items.size()), 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      const Item& item = items[static_cast<size_t>(i)];
      product_rows(*item.op, item.r0, item.r1, item.t0, item.t1, xq, act_row);
    }
  });
}

void CpuStream::product_rows(const hal::Op& op, int64_t r0, int64_t r1, int64_t t0, int64_t t1, const uint8_t* xq,
                             size_t act_row) {
  const hal::Tensor& w = *op.src[0];
  const int64_t k = w.ne[0];
  const int64_t n_out = w.rows();
  float* y = f32(op.dst) + t0 * n_out;
  const uint8_t* xt = xq + static_cast<size_t>(t0) * act_row;
  if (w.layout == hal::TensorLayout::kDevicePacked) {
    matmul_packed_rows(w.dtype, k, w.host_data(), w.row_bytes(), r0, r1, xt, act_row, t1 - t0, y, n_out);
  } else {
    matmul_rows(w.dtype, k, w.host_data(), w.row_bytes(), r0, r1, xt, act_row, t1 - t0, y, n_out);
  }
}

void CpuStream::add(const hal::Op& op) {
  const hal::Tensor& a = *op.src[0];
  const hal::Tensor& b = *op.src[1];
  const int64_t width = a.ne[0];
  MIXSERVE_CHECK(b.ne[0] == width && (b.rows() == a.rows() || b.rows() == 1), "add shapes");
  const bool broadcast = b.rows() == 1 && a.rows() != 1;
  const float* pa = f32(&a);
  const float* pb = f32(&b);
  float* y = f32(op.dst);
  pool_.parallel_for(a.rows(), rows_per_task(width), [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      cpu::add(pa + r * width, pb + (broadcast ? 0 : r * width), y + r * width, width);
    }
  });
}

void CpuStream::rms_norm(const hal::Op& op) {
  const int64_t width = op.src[0]->ne[0];
  MIXSERVE_CHECK(op.src[1]->elements() == width, "rms_norm weight size");
  const float* x = f32(op.src[0]);
  const float* w = f32(op.src[1]);
  float* y = f32(op.dst);
  pool_.parallel_for(op.src[0]->rows(), rows_per_task(width), [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) cpu::rms_norm(x + r * width, w, y + r * width, width, op.f[0]);
  });
}

void CpuStream::rope(const hal::Op& op) {
  const hal::Tensor& t = *op.dst;
  MIXSERVE_CHECK(op.src[0] == op.dst, "rope runs in place");
  const int64_t head_dim = t.ne[0];
  const int64_t heads = t.ne[1];
  float* x = f32(&t);
  pool_.parallel_for(t.ne[2], 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      cpu::rope(x + i * head_dim * heads, head_dim, heads, op.i[1], op.i[0] + i, op.f[0], op.i[2] == 1);
    }
  });
}

void CpuStream::swiglu(const hal::Op& op) {
  const int64_t n = op.src[0]->elements();
  const float* g = f32(op.src[0]);
  const float* u = f32(op.src[1]);
  float* y = f32(op.dst);
  // One equal share per thread (multiples of 16 floats): with chunks of 4096 one token's 5632
  // elements went 4096 + 1536. Zen 5 VM, decode steps alternating in one process: 10-22% less
  // time in SwiGLU (TinyLlama and Qwen2-0.5B shapes).
  const int64_t share = std::max<int64_t>(16, (n / pool_.size() + 15) / 16 * 16);
  pool_.parallel_for(n, share, [&](int64_t b, int64_t e, int) { cpu::swiglu(g + b, u + b, y + b, e - b); });
}

namespace {

// Physical cache row of logical row `row` under a block table (rows per block `block`); the
// identity without a table.
int64_t physical_row(const int32_t* table, int64_t block, int64_t row) {
  return table == nullptr ? row : static_cast<int64_t>(table[row / block]) * block + row % block;
}

// Whether the blocks holding rows [0, rows) follow each other in the cache.
bool contiguous_blocks(const int32_t* table, int64_t block, int64_t rows) {
  for (int64_t b = 1; b * block < rows; ++b) {
    if (table[b] != table[b - 1] + 1) return false;
  }
  return true;
}

// Checks a block table against the rows it must map and the cache it maps into.
const int32_t* block_table(const hal::Tensor* table, int64_t block, int64_t rows, int64_t cache_rows) {
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

}  // namespace

namespace {

// The first row of a cache's bytes, as the attention kernels' row pointer type.
template <class P>
P rows_at(const uint8_t* bytes) {
  if constexpr (std::is_same_v<P, Q8Row>) {
    return Q8Row{bytes, 0};
  } else {
    return reinterpret_cast<P>(bytes);
  }
}

}  // namespace

void CpuStream::attention(const hal::Op& op) {
  switch (op.src[1]->dtype) {
    case DType::kF16: return attention_over<const Half*>(op);
    case DType::kQ8_0: return attention_over<Q8Row>(op);
    default: return attention_over<const float*>(op);
  }
}

template <class P>
void CpuStream::attention_over(const hal::Op& op) {
  const hal::Tensor& q = *op.src[0];
  const int64_t head_dim = q.ne[0];
  const int64_t n_head = q.ne[1];
  const int64_t n_tok = q.ne[2];
  const int64_t n_head_kv = op.i[1];
  const int64_t pos0 = op.i[0];
  const int64_t kv_stride = head_dim * n_head_kv;
  MIXSERVE_CHECK(n_head_kv > 0 && n_head % n_head_kv == 0 && op.src[1]->ne[0] == kv_stride,
                 "attention head layout");
  const int64_t group = n_head / n_head_kv;
  const int64_t n_ctx = pos0 + n_tok;
  const int64_t block = op.i[2];
  const int32_t* table = block_table(op.src[3], block, n_ctx, op.src[1]->rows());
  // The kernels read a paged cache in place, block by block: per KV head, the address of each
  // block's first row (one block holding every row when the cache is not paged, or when its blocks
  // do not hold a multiple of 4 rows, which the kernels need, or are consecutive anyway).
  const bool paged = table != nullptr && block % 4 == 0 && block < n_ctx;
  const int64_t rows_per_block = paged ? block : n_ctx;
  const int64_t n_blocks = paged ? (n_ctx + block - 1) / block : 1;
  const size_t pointers = static_cast<size_t>(2 * n_head_kv * n_blocks);
  // Work items: `per_item` query heads that share a KV head, of up to kAttentionTokens consecutive
  // tokens, computed together so that they share each read of the cache rows; fewer heads and
  // tokens per item when the items would be too few to keep every thread busy.
  const int64_t min_items = 2 * pool_.size();
  int64_t per_item = group;
  while (per_item % 2 == 0 && n_tok * n_head / per_item < min_items) per_item /= 2;
  int64_t item_tokens = std::min(n_tok, kAttentionTokens);
  while (item_tokens > 1 && (n_tok + item_tokens - 1) / item_tokens * (n_head / per_item) < min_items) item_tokens /= 2;
  const size_t work_floats = static_cast<size_t>(item_tokens * per_item * n_ctx * pool_.size());
  const bool gather = table != nullptr && !paged && !contiguous_blocks(table, block, n_ctx);
  // Scratch: the work floats, the gathered rows, the block pointers, each from a 64-byte boundary.
  const auto aligned = [](size_t bytes) { return (bytes + 63) / 64 * 64; };
  const size_t gather_at = aligned(sizeof(float) * work_floats);
  const size_t row_bytes = op.src[1]->row_bytes();
  const size_t pointers_at = gather_at + aligned(gather ? static_cast<size_t>(2 * n_ctx) * row_bytes : 0);
  uint8_t* base = scratch(pointers_at + sizeof(P) * pointers);
  auto* work = reinterpret_cast<float*>(base);
  auto* k_blocks = reinterpret_cast<P*>(base + pointers_at);
  P* v_blocks = k_blocks + n_head_kv * n_blocks;
  const auto* k_bytes = static_cast<const uint8_t*>(op.src[1]->host_data());
  const auto* v_bytes = static_cast<const uint8_t*>(op.src[2]->host_data());
  if (gather) {  // blocks of other sizes, scattered: copied once per op into consecutive rows
    uint8_t* kg = base + gather_at;
    uint8_t* vg = kg + static_cast<size_t>(n_ctx) * row_bytes;
    for (int64_t j = 0; j < n_ctx; j += block) {
      const auto rows = static_cast<size_t>(std::min(block, n_ctx - j));
      const auto phys = static_cast<size_t>(physical_row(table, block, j));
      std::memcpy(kg + static_cast<size_t>(j) * row_bytes, k_bytes + phys * row_bytes, rows * row_bytes);
      std::memcpy(vg + static_cast<size_t>(j) * row_bytes, v_bytes + phys * row_bytes, rows * row_bytes);
    }
    k_bytes = kg;
    v_bytes = vg;
    table = nullptr;
  }
  const P kc = rows_at<P>(k_bytes);
  const P vc = rows_at<P>(v_bytes);
  for (int64_t h = 0; h < n_head_kv; ++h) {
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t row = physical_row(table, block, b * rows_per_block);
      k_blocks[h * n_blocks + b] = kc + row * kv_stride + h * head_dim;
      v_blocks[h * n_blocks + b] = vc + row * kv_stride + h * head_dim;
    }
  }
  const float* qp = f32(&q);
  float* out = f32(op.dst);
  const int64_t head_items = n_head / per_item;
  const int64_t token_items = (n_tok + item_tokens - 1) / item_tokens;
  pool_.parallel_for(token_items * head_items, 1, [&](int64_t begin, int64_t end, int ith) {
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
                              head_dim, op.f[0], work + ith * item_tokens * per_item * n_ctx);
    }
  });
}

namespace {

// Elements [c0, c1) of row `row` of a KV cache from src[c0, c1), converted to the cache's type (c0
// a multiple of 32 for Q8_0, whose blocks get the matmul activations' rounding: quant::quantize_row's
// bits).
void put_cache_row(const hal::Tensor& cache, int64_t row, const float* src, int64_t c0, int64_t c1) {
  const int64_t width = cache.ne[0];
  if (cache.dtype == DType::kF16) {
    to_half(src + c0, static_cast<Half*>(cache.host_data()) + row * width + c0, c1 - c0);
  } else if (cache.dtype == DType::kQ8_0) {
    auto* bytes = static_cast<uint8_t*>(cache.host_data()) + static_cast<size_t>(row) * cache.row_bytes();
    convert_activation(DType::kQ8_0, src + c0, bytes + *dtype_row_bytes(DType::kQ8_0, c0), c1 - c0);
  } else {
    std::memcpy(f32(&cache) + row * width + c0, src + c0, static_cast<size_t>(c1 - c0) * sizeof(float));
  }
}

}  // namespace

std::vector<int64_t> CpuStream::store_rows(const hal::Op& op) {
  const hal::Tensor& src = *op.src[0];
  const hal::Tensor& dst = *op.dst;
  MIXSERVE_CHECK(src.ne[0] == dst.ne[0] && op.i[0] >= 0, "store_kv shapes");
  const int64_t block = op.i[1];
  const int32_t* table = block_table(op.src[1], block, op.i[0] + src.rows(), dst.rows());
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < src.rows(); ++r) rows.push_back(physical_row(table, block, op.i[0] + r));
  return rows;
}

void CpuStream::store_kv(const hal::Op& op) {
  const int64_t width = op.dst->ne[0];
  const std::vector<int64_t> rows = store_rows(op);
  for (size_t r = 0; r < rows.size(); ++r) {
    put_cache_row(*op.dst, rows[r], f32(op.src[0]) + static_cast<int64_t>(r) * width, 0, width);
  }
}

void CpuStream::decode_job(std::span<const hal::Op> products, const DecodeEpilogues& epilogues, const uint8_t* xq,
                           size_t act_row, int64_t n_tok) {
  // Checked before the threads start: where each store writes, what the next product's input is.
  std::vector<int64_t> cache_rows(epilogues.ops.size(), -1);
  for (size_t e = 0; e < epilogues.ops.size(); ++e) {
    const hal::Op& op = *epilogues.ops[e].op;
    if (op.kind == hal::OpKind::kStoreKV) cache_rows[e] = store_rows(op).front();
  }
  const hal::Op* next = epilogues.converts_for;
  uint8_t* converted = nullptr;
  if (next != nullptr) {
    const int64_t k = next->src[0]->ne[0];
    // The other slot: this job's own input may be the latest conversion.
    converted = converted_[1 - converted_slot_].reserve(*dtype_row_bytes(activation_type(next->src[0]->dtype), k));
  }
  // Each thread's rows of each product: one share of all their rows taken one after the other (so
  // a thread reads as few streams as it can), unless an epilogue pairs the rows of two products
  // (SwiGLU) or a product starts inside a share's alignment: then a share of each product.
  std::vector<int64_t> first_row;
  int64_t total_rows = 0;
  bool whole_shares = !epilogues.pairs_products;
  for (const hal::Op& op : products) {
    first_row.push_back(total_rows);
    whole_shares = whole_shares && total_rows % epilogues.align == 0;
    total_rows += op.src[0]->rows();
  }
  const auto share = [&](size_t p, int ith, int nth) -> std::pair<int64_t, int64_t> {
    const int64_t rows = products[p].src[0]->rows();
    if (!whole_shares) return decode_share(rows, epilogues.align, ith, nth);
    const auto [begin, end] = decode_share(total_rows, epilogues.align, ith, nth);
    return {std::clamp(begin - first_row[p], int64_t{0}, rows), std::clamp(end - first_row[p], int64_t{0}, rows)};
  };
  pool_.run([&](int ith, int nth) {
    for (size_t p = 0; p < products.size(); ++p) {
      const auto [begin, end] = share(p, ith, nth);
      if (begin < end) product_rows(products[p], begin, end, 0, n_tok, xq, act_row);
    }
    for (size_t e = 0; e < epilogues.ops.size(); ++e) {
      const auto [begin, end] = share(epilogues.ops[e].product, ith, nth);
      if (begin < end) epilogue_rows(*epilogues.ops[e].op, begin, end, cache_rows[e]);
    }
    if (converted != nullptr) {
      const auto [begin, end] = share(epilogues.converts_product, ith, nth);
      const DType wtype = next->src[0]->dtype;
      if (begin < end) {
        convert_activation(wtype, f32(next->src[1]) + begin,
                           converted + *dtype_row_bytes(activation_type(wtype), begin), end - begin);
      }
    }
  });
  if (converted != nullptr) {
    converted_slot_ = 1 - converted_slot_;
    converted_for_ = next;
  }
}

void CpuStream::epilogue_rows(const hal::Op& op, int64_t begin, int64_t end, int64_t cache_row) {
  const int64_t n = end - begin;
  switch (op.kind) {
    case hal::OpKind::kAdd: return cpu::add(f32(op.src[0]) + begin, f32(op.src[1]) + begin, f32(op.dst) + begin, n);
    case hal::OpKind::kSwiGLU:
      return cpu::swiglu(f32(op.src[0]) + begin, f32(op.src[1]) + begin, f32(op.dst) + begin, n);
    case hal::OpKind::kRope: {
      const int64_t head_dim = op.dst->ne[0];
      return cpu::rope(f32(op.dst) + begin, head_dim, n / head_dim, op.i[1], op.i[0], op.f[0], op.i[2] == 1);
    }
    case hal::OpKind::kStoreKV: return put_cache_row(*op.dst, cache_row, f32(op.src[0]), begin, end);
    default: fail(ErrorCode::kInternal, "op ", hal::op_name(op.kind), " cannot run as a decoding epilogue");
  }
}

}  // namespace mixserve::cpu

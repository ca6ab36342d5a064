#include "backends/cpu/cpu_stream.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "backends/cpu/attention_work.h"
#include "backends/cpu/decode_epilogues.h"
#include "backends/cpu/decode_graph.h"
#include "backends/cpu/decode_job.h"
#include "backends/cpu/matmul_kernels.h"
#include "backends/cpu/row_ops.h"
#include "backends/cpu/vector_kernels.h"
#include "common/error.h"

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

void CpuStream::run_all(std::span<const hal::Op> ops) {
  // A graph that decodes one token runs as one task of the pool (DecodeGraph), unless every op is
  // to be timed on its own, or the pool has more threads than cores (a barrier would wait for
  // threads that are not running).
  if (profile_ == nullptr && equal_decode_shares_) {
    for (const hal::Op& op : ops) check(op);
    if (const auto graph = DecodeGraph::plan(ops, pool_.size(), decode_buffers_)) {
      graph->run(pool_);
      return;
    }
  }
  converted_for_ = nullptr;  // a conversion planned in another graph (which failed before its consumer)
  for (size_t i = 0; i < ops.size();) {
    if (converted_for_ != &ops[i]) converted_for_ = nullptr;  // only the very next op may consume it
    size_t j = i + 1;
    DecodeEpilogues epilogues;
    if (ops[i].kind == hal::OpKind::kMatMul) {
      j = product_group_end(ops, i);
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
    case hal::OpKind::kGetRows: return get_rows(op);  // one thread: a row per token
    case hal::OpKind::kMatMul: return mat_mul(std::span<const hal::Op>(&op, 1), {});
    case hal::OpKind::kAdd: return add(op);
    case hal::OpKind::kRmsNorm: return rms_norm(op);
    case hal::OpKind::kRope: return rope(op);
    case hal::OpKind::kSwiGLU: return swiglu(op);
    case hal::OpKind::kAttention: return attention(op);
    case hal::OpKind::kStoreKV: return store_kv(op);
  }
}

void CpuStream::mat_mul(std::span<const hal::Op> ops, const DecodeEpilogues& epilogues) {
  const hal::Tensor& x = *ops.front().src[1];
  const DType wtype = ops.front().src[0]->dtype;
  const int64_t k = ops.front().src[0]->ne[0];
  const int64_t n_tok = x.rows();
  const int64_t total_rows = check_product_shapes(ops);
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

void CpuStream::add(const hal::Op& op) {
  pool_.parallel_for(op.src[0]->rows(), rows_per_task(op.src[0]->ne[0]),
                     [&](int64_t begin, int64_t end, int) { add_rows(op, begin, end); });
}

void CpuStream::rms_norm(const hal::Op& op) {
  pool_.parallel_for(op.src[0]->rows(), rows_per_task(op.src[0]->ne[0]),
                     [&](int64_t begin, int64_t end, int) { rms_norm_rows(op, begin, end); });
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

void CpuStream::attention(const hal::Op& op) {
  const AttentionLayout layout = attention_layout(op, pool_.size());
  const size_t scratch_bytes = whole_lines(layout.scratch_bytes);
  uint8_t* base = scratch(scratch_bytes + layout.address_bytes);
  const AttentionWork work = prepare_attention(op, pool_.size(), base, base + scratch_bytes);
  pool_.parallel_for(work.layout.items, 1, work.run);
}

void CpuStream::store_kv(const hal::Op& op) {
  const int64_t width = op.dst->ne[0];
  const std::vector<int64_t> rows = cache_store_rows(op);
  for (size_t r = 0; r < rows.size(); ++r) {
    put_cache_row(*op.dst, rows[r], f32(op.src[0]) + static_cast<int64_t>(r) * width, 0, width);
  }
}

void CpuStream::decode_job(std::span<const hal::Op> products, const DecodeEpilogues& epilogues, const uint8_t* xq,
                           size_t act_row, int64_t n_tok) {
  const hal::Op* next = epilogues.converts_for;
  uint8_t* converted = nullptr;
  if (next != nullptr) {
    // The other slot: this job's own input may be the latest conversion.
    converted = converted_[1 - converted_slot_].reserve(activation_row_bytes(*next));
  }
  const DecodeJob job(products, epilogues, xq, act_row, n_tok, converted);
  pool_.run([&](int ith, int nth) { job.run_share(ith, nth); });
  if (converted != nullptr) {
    converted_slot_ = 1 - converted_slot_;
    converted_for_ = next;
  }
}

}  // namespace mixserve::cpu

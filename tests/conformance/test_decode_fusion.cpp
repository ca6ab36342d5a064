// The CPU stream runs the ops that follow a decoding job of products element by element (bias and
// residual adds, RoPE, KV stores, SwiGLU, the next product's input conversion) inside that job,
// each thread on its own rows (backends/cpu/decode_epilogues.h). A decoding layer run that way must
// give exactly the bits of its ops run one by one, whatever the weights, cache type, paging and
// threads; and the planner must refuse what would let one thread write what another reads.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <optional>

#include "backends/cpu/decode_epilogues.h"
#include "conformance/op_harness.h"

namespace mixserve::conformance {
namespace {

using hal::make_op;
using hal::OpKind;

constexpr int64_t kEmbd = 256, kHeadDim = 64, kHeads = 4, kKvHeads = 2, kFf = 320, kCtx = 16;
constexpr int64_t kKvDim = kHeadDim * kKvHeads;

// A view of t's memory with another shape (as the graph builder makes for heads and rows).
hal::Tensor view(const DeviceTensor& t, std::array<int64_t, 4> ne) {
  hal::Tensor v = t.tensor;
  v.ne = ne;
  return v;
}

struct Weights {
  DeviceTensor norm, wq, wk, wv, bq, bk, bv, wo, ffn_norm, gate, up, down;
};

Weights make_weights(hal::Device& device, hal::Stream& stream, DType type, std::mt19937_64& rng) {
  const auto matrix = [&](int64_t k, int64_t n) {
    return make_tensor(device, stream, type, {k, n, 1, 1},
                       encode(type, random_floats(static_cast<size_t>(k * n), rng, 0.1f), k));
  };
  const auto vec = [&](int64_t n) {
    return make_tensor(device, stream, DType::kF32, {n, 1, 1, 1},
                       encode(DType::kF32, random_floats(static_cast<size_t>(n), rng), n));
  };
  return {vec(kEmbd),
          matrix(kEmbd, kHeads * kHeadDim),
          matrix(kEmbd, kKvDim),
          matrix(kEmbd, kKvDim),
          vec(kHeads * kHeadDim),
          vec(kKvDim),
          vec(kKvDim),
          matrix(kHeads * kHeadDim, kEmbd),
          vec(kEmbd),
          matrix(kEmbd, kFf),
          matrix(kEmbd, kFf),
          matrix(kFf, kEmbd)};
}

// The activations and caches of one run of a layer.
struct Layer {
  Layer(hal::Device& device, hal::Stream& stream, DType cache_type) {
    const auto f32 = [&](int64_t n) { return make_tensor(device, stream, DType::kF32, {n, 1, 1, 1}); };
    x = f32(kEmbd);
    h = f32(kEmbd);
    q = f32(kHeads * kHeadDim);
    k = f32(kKvDim);
    v = f32(kKvDim);
    attn = f32(kHeads * kHeadDim);
    proj = f32(kEmbd);
    gate = f32(kFf);
    up = f32(kFf);
    k_cache = make_tensor(device, stream, cache_type, {kKvDim, kCtx, 1, 1});
    v_cache = make_tensor(device, stream, cache_type, {kKvDim, kCtx, 1, 1});
    q_heads = view(q, {kHeadDim, kHeads, 1, 1});
    k_heads = view(k, {kHeadDim, kKvHeads, 1, 1});
  }
  DeviceTensor x, h, q, k, v, attn, proj, gate, up, k_cache, v_cache;
  hal::Tensor q_heads, k_heads;

  // One token at position pos, as the transformer builder orders a Qwen2-style layer (with biases)
  // or a Llama one.
  std::vector<hal::Op> ops(const Weights& w, int64_t pos, bool bias, const hal::Tensor* table, int64_t block) {
    std::vector<hal::Op> o;
    hal::Op norm = make_op(OpKind::kRmsNorm, &h.tensor, &x.tensor, &w.norm.tensor);
    norm.f[0] = 1e-5f;
    o.push_back(norm);
    o.push_back(make_op(OpKind::kMatMul, &q.tensor, &w.wq.tensor, &h.tensor));
    o.push_back(make_op(OpKind::kMatMul, &k.tensor, &w.wk.tensor, &h.tensor));
    o.push_back(make_op(OpKind::kMatMul, &v.tensor, &w.wv.tensor, &h.tensor));
    if (bias) {
      o.push_back(make_op(OpKind::kAdd, &q.tensor, &q.tensor, &w.bq.tensor));
      o.push_back(make_op(OpKind::kAdd, &k.tensor, &k.tensor, &w.bk.tensor));
      o.push_back(make_op(OpKind::kAdd, &v.tensor, &v.tensor, &w.bv.tensor));
    }
    for (hal::Tensor* heads : {&q_heads, &k_heads}) {
      hal::Op rope = make_op(OpKind::kRope, heads, heads);
      rope.i = {pos, kHeadDim, bias ? 1 : 0};
      rope.f[0] = 10000.0f;
      o.push_back(rope);
    }
    for (auto [cache, rows] : {std::pair{&k_cache, &k}, std::pair{&v_cache, &v}}) {
      hal::Op store = make_op(OpKind::kStoreKV, &cache->tensor, &rows->tensor, table);
      store.i = {pos, block, 0};
      o.push_back(store);
    }
    hal::Op att = make_op(OpKind::kAttention, &attn.tensor, &q_heads, &k_cache.tensor, &v_cache.tensor, table);
    att.f[0] = 0.125f;
    att.i = {pos, kKvHeads, block};
    o.push_back(att);
    o.push_back(make_op(OpKind::kMatMul, &proj.tensor, &w.wo.tensor, &attn.tensor));
    o.push_back(make_op(OpKind::kAdd, &x.tensor, &x.tensor, &proj.tensor));
    hal::Op ffn_norm = make_op(OpKind::kRmsNorm, &h.tensor, &x.tensor, &w.ffn_norm.tensor);
    ffn_norm.f[0] = 1e-5f;
    o.push_back(ffn_norm);
    o.push_back(make_op(OpKind::kMatMul, &gate.tensor, &w.gate.tensor, &h.tensor));
    o.push_back(make_op(OpKind::kMatMul, &up.tensor, &w.up.tensor, &h.tensor));
    o.push_back(make_op(OpKind::kSwiGLU, &gate.tensor, &gate.tensor, &up.tensor));
    o.push_back(make_op(OpKind::kMatMul, &proj.tensor, &w.down.tensor, &gate.tensor));
    o.push_back(make_op(OpKind::kAdd, &x.tensor, &x.tensor, &proj.tensor));
    return o;
  }
};

std::vector<uint8_t> bytes_of(hal::Stream& stream, const DeviceTensor& t) {
  stream.synchronize();
  std::vector<uint8_t> out(t.tensor.bytes());
  stream.read(*t.buffer, t.tensor.offset, out.data(), out.size());
  return out;
}

TEST(CpuDecodeFusion, LayerRunTogetherGivesTheBitsOfItsOpsOneByOne) {
  hal::Device& device = cpu_device();
  for (DType wtype : {DType::kQ4_0, DType::kQ8_0, DType::kF16}) {
    for (DType cache_type : {DType::kF32, DType::kF16, DType::kQ8_0}) {
      for (bool paged : {false, true}) {
        for (int threads : {1, 2, 3}) {
          const bool bias = wtype == DType::kQ8_0;
          SCOPED_TRACE(str_cat(dtype_name(wtype), " weights, ", dtype_name(cache_type), " cache, ",
                               paged ? "paged, " : "", threads, " threads"));
          auto together = device.create_stream({.n_threads = threads});
          auto one_by_one = device.create_stream({.n_threads = threads});
          std::mt19937_64 rng(static_cast<uint64_t>(threads * 100 + static_cast<int>(cache_type)));
          const Weights w = make_weights(device, *together, wtype, rng);
          // Blocks of 4 rows, out of order, as a paged cache hands them out.
          const std::vector<int32_t> ids = {2, 0, 3, 1};
          std::vector<uint8_t> id_bytes(ids.size() * sizeof(int32_t));
          std::memcpy(id_bytes.data(), ids.data(), id_bytes.size());
          auto table = make_tensor(device, *together, DType::kI32, {4, 1, 1, 1}, id_bytes);
          Layer a(device, *together, cache_type), b(device, *one_by_one, cache_type);
          for (int64_t pos = 0; pos < 7; ++pos) {
            const auto x = encode(DType::kF32, random_floats(kEmbd, rng), kEmbd);
            together->write(*a.x.buffer, a.x.tensor.offset, x.data(), x.size());
            one_by_one->write(*b.x.buffer, b.x.tensor.offset, x.data(), x.size());
            const hal::Tensor* t = paged ? &table.tensor : nullptr;
            const int64_t block = paged ? 4 : 0;
            together->run_all(a.ops(w, pos, bias, t, block));
            for (const hal::Op& op : b.ops(w, pos, bias, t, block)) one_by_one->run(op);
            for (auto [got, want] : {std::pair{&a.x, &b.x}, std::pair{&a.k_cache, &b.k_cache},
                                     std::pair{&a.v_cache, &b.v_cache}, std::pair{&a.attn, &b.attn}}) {
              ASSERT_EQ(bytes_of(*together, *got), bytes_of(*one_by_one, *want)) << "position " << pos;
              EXPECT_TRUE(guards_intact(*together, *got));
            }
          }
        }
      }
    }
  }
}

// Shares of many sizes and thread counts: aligned, in order, covering all the rows exactly once.
TEST(CpuDecodeFusion, SharesAreAlignedAndCoverEveryRowOnce) {
  for (int64_t align : {int64_t{16}, int64_t{32}, int64_t{64}, int64_t{160}}) {
    for (int64_t rows : {int64_t{1}, int64_t{16}, int64_t{100}, int64_t{256}, int64_t{320}, int64_t{5632}}) {
      for (int nth = 1; nth <= 6; ++nth) {
        int64_t next = 0;
        for (int ith = 0; ith < nth; ++ith) {
          const auto [begin, end] = cpu::decode_share(rows, align, ith, nth);
          ASSERT_EQ(begin, std::min(next, rows)) << rows << " rows, thread " << ith << " of " << nth;
          ASSERT_LE(begin, end);
          // Heads and blocks never straddle two threads: each share starts and ends at a multiple
          // of align or at the end of the rows.
          EXPECT_TRUE(end == rows || end % align == 0) << rows << " rows, thread " << ith << " of " << nth;
          next = end;
        }
        EXPECT_EQ(next, rows) << rows << " rows over " << nth << " threads";
      }
    }
  }
}

// The planner, on the ops of a layer and on variants that must not run inside a job.
class DecodePlan : public ::testing::Test {
 protected:
  DecodePlan()
      : stream_(cpu_device().create_stream({.n_threads = 2})),
        rng_(5),
        w_(make_weights(cpu_device(), *stream_, DType::kQ8_0, rng_)),
        layer_(cpu_device(), *stream_, DType::kQ8_0) {}

  // Plans the job of ops [first, first + n) of `ops` against the ops after it.
  static cpu::DecodeEpilogues plan(const std::vector<hal::Op>& ops, size_t first, size_t n) {
    return cpu::plan_decode_epilogues(std::span(ops).subspan(first, n), std::span(ops).subspan(first + n));
  }

  std::unique_ptr<hal::Stream> stream_;
  std::mt19937_64 rng_;
  Weights w_;
  Layer layer_;
};

TEST_F(DecodePlan, FusesTheElementwiseOpsOfALayer) {
  const auto ops = layer_.ops(w_, 3, /*bias=*/true, nullptr, 0);
  // q, k, v: the three bias adds, two RoPEs and two stores; heads of 64 rows and Q8_0 cache blocks
  // of 32 make shares of 64 rows. Attention is not element-wise.
  const auto qkv = plan(ops, 1, 3);
  ASSERT_EQ(qkv.ops.size(), 7u);
  EXPECT_EQ(qkv.ops[3].op->kind, OpKind::kRope);
  EXPECT_EQ(qkv.ops[3].product, 0u);
  EXPECT_EQ(qkv.ops[6].op->kind, OpKind::kStoreKV);
  EXPECT_EQ(qkv.ops[6].product, 2u);
  EXPECT_EQ(qkv.align, 64);
  EXPECT_EQ(qkv.converts_for, nullptr);
  // The output projection: the residual add, then the norm stops the run.
  const auto wo = plan(ops, 12, 1);
  ASSERT_EQ(wo.ops.size(), 1u);
  EXPECT_EQ(wo.ops[0].op->kind, OpKind::kAdd);
  // gate and up: SwiGLU, and the down projection's input converted (Q8_0 blocks of 32).
  const auto ffn = plan(ops, 15, 2);
  ASSERT_EQ(ffn.ops.size(), 1u);
  EXPECT_EQ(ffn.ops[0].op->kind, OpKind::kSwiGLU);
  EXPECT_EQ(ffn.converts_for, &ops[18]);
  EXPECT_EQ(ffn.align, 32);
}

TEST_F(DecodePlan, RefusesWritesThatOtherThreadsRead) {
  Layer& l = layer_;
  const auto op = [](OpKind kind, DeviceTensor& dst, const hal::Tensor& a, const hal::Tensor& b) {
    return make_op(kind, &dst.tensor, &a, &b);
  };
  const auto mm = [&](DeviceTensor& dst, const DeviceTensor& w, const DeviceTensor& x) {
    return op(OpKind::kMatMul, dst, w.tensor, x.tensor);
  };
  struct Case {
    const char* what;
    std::vector<hal::Op> ops;  // the job's products first
    size_t products;
  };
  const Case cases[] = {
      {"an add into the job's own input, which every thread reads in full",
       {mm(l.proj, w_.wo, l.h), op(OpKind::kAdd, l.h, l.proj.tensor, l.x.tensor)},
       1},
      {"an add of two products' outputs (the other one's rows are another thread's)",
       {mm(l.k, w_.wk, l.h), mm(l.v, w_.wv, l.h), op(OpKind::kAdd, l.k, l.k.tensor, l.v.tensor)},
       2},
      {"an add of one product's rows into another product's output",
       {mm(l.k, w_.wk, l.h), mm(l.v, w_.wv, l.h), op(OpKind::kAdd, l.v, l.k.tensor, w_.bk.tensor)},
       2},
      {"SwiGLU over products of different rows (their shares differ)",
       {mm(l.gate, w_.gate, l.h), mm(l.k, w_.wk, l.h), op(OpKind::kSwiGLU, l.gate, l.gate.tensor, l.k.tensor)},
       2},
      {"a store into a \"cache\" that is the job's input",
       {mm(l.proj, w_.wo, l.h), make_op(OpKind::kStoreKV, &l.h.tensor, &l.proj.tensor)},
       1},
      {"an add after an op that is not fused",
       {mm(l.proj, w_.wo, l.attn), op(OpKind::kRmsNorm, l.h, l.x.tensor, w_.norm.tensor),
        op(OpKind::kAdd, l.x, l.x.tensor, l.proj.tensor)},
       1},
  };
  for (const Case& c : cases) {
    const auto p = plan(c.ops, 0, c.products);
    EXPECT_TRUE(p.ops.empty()) << c.what;
    EXPECT_EQ(p.converts_for, nullptr) << c.what;
  }
  // A write, at one product's rows, of what an earlier fused op read at another product's rows:
  // the two bias adds fuse, the third add does not.
  const std::vector<hal::Op> reread = {
      mm(l.k, w_.wk, l.h), mm(l.v, w_.wv, l.h), op(OpKind::kAdd, l.k, l.k.tensor, w_.bk.tensor),
      op(OpKind::kAdd, l.v, l.v.tensor, w_.bv.tensor), op(OpKind::kAdd, w_.bk, l.v.tensor, w_.bv.tensor)};
  EXPECT_EQ(plan(reread, 0, 2).ops.size(), 2u);
  // No conversion for a product of another input than the job's outputs.
  const std::vector<hal::Op> ops = {mm(l.proj, w_.wo, l.attn), mm(l.gate, w_.gate, l.h)};
  EXPECT_EQ(plan(ops, 0, 1).converts_for, nullptr);
}

}  // namespace
}  // namespace mixserve::conformance

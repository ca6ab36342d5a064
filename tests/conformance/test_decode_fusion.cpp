// The CPU stream runs the ops that follow a decoding job of products element by element (bias and
// residual adds, RoPE, KV stores, SwiGLU, the next product's input conversion) inside that job,
// each thread on its own rows (backends/cpu/decode_epilogues.h), and a graph that decodes one token
// as one task of its pool (backends/cpu/decode_graph.h). A decoding layer run either way must give
// exactly the bits of its ops run one by one, whatever the weights, cache type, paging and threads;
// and the planner must refuse what would let one thread write what another reads.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <optional>
#include <tuple>

#include "backends/cpu/decode_epilogues.h"
#include "conformance/decode_layer.h"
#include "conformance/op_harness.h"
#include "hal/op_profile.h"

namespace mixserve::conformance {
namespace {

using hal::make_op;
using hal::OpKind;

TEST(CpuDecodeFusion, LayerRunTogetherGivesTheBitsOfItsOpsOneByOne) {
  hal::Device& device = cpu_device();
  for (DType wtype : {DType::kQ4_0, DType::kQ8_0, DType::kF16}) {
    for (DType cache_type : {DType::kF32, DType::kF16, DType::kQ8_0}) {
      for (bool paged : {false, true}) {
        for (int threads : {1, 2, 3}) {
          const bool bias = wtype == DType::kQ8_0;
          SCOPED_TRACE(str_cat(dtype_name(wtype), " weights, ", dtype_name(cache_type), " cache, ",
                               paged ? "paged, " : "", threads, " threads"));
          // The graph as one task; the same graph job by job (the stream's path while it times every
          // op); every op on its own.
          auto together = device.create_stream({.n_threads = threads});
          auto job_by_job = device.create_stream({.n_threads = threads});
          hal::OpProfile profile;
          ASSERT_TRUE(job_by_job->set_profile(&profile));
          auto one_by_one = device.create_stream({.n_threads = threads});
          std::mt19937_64 rng(static_cast<uint64_t>(threads * 100 + static_cast<int>(cache_type)));
          const Weights w = make_weights(device, *together, wtype, rng);
          // Blocks of 4 rows, out of order, as a paged cache hands them out.
          const std::vector<int32_t> ids = {2, 0, 3, 1};
          std::vector<uint8_t> id_bytes(ids.size() * sizeof(int32_t));
          std::memcpy(id_bytes.data(), ids.data(), id_bytes.size());
          auto table = make_tensor(device, *together, DType::kI32, {4, 1, 1, 1}, id_bytes);
          Layer a(device, *together, cache_type), b(device, *one_by_one, cache_type),
              c(device, *job_by_job, cache_type);
          for (int64_t pos = 0; pos < 7; ++pos) {
            const auto x = encode(DType::kF32, random_floats(kEmbd, rng), kEmbd);
            together->write(*a.x.buffer, a.x.tensor.offset, x.data(), x.size());
            one_by_one->write(*b.x.buffer, b.x.tensor.offset, x.data(), x.size());
            job_by_job->write(*c.x.buffer, c.x.tensor.offset, x.data(), x.size());
            const hal::Tensor* t = paged ? &table.tensor : nullptr;
            const int64_t block = paged ? 4 : 0;
            together->run_all(a.ops(w, pos, bias, t, block));
            job_by_job->run_all(c.ops(w, pos, bias, t, block));
            for (const hal::Op& op : b.ops(w, pos, bias, t, block)) one_by_one->run(op);
            for (auto [got, want, timed] :
                 {std::tuple{&a.x, &b.x, &c.x}, std::tuple{&a.k_cache, &b.k_cache, &c.k_cache},
                  std::tuple{&a.v_cache, &b.v_cache, &c.v_cache}, std::tuple{&a.attn, &b.attn, &c.attn}}) {
              ASSERT_EQ(bytes_of(*together, *got), bytes_of(*one_by_one, *want)) << "position " << pos;
              ASSERT_EQ(bytes_of(*job_by_job, *timed), bytes_of(*one_by_one, *want)) << "position " << pos;
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

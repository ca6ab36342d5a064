// CPU stream: runs ops synchronously on the calling thread plus a thread pool.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backends/cpu/aligned_bytes.h"
#include "backends/cpu/decode_epilogues.h"
#include "backends/cpu/decode_graph.h"
#include "common/thread_pool.h"
#include "hal/device.h"

namespace mixserve::cpu {

/// Executes ops at once (run returns when the op is done); synchronize() is a no-op.
class CpuStream : public hal::Stream {
 public:
  /// A stream on `device` using `n_threads` threads (0 = all usable cores).
  CpuStream(hal::Device& device, int n_threads);
  void run(const hal::Op& op) override;
  /// Runs the ops in order; consecutive matrix products of one input (q, k, v; gate, up) go as one
  /// job: the input converted once, the rows of all of them shared out in one parallel loop. For one
  /// token, the element-wise ops after a job run inside it (plan_decode_epilogues), and a graph that
  /// decodes one token runs as one task of the pool, with barriers between its phases (DecodeGraph).
  void run_all(std::span<const hal::Op> ops) override;
  void write(hal::Buffer& dst, size_t offset, const void* src, size_t bytes) override;
  void read(const hal::Buffer& src, size_t offset, void* dst, size_t bytes) override;
  void synchronize() override {}
  /// Times every op (a group of products run as one job counts as its ops, with the job's time).
  bool set_profile(hal::OpProfile* profile) override {
    profile_ = profile;
    return true;
  }

  /// Threads used by this stream.
  int n_threads() const { return pool_.size(); }

 private:
  /// Runs one op (checked) without timing it.
  void execute(const hal::Op& op);
  /// Matrix products that read the same input with weights of one type, layout and width; when they
  /// decode one token, with `epilogues` (the ops after them that run inside their job).
  void mat_mul(std::span<const hal::Op> ops, const DecodeEpilogues& epilogues);
  /// A decoding job of n_tok tokens (epilogues only with one): equal shares of the products' rows per
  /// thread, then the epilogues on the rows of each thread's shares (and the next product's input
  /// converted, if planned).
  void decode_job(std::span<const hal::Op> products, const DecodeEpilogues& epilogues, const uint8_t* xq,
                  size_t act_row, int64_t n_tok);
  /// Records a job of matrix products (run_all's group) and its time in profile_, by shape.
  void add_product_profile(std::span<const hal::Op> group, double seconds);
  /// Checks that the stream can run `op` on host memory.
  void check(const hal::Op& op) const;
  void add(const hal::Op& op);
  void rms_norm(const hal::Op& op);
  void rope(const hal::Op& op);
  void swiglu(const hal::Op& op);
  void attention(const hal::Op& op);
  void store_kv(const hal::Op& op);
  /// Scratch of at least `bytes`, 64-byte aligned, reused across ops.
  uint8_t* scratch(size_t bytes);

  hal::Device& device_;
  ThreadPool pool_;
  /// Whether every thread of the pool can run at once (no more threads than usable cores): then a
  /// decoding job's rows go out in equal shares, else in guided chunks (mat_mul).
  bool equal_decode_shares_;
  AlignedBytes scratch_;
  hal::OpProfile* profile_ = nullptr;
  /// A product's input converted by the decoding job before it: two, so that a job can convert the
  /// next input while its own products read the one before.
  std::array<AlignedBytes, 2> converted_;
  int converted_slot_ = 0;  ///< the slot holding the latest conversion
  /// The product whose input converted_[converted_slot_] holds; nullptr when none is pending.
  const hal::Op* converted_for_ = nullptr;
  /// The buffers of the graphs that run as one task (DecodeGraph).
  DecodeGraphBuffers decode_buffers_;
};

}  // namespace mixserve::cpu

// A graph that decodes one token, run by the CPU stream as one task of its pool: planned on the
// calling thread into phases (a job of products with its fused ops, an attention op's items, or a
// few small ops that one thread runs), which every thread then walks with a barrier between phases.
// A fork and join per op cost each job about a microsecond when the two vCPUs were far apart (a
// thread handoff of ~180 ns; Zen 5 VM: an empty ThreadPool::run 1.23 us, a barrier round 0.18 us),
// and the calling thread's planning between the jobs left the other thread idle.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "backends/cpu/aligned_bytes.h"
#include "backends/cpu/attention_work.h"
#include "backends/cpu/decode_job.h"
#include "common/thread_pool.h"
#include "hal/op.h"

namespace mixserve::cpu {

/// Buffers of the plans, kept from one graph to the next (they only grow).
struct DecodeGraphBuffers {
  std::array<AlignedBytes, 2> converted;  ///< inputs converted by the job before their product's
  /// Inputs converted on their own (after a norm, by attention), alternately: a job that attends
  /// converts the next product's input while other threads still read its own.
  std::array<AlignedBytes, 2> input;
  AlignedBytes scratch;                   ///< attention's scores (one op at a time)
  AlignedBytes addresses;                 ///< every attention op's block addresses
};

/// The phases of one token's decoding graph, planned once and run by every thread of a pool.
class DecodeGraph {
 public:
  /// The plan of `ops` (checked by the stream: host memory, supported ops) for a pool of n_threads,
  /// or nullopt when the graph is not one token's decoding of products, attention (on caches read in
  /// place), norms, adds and row lookups, or has ops the jobs could not fuse: the stream then runs it
  /// op by op. Throws what the ops' checks throw (shapes, block tables), before anything runs.
  static std::optional<DecodeGraph> plan(std::span<const hal::Op> ops, int n_threads, DecodeGraphBuffers& buffers);

  /// Runs the plan on `pool` (of the plan's n_threads); rethrows the first exception of an op.
  void run(ThreadPool& pool) const;

  /// Phases of the plan (each ends at a barrier).
  size_t phases() const { return phases_.size(); }

 private:
  // The activation row of a product converted whole, by one thread.
  struct Conversion {
    DType wtype = DType::kF32;
    const float* x = nullptr;
    uint8_t* out = nullptr;
    int64_t k = 0;
  };
  // A step of a serial phase: an op, or else a conversion.
  struct SerialStep {
    const hal::Op* op = nullptr;
    Conversion conversion;
  };
  struct Phase {
    enum class Kind { kSerial, kJob, kAttention } kind = Kind::kSerial;
    std::vector<SerialStep> serial;           ///< kSerial: run by thread 0 in order
    std::optional<DecodeJob> job;             ///< kJob
    const hal::Op* attention_op = nullptr;    ///< kAttention, or a kJob whose threads attend after it
    AttentionWork attention;                  ///< items shared out in equal runs, or (in a job) by the
                                              ///< KV heads of each thread's rows of k
    size_t k_product = 0;                     ///< in a job: the product whose rows are k's
    int64_t head_dim = 0;                     ///< in a job: rows of a KV head
    int64_t items_per_kv_head = 0;            ///< in a job
    std::optional<Conversion> items_convert;  ///< each item's outputs converted by its thread
    const DecodeJob* next_job = nullptr;      ///< the first job after this phase (set once all are planned)
  };

  // Whether the job of the last phase computes q, k and v for attention `op` (with RoPE and the
  // KV stores fused) so that each thread can attend with the heads of its own rows; if so, shares
  // its products out by heads and moves `attention` (op's prepared work) into that phase.
  bool attend_in_job(const hal::Op& op, int n_threads, AttentionWork& attention);
  // Items [begin, end) of `phase`'s attention that thread ith runs.
  static std::pair<int64_t, int64_t> attention_items(const Phase& phase, int ith, int nth);

  // Where the next job's input gets converted: by the serial phase before it, by the attention
  // op writing it (each item its own outputs), or by a serial phase of its own.
  void convert_input(const hal::Op& product, uint8_t* out);
  void run_phase(const Phase& phase, int ith, int nth) const;
  static void run_serial(const SerialStep& step);

  std::vector<Phase> phases_;
};

}  // namespace mixserve::cpu

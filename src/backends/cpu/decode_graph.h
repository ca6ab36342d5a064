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
  AlignedBytes input;                     ///< inputs converted on their own (after a norm, by attention)
  AlignedBytes scratch;                   ///< attention's scores (one op at a time)
  AlignedBytes addresses;                 ///< every attention op's block addresses
};

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
    const hal::Op* attention_op = nullptr;    ///< kAttention
    AttentionWork attention;                  ///< kAttention: items shared out in equal runs
    std::optional<Conversion> items_convert;  ///< kAttention: each item's outputs converted by its thread
    const DecodeJob* next_job = nullptr;      ///< the first job after this phase (set once all are planned)
  };

  // Where the next job's input gets converted: by the serial phase before it, by the attention
  // op writing it (each item its own outputs), or by a serial phase of its own.
  void convert_input(const hal::Op& product, uint8_t* out);
  void run_phase(const Phase& phase, int ith, int nth) const;
  static void run_serial(const SerialStep& step);

  std::vector<Phase> phases_;
};

}  // namespace mixserve::cpu

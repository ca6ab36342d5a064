// Measurements of the machine's physical limits (memory read bandwidth, peak f32 and int8
// arithmetic throughput) that `mixserve bench` compares kernel speeds with.
#pragma once

#include <cstddef>

#include "common/thread_pool.h"

namespace mixserve::cpu {

/// Sustained read bandwidth in bytes/s, all pool threads each reading its own slice of a
/// `bytes`-byte buffer (allocated and touched first, untimed), as one sequential stream and as two
/// streams side by side with software prefetch; the best pass of `repetitions` of each.
/// Throws kInvalidArgument for bytes < 4096 or > 64 GiB (or half the machine's memory) or
/// repetitions outside [1, 1000], and kResourceExhausted when the buffer cannot be allocated.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int repetitions);

/// measure_read_bandwidth over one buffer kept between measurements: allocating and first touching
/// hundreds of MiB of huge pages took most of the time of each probe (the kernel zeroes them), and
/// `mixserve bench` probes around every decode run.
class ReadBandwidthProbe {
 public:
  /// Allocates and touches the buffer; throws as measure_read_bandwidth does for `bytes`.
  ReadBandwidthProbe(ThreadPool& pool, size_t bytes);
  ~ReadBandwidthProbe();
  ReadBandwidthProbe(const ReadBandwidthProbe&) = delete;
  ReadBandwidthProbe& operator=(const ReadBandwidthProbe&) = delete;

  /// Bytes/s, best of `repetitions` (1..1000, else kInvalidArgument) passes over the buffer.
  double measure(int repetitions);

 private:
  ThreadPool& pool_;
  float* data_ = nullptr;
  size_t n_ = 0;  ///< floats, whole 64-byte lines
};

/// Peak f32 multiply-add throughput of all pool threads in flop/s (2 per FMA lane), measured over
/// ~0.2 s with the widest vector FMA this CPU supports.
double measure_peak_flops_f32(ThreadPool& pool);

/// Peak int8 throughput of all pool threads in op/s (each u8 x s8 multiply-add counts 2), ~0.2 s,
/// with AVX-512 VNNI dpbusd, else AVX2 maddubs into 16-bit sums, else scalar code.
double measure_peak_ops_int8(ThreadPool& pool);

/// Time for a write of one thread to reach another (seconds, one way): threads 0 and 1 of the pool
/// pass one cache line back and forth `round_trips` times (1..10,000,000, else kInvalidArgument),
/// the median of 5 such runs. Every fork, join and activation a decoding step hands between its
/// threads pays it. On an AMD EPYC it tells where the threads sit: about 20-60 ns within one
/// core complex, 150-250 ns across them (where two threads also get twice the memory bandwidth:
/// each complex has its own link to memory). 0 for a pool of one thread. A run that passes a
/// second stops early; the time is then per round trip made.
double measure_handoff_latency(ThreadPool& pool, int round_trips);

/// The instructions measure_peak_flops_f32 uses here, e.g. "avx512 fma".
const char* peak_flops_f32_method();

/// The instructions measure_peak_ops_int8 uses here, e.g. "avx512 vnni dpbusd".
const char* peak_ops_int8_method();

}  // namespace mixserve::cpu

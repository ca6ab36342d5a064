// Measurements of the machine's physical limits (memory read bandwidth, peak f32 and int8
// arithmetic throughput) that `mixserve bench` compares kernel speeds with.
#pragma once

#include <cstddef>

#include "common/thread_pool.h"

namespace mixserve::cpu {

/// Sustained sequential read bandwidth in bytes/s, all pool threads each streaming over its own
/// slice of a `bytes`-byte buffer (allocated and touched first, untimed); best of `repetitions`.
/// Throws kInvalidArgument for bytes < 4096 or > 64 GiB or repetitions outside [1, 1000], and
/// kResourceExhausted when the buffer cannot be allocated.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int repetitions);

/// Peak f32 multiply-add throughput of all pool threads in flop/s (2 per FMA lane), measured over
/// ~0.2 s with the widest vector FMA this CPU supports.
double measure_peak_flops_f32(ThreadPool& pool);

/// Peak int8 throughput of all pool threads in op/s (each u8 x s8 multiply-add counts 2), ~0.2 s,
/// with AVX-512 VNNI dpbusd, else AVX2 maddubs into 16-bit sums, else scalar code.
double measure_peak_ops_int8(ThreadPool& pool);

/// The instructions measure_peak_flops_f32 uses here, e.g. "avx512 fma".
const char* peak_flops_f32_method();

/// The instructions measure_peak_ops_int8 uses here, e.g. "avx512 vnni dpbusd".
const char* peak_ops_int8_method();

}  // namespace mixserve::cpu

// Internal: the per-ISA inner loops of machine_probe.cpp. The SIMD tables live in files compiled
// for their instruction set; machine_probe.cpp checks cpu_features() before using them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mixserve::cpu::probe {

/// A sequential read loop: returns the sum of p[0, n) (n a multiple of 16) so nothing is elided.
struct ReadLoop {
  const char* name;                         ///< "avx512", "avx2", "scalar"
  double (*sum)(const float* p, size_t n);  ///< reads 4 * n bytes
};

/// An arithmetic throughput loop: `iters` rounds of independent multiply-add chains.
struct ComputeLoop {
  const char* name;              ///< the instructions used, e.g. "avx512 fma"
  double ops_per_iter;           ///< arithmetic operations per round (2 per multiply-add)
  double (*run)(int64_t iters);  ///< returns a value depending on every chain
};

/// How far ahead of each stream the two-stream read loops prefetch (bytes). One sequential stream
/// per thread with only the hardware prefetchers read 20-27% less than two streams side by side
/// with software prefetch when the VM's two vCPUs sat on different core complexes, and 8-12% less
/// when they shared one (Zen 5 VM, 1 GiB read by 2 threads, patterns alternating: 62-64 against
/// 77-79 GB/s, 44 against 50 GB/s); the probe takes the best of both kinds of loop.
constexpr size_t kTwoStreamAhead = 4096;

/// Scalar fallbacks (machine_probe.cpp).
extern const ReadLoop kReadScalar;
extern const ComputeLoop kFmaScalar;
extern const ComputeLoop kInt8Scalar;
/// AVX2 (+FMA) loops (machine_probe_avx2.cpp).
extern const ReadLoop kReadAvx2;
extern const ReadLoop kReadTwoStreamsAvx2;
extern const ComputeLoop kFmaAvx2;
extern const ComputeLoop kInt8Avx2;
/// AVX-512 loops (machine_probe_avx512.cpp); kInt8Avx512Vnni also needs AVX-512 BW and VNNI.
extern const ReadLoop kReadAvx512;
extern const ReadLoop kReadTwoStreamsAvx512;
extern const ComputeLoop kFmaAvx512;
extern const ComputeLoop kInt8Avx512Vnni;

}  // namespace mixserve::cpu::probe

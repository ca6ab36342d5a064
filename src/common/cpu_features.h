// Run-time detection of the x86 vector extensions the CPU kernels can use.
#pragma once

#include <string>

namespace mixserve {

/// Vector instruction sets available on this CPU (and enabled by the OS).
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool avxvnni = false;
};

/// Features of the running CPU, detected once. MIXSERVE_CPU_ISA=scalar|avx2|avx512 caps the level.
const CpuFeatures& cpu_features();
/// Human-readable summary, e.g. "avx2 fma f16c avx512f avx512bw avx512vnni".
std::string cpu_features_string(const CpuFeatures& f);

}  // namespace mixserve

// Software prefetches for the CPU kernels, as asm statements rather than _mm_prefetch:
// * GCC schedules the builtin like any instruction: in the one-token products it moved the second
//   stream's prefetches up among the first stream's arithmetic, while volatile asm statements keep
//   their order, so each row's prefetches go out right before its own group's work (Zen 3,
//   TinyLlama decode, steps alternating between the two in one process: Q4_0 8-11% and Q8_0 5-6%
//   less time per token);
// * GCC 12 deleted every call of a helper whose only effect was the builtin (it counted as const):
//   the attention kernel's prefetches were compiled out that way.
#pragma once

namespace mixserve::cpu {

/// Prefetches the line holding p into every cache level.
inline void prefetch_t0(const void* p) {
  asm volatile("prefetcht0 %a0" : : "p"(p));
}

/// Prefetches the line holding p into the second-level cache (and those below it).
inline void prefetch_t1(const void* p) {
  asm volatile("prefetcht1 %a0" : : "p"(p));
}

/// Prefetches the line holding p, non-temporal (data read once).
inline void prefetch_nta(const void* p) {
  asm volatile("prefetchnta %a0" : : "p"(p));
}

}  // namespace mixserve::cpu

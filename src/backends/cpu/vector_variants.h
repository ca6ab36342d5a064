// Internal: the per-ISA variants behind vector_kernels.h, exposed so tests can check each one.
// Variant entry points expect arguments already validated by the public functions.
#pragma once

#include <cstdint>

#include "backends/cpu/vector_kernels.h"

namespace mixserve::cpu {

/// One implementation of every vector kernel (same contracts as vector_kernels.h).
struct VectorKernelTable {
  const char* name;  ///< "scalar", "avx2" or "avx512"
  /// See mixserve::cpu::rms_norm.
  void (*rms_norm)(const float* x, const float* w, float* y, int64_t n, float eps);
  /// See mixserve::cpu::rope.
  void (*rope)(float* x, int64_t head_dim, int64_t n_heads, int64_t n_rot, int64_t pos, float freq_base, bool neox);
  /// See mixserve::cpu::softmax.
  void (*softmax)(float* x, int64_t n);
  /// See mixserve::cpu::swiglu.
  void (*swiglu)(const float* gate, const float* up, float* y, int64_t n);
  /// See mixserve::cpu::add.
  void (*add)(const float* a, const float* b, float* y, int64_t n);
  /// See mixserve::cpu::attention_head_paged (attention_head is its one-block case).
  void (*attention_head)(const float* q, const float* const* k_blocks, const float* const* v_blocks, int64_t block_rows,
                         int64_t kv_stride, int64_t head_dim, int64_t n_kv, float scale, float* out, float* scratch);
  /// y[i] = exp(x[i]) with the variant's own exp (the one softmax and swiglu use); y may alias x.
  void (*exp)(const float* x, float* y, int64_t n);
  /// See mixserve::cpu::attention_queries_paged: queries over the same keys and values, each the
  /// bits attention_head gives it.
  void (*attention_queries)(const AttentionQueries& a, const float* const* k_blocks, const float* const* v_blocks,
                            int64_t block_rows, int64_t kv_stride, int64_t head_dim, float scale, float* scratch);
  /// attention_head and attention_queries over an f16 cache.
  void (*attention_head_f16)(const float* q, const Half* const* k_blocks, const Half* const* v_blocks,
                             int64_t block_rows, int64_t kv_stride, int64_t head_dim, int64_t n_kv, float scale,
                             float* out, float* scratch);
  void (*attention_queries_f16)(const AttentionQueries& a, const Half* const* k_blocks, const Half* const* v_blocks,
                                int64_t block_rows, int64_t kv_stride, int64_t head_dim, float scale, float* scratch);
  /// attention_head and attention_queries over a Q8_0 cache.
  void (*attention_head_q8_0)(const float* q, const Q8Row* k_blocks, const Q8Row* v_blocks, int64_t block_rows,
                              int64_t kv_stride, int64_t head_dim, int64_t n_kv, float scale, float* out,
                              float* scratch);
  void (*attention_queries_q8_0)(const AttentionQueries& a, const Q8Row* k_blocks, const Q8Row* v_blocks,
                                 int64_t block_rows, int64_t kv_stride, int64_t head_dim, float scale, float* scratch);
  /// See mixserve::cpu::to_half.
  void (*to_half)(const float* x, Half* y, int64_t n);
};

/// attention_queries as one attention_head call per query (for variants without a grouped kernel).
template <auto kAttentionHead, class P>
void attention_queries_one_by_one(const AttentionQueries& a, const P* k_blocks, const P* v_blocks, int64_t block_rows,
                                  int64_t kv_stride, int64_t head_dim, float scale, float* scratch) {
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    for (int64_t h = 0; h < a.n_heads; ++h) {
      const int64_t at = t * a.token_stride + h * a.head_stride;
      kAttentionHead(a.q + at, k_blocks, v_blocks, block_rows, kv_stride, head_dim, a.n_kv + t, scale, a.out + at,
                     scratch);
    }
  }
}

/// The portable scalar kernels (always usable).
extern const VectorKernelTable kVectorKernelsScalar;
/// AVX2+FMA kernels: call only when vector_kernels_avx2() is not null.
extern const VectorKernelTable kVectorKernelsAvx2;
/// AVX-512 (F, BW, VL) kernels: call only when vector_kernels_avx512() is not null.
extern const VectorKernelTable kVectorKernelsAvx512;

/// &kVectorKernelsAvx2 when this CPU (as capped by MIXSERVE_CPU_ISA) can run it, else nullptr.
const VectorKernelTable* vector_kernels_avx2();
/// &kVectorKernelsAvx512 when this CPU (as capped by MIXSERVE_CPU_ISA) can run it, else nullptr.
const VectorKernelTable* vector_kernels_avx512();
/// The table the public functions dispatch to (the best usable one), chosen once.
const VectorKernelTable& active_vector_kernels();

/// cos/sin of the rotary angles for one (pos, n_rot, freq_base), owned by a per-thread cache and
/// valid until the next rope_table call on the same thread.
struct RopeTable {
  const float* cos;         ///< n_rot/2 values: cos(theta_i)
  const float* sin;         ///< n_rot/2 values: sin(theta_i)
  const float* cos_pairs;   ///< n_rot values: cos(theta_i) at 2i and 2i+1 (Llama arrangement)
  const float* sin_signed;  ///< n_rot values: -sin(theta_i) at 2i, +sin(theta_i) at 2i+1
};

/// Angles theta_i = pos * freq_base^(-2i/n_rot), i in [0, n_rot/2), evaluated in double and
/// rounded once to float. n_rot must be even and > 0.
RopeTable rope_table(int64_t pos, int64_t n_rot, float freq_base);

/// Softmax output when no entry exceeds -inf: all zeros (no probability mass anywhere), or all
/// NaN when some entry is NaN.
void softmax_all_masked(float* x, int64_t n);

}  // namespace mixserve::cpu

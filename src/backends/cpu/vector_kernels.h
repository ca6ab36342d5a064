// CPU kernels for the element-wise and row-wise ops of a transformer layer (f32), with SIMD
// variants chosen at run time and scalar fallbacks. Bad sizes or null pointers throw
// mixserve::Error (kInvalidArgument); n = 0 is a no-op.
#pragma once

#include <cstdint>

namespace mixserve::cpu {

/// y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], i in [0, n). y may alias x.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);

/// Rotary position embedding in place on one token: x holds n_heads vectors of head_dim floats.
/// The first n_rot dims of each head rotate by angle pos * freq_base^(-2i/n_rot) for pair i.
/// neox=false pairs (2i, 2i+1) (Llama); neox=true pairs (i, i + n_rot/2) (NeoX, Qwen2).
void rope(float* x, int64_t head_dim, int64_t n_heads, int64_t n_rot, int64_t pos, float freq_base, bool neox);

/// Numerically stable softmax in place over n values. -inf entries (masked) get 0; if every entry
/// is -inf the result is all zeros; a NaN or +inf entry makes the result NaN.
void softmax(float* x, int64_t n);

/// y[i] = silu(gate[i]) * up[i]; silu(g) = g / (1 + exp(-g)). y may alias gate or up.
void swiglu(const float* gate, const float* up, float* y, int64_t n);

/// y[i] = a[i] + b[i]. y may alias a or b.
void add(const float* a, const float* b, float* y, int64_t n);

/// An element of an f16 KV cache: the bits of an IEEE binary16 value (a type of its own, so that
/// the attention kernels' overloads cannot take a bf16 or other 16-bit buffer by mistake).
struct Half {
  uint16_t bits;
};
static_assert(sizeof(Half) == 2, "a Half is two bytes");

/// A position in a row of Q8_0 blocks (the GGUF layout: an fp16 scale d, then 32 int8 values q;
/// element value q * d): the block's address and the element within it. It moves by elements, as a
/// pointer does (+ n, n >= 0); a row of a Q8_0 KV cache starts at a block (at = 0).
struct Q8Row {
  const uint8_t* block = nullptr;
  int64_t at = 0;  ///< element within the block, 0..31

  Q8Row operator+(int64_t n) const {
    const int64_t e = at + n;
    return {block + e / 32 * 34, e % 32};
  }
};

/// y[i] = x[i] rounded to the nearest f16 (ties to even; beyond the f16 range: inf; NaN stays NaN;
/// results below the normal range are subnormal, exactly as quant::f32_to_fp16). y must not
/// overlap x.
void to_half(const float* x, Half* y, int64_t n);

/// Causal attention of one query head: out[head_dim] = sum_j softmax_j(scale * q.k_j) v_j over the
/// n_kv keys/values k_j = k + j * kv_stride, v_j = v + j * kv_stride (floats).
/// scratch must hold n_kv floats. n_kv = 0 gives out = 0.
void attention_head(const float* q, const float* k, const float* v, int64_t kv_stride, int64_t head_dim, int64_t n_kv,
                    float scale, float* out, float* scratch);

/// The same over a paged cache, read in place: key j is k_blocks[j / block_rows] + (j % block_rows) *
/// kv_stride, value j likewise in v_blocks (ceil(n_kv / block_rows) blocks each). block_rows must be
/// a multiple of 4 unless one block holds all n_kv rows. The result is bit-identical to
/// attention_head over the same rows stored contiguously.
void attention_head_paged(const float* q, const float* const* k_blocks, const float* const* v_blocks,
                          int64_t block_rows, int64_t kv_stride, int64_t head_dim, int64_t n_kv, float scale,
                          float* out, float* scratch);

/// The queries of one grouped-query attention call: n_tokens consecutive tokens x n_heads query
/// heads that share their keys and values. Token t attends to the first n_kv + t rows (causal);
/// head h of token t reads q + t * token_stride + h * head_stride (floats) and writes out there.
struct AttentionQueries {
  const float* q = nullptr;
  float* out = nullptr;
  int64_t n_heads = 1;
  int64_t n_tokens = 1;
  int64_t head_stride = 0;   ///< at least head_dim when n_heads > 1
  int64_t token_stride = 0;  ///< at least n_heads * head_dim when n_tokens > 1
  int64_t n_kv = 0;          ///< rows token 0 attends to
};

/// Rows the last token of `a` attends to.
inline int64_t attention_rows(const AttentionQueries& a) {
  return a.n_kv + a.n_tokens - 1;
}

/// attention_head_paged for every query of `a` over the same blocks (which must hold
/// attention_rows(a) rows); scratch must hold n_tokens * n_heads * attention_rows(a) floats. Each
/// query's result is bit-identical to an attention_head_paged call of its own; the queries share
/// each read of the cache rows where the variant can (AVX2, AVX-512).
void attention_queries_paged(const AttentionQueries& a, const float* const* k_blocks, const float* const* v_blocks,
                             int64_t block_rows, int64_t kv_stride, int64_t head_dim, float scale, float* scratch);

/// The same two over an f16 cache (kv_stride in elements): each result is bit-identical to the f32
/// call over the cache's values converted to float (the conversion is exact), the half of the
/// bytes read.
void attention_head_paged(const float* q, const Half* const* k_blocks, const Half* const* v_blocks, int64_t block_rows,
                          int64_t kv_stride, int64_t head_dim, int64_t n_kv, float scale, float* out, float* scratch);
void attention_queries_paged(const AttentionQueries& a, const Half* const* k_blocks, const Half* const* v_blocks,
                             int64_t block_rows, int64_t kv_stride, int64_t head_dim, float scale, float* scratch);

/// The same two over a Q8_0 cache (head_dim and kv_stride multiples of 32, else kInvalidArgument):
/// each result is bit-identical to the f32 call over the cache's values as quant::dequantize_row
/// gives them.
void attention_head_paged(const float* q, const Q8Row* k_blocks, const Q8Row* v_blocks, int64_t block_rows,
                          int64_t kv_stride, int64_t head_dim, int64_t n_kv, float scale, float* out, float* scratch);
void attention_queries_paged(const AttentionQueries& a, const Q8Row* k_blocks, const Q8Row* v_blocks,
                             int64_t block_rows, int64_t kv_stride, int64_t head_dim, float scale, float* scratch);

/// Name of the SIMD variant these kernels use on this CPU ("avx512", "avx2", "scalar").
const char* vector_variant();

}  // namespace mixserve::cpu

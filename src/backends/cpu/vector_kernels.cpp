// Public vector kernels: argument checks, one-time variant choice, the scalar variant and the
// rotary-angle table shared by all variants.
#include "backends/cpu/vector_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/cpu/vector_variants.h"
#include "common/cpu_features.h"
#include "common/error.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

// Chunk of output dims the scalar attention accumulates at once (a double per dim on the stack).
constexpr int64_t kScalarAttentionChunk = 64;

void check_span(const char* op, const char* what, const void* p, int64_t n) {
  if (n < 0) fail(ErrorCode::kInvalidArgument, op, ": ", what, " length ", n, " is negative");
  if (n > 0 && p == nullptr) fail(ErrorCode::kInvalidArgument, op, ": ", what, " is null");
}

// ---- scalar variant: reductions in double, libm exp -------------------------------------------

void rms_norm_scalar(const float* x, const float* w, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const auto scale = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void rope_scalar(float* x, int64_t head_dim, int64_t n_heads, int64_t n_rot, int64_t pos, float freq_base, bool neox) {
  const RopeTable t = rope_table(pos, n_rot, freq_base);
  const int64_t half = n_rot / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* head = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      float* a = neox ? head + i : head + 2 * i;
      float* b = neox ? head + i + half : head + 2 * i + 1;
      const float x0 = *a;
      const float x1 = *b;
      *a = x0 * t.cos[i] - x1 * t.sin[i];
      *b = x1 * t.cos[i] + x0 * t.sin[i];
    }
  }
}

void softmax_scalar(float* x, int64_t n) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) max = std::max(max, x[i]);
  if (max == -std::numeric_limits<float>::infinity()) {
    softmax_all_masked(x, n);
    return;
  }
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const double inv = 1.0 / sum;
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] * inv);
}

// silu(g) = g * sigmoid(g) with sigmoid from e = exp(-|g|): 1/(1+e) for g >= 0, e/(1+e) below,
// so exp never overflows and silu stays accurate down to g ~ -100 (g/(1+exp(-g)) would give 0
// as soon as exp(-g) overflows, at g < -88.7, although the true value is still a normal float).
void swiglu_scalar(const float* gate, const float* up, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float e = std::exp(-std::fabs(g));
    const float sigmoid = (g >= 0.0f ? 1.0f : e) / (1.0f + e);
    y[i] = g * sigmoid * up[i];
  }
}

void add_scalar(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

// Element d of a cache row, as a float (Q8_0: d * q, as quant::dequantize_row computes it).
inline float element(const float* row, int64_t d) {
  return row[d];
}
inline float element(const Half* row, int64_t d) {
  return quant::fp16_to_f32(row[d].bits);
}
inline float element(Q8Row row, int64_t d) {
  const Q8Row e = row + d;
  uint16_t h;
  std::memcpy(&h, e.block, sizeof(h));
  return quant::fp16_to_f32(h) * static_cast<float>(static_cast<int8_t>(e.block[2 + e.at]));
}

template <class P>
void attention_head_scalar(const float* q, const P* k_blocks, const P* v_blocks, int64_t block_rows, int64_t kv_stride,
                           int64_t head_dim, int64_t n_kv, float scale, float* out, float* scratch) {
  const auto row = [&](const P* blocks, int64_t j) { return blocks[j / block_rows] + j % block_rows * kv_stride; };
  for (int64_t j = 0; j < n_kv; ++j) {
    const P kj = row(k_blocks, j);
    double dot = 0.0;
    for (int64_t d = 0; d < head_dim; ++d) dot += static_cast<double>(q[d]) * element(kj, d);
    scratch[j] = static_cast<float>(dot * scale);
  }
  softmax_scalar(scratch, n_kv);
  double acc[kScalarAttentionChunk];
  for (int64_t d0 = 0; d0 < head_dim; d0 += kScalarAttentionChunk) {
    const int64_t len = std::min(kScalarAttentionChunk, head_dim - d0);
    std::fill(acc, acc + len, 0.0);
    for (int64_t j = 0; j < n_kv; ++j) {
      const P vj = row(v_blocks, j) + d0;
      const double p = scratch[j];
      for (int64_t d = 0; d < len; ++d) acc[d] += p * element(vj, d);
    }
    for (int64_t d = 0; d < len; ++d) out[d0 + d] = static_cast<float>(acc[d]);
  }
}

void to_half_scalar(const float* x, Half* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i].bits = quant::f32_to_fp16(x[i]);
}

void exp_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

// ---- rotary table cache -------------------------------------------------------------------------

// Per-thread rotary tables: the frequencies depend on (n_rot, freq_base) only and survive position
// changes; cos/sin are rebuilt when the position changes (once per token: q and k share it).
struct RopeCache {
  int64_t n_rot = 0;
  float freq_base = 0.0f;
  int64_t pos = 0;
  bool angles_valid = false;
  std::vector<double> inv_freq;  // freq_base^(-2i/n_rot)
  std::vector<float> cos, sin, cos_pairs, sin_signed;
};

const VectorKernelTable& choose_variant() {
  if (const auto* t = vector_kernels_avx512()) return *t;
  if (const auto* t = vector_kernels_avx2()) return *t;
  return kVectorKernelsScalar;
}

}  // namespace

const VectorKernelTable kVectorKernelsScalar = {
    "scalar",
    rms_norm_scalar,
    rope_scalar,
    softmax_scalar,
    swiglu_scalar,
    add_scalar,
    attention_head_scalar<const float*>,
    exp_scalar,
    attention_queries_one_by_one<attention_head_scalar<const float*>, const float*>,
    attention_head_scalar<const Half*>,
    attention_queries_one_by_one<attention_head_scalar<const Half*>, const Half*>,
    attention_head_scalar<Q8Row>,
    attention_queries_one_by_one<attention_head_scalar<Q8Row>, Q8Row>,
    to_half_scalar,
};

void softmax_all_masked(float* x, int64_t n) {
  bool any_nan = false;
  for (int64_t i = 0; i < n; ++i) any_nan |= std::isnan(x[i]);
  std::fill(x, x + n, any_nan ? std::numeric_limits<float>::quiet_NaN() : 0.0f);
}

RopeTable rope_table(int64_t pos, int64_t n_rot, float freq_base) {
  thread_local RopeCache cache;
  const auto half = static_cast<size_t>(n_rot / 2);
  if (cache.n_rot != n_rot || cache.freq_base != freq_base) {
    cache.inv_freq.resize(half);
    for (size_t i = 0; i < half; ++i) {
      cache.inv_freq[i] =
          std::pow(static_cast<double>(freq_base), -2.0 * static_cast<double>(i) / static_cast<double>(n_rot));
    }
    cache.cos.resize(half);
    cache.sin.resize(half);
    cache.cos_pairs.resize(2 * half);
    cache.sin_signed.resize(2 * half);
    cache.n_rot = n_rot;
    cache.freq_base = freq_base;
    cache.angles_valid = false;
  }
  if (!cache.angles_valid || cache.pos != pos) {
    for (size_t i = 0; i < half; ++i) {
      // theta_i in double so that cos/sin are accurate to float even at large positions (a float
      // theta near 4096 would already be off by ~2.4e-4 rad); each result is rounded once.
      const double theta = static_cast<double>(pos) * cache.inv_freq[i];
      const auto c = static_cast<float>(std::cos(theta));
      const auto s = static_cast<float>(std::sin(theta));
      cache.cos[i] = c;
      cache.sin[i] = s;
      cache.cos_pairs[2 * i] = c;
      cache.cos_pairs[2 * i + 1] = c;
      cache.sin_signed[2 * i] = -s;
      cache.sin_signed[2 * i + 1] = s;
    }
    cache.pos = pos;
    cache.angles_valid = true;
  }
  return {cache.cos.data(), cache.sin.data(), cache.cos_pairs.data(), cache.sin_signed.data()};
}

const VectorKernelTable* vector_kernels_avx2() {
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.f16c ? &kVectorKernelsAvx2 : nullptr;  // F16C: f16 caches
}

const VectorKernelTable* vector_kernels_avx512() {
  // The AVX-512 file is compiled with VNNI/BF16 enabled too, but its float code has no integer
  // dot products or bf16 conversions for the compiler to turn into those instructions.
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vl && f.avx2 && f.fma && f.f16c ? &kVectorKernelsAvx512 : nullptr;
}

const VectorKernelTable& active_vector_kernels() {
  static const VectorKernelTable& table = choose_variant();
  return table;
}

const char* vector_variant() {
  return active_vector_kernels().name;
}

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  check_span("rms_norm", "x", x, n);
  check_span("rms_norm", "w", w, n);
  check_span("rms_norm", "y", y, n);
  if (!(eps >= 0.0f) || !std::isfinite(eps)) {
    fail(ErrorCode::kInvalidArgument, "rms_norm: eps ", eps, " must be finite and >= 0");
  }
  if (n == 0) return;
  active_vector_kernels().rms_norm(x, w, y, n, eps);
}

void rope(float* x, int64_t head_dim, int64_t n_heads, int64_t n_rot, int64_t pos, float freq_base, bool neox) {
  if (head_dim <= 0 || n_heads < 0) {
    fail(ErrorCode::kInvalidArgument, "rope: head_dim ", head_dim, " must be > 0 and n_heads ", n_heads, " >= 0");
  }
  if (n_rot < 0 || n_rot > head_dim || n_rot % 2 != 0) {
    fail(ErrorCode::kInvalidArgument, "rope: n_rot ", n_rot, " must be even and within [0, head_dim = ", head_dim, "]");
  }
  if (!(freq_base > 0.0f) || !std::isfinite(freq_base)) {
    fail(ErrorCode::kInvalidArgument, "rope: freq_base ", freq_base, " must be finite and > 0");
  }
  if (n_heads > std::numeric_limits<int64_t>::max() / head_dim) {
    fail(ErrorCode::kInvalidArgument, "rope: n_heads * head_dim overflows");
  }
  check_span("rope", "x", x, n_heads * head_dim);
  if (n_rot == 0 || n_heads == 0) return;
  active_vector_kernels().rope(x, head_dim, n_heads, n_rot, pos, freq_base, neox);
}

void softmax(float* x, int64_t n) {
  check_span("softmax", "x", x, n);
  if (n == 0) return;
  active_vector_kernels().softmax(x, n);
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
  check_span("swiglu", "gate", gate, n);
  check_span("swiglu", "up", up, n);
  check_span("swiglu", "y", y, n);
  if (n == 0) return;
  active_vector_kernels().swiglu(gate, up, y, n);
}

void add(const float* a, const float* b, float* y, int64_t n) {
  check_span("add", "a", a, n);
  check_span("add", "b", b, n);
  check_span("add", "y", y, n);
  if (n == 0) return;
  active_vector_kernels().add(a, b, y, n);
}

void attention_head(const float* q, const float* k, const float* v, int64_t kv_stride, int64_t head_dim, int64_t n_kv,
                    float scale, float* out, float* scratch) {
  check_span("attention_head", "k", k, n_kv);
  check_span("attention_head", "v", v, n_kv);
  attention_head_paged(q, &k, &v, std::max<int64_t>(n_kv, 1), kv_stride, head_dim, n_kv, scale, out, scratch);
}

namespace {

// The checks both attention entry points make (see attention_queries_paged). Returns false when
// there is nothing to attend to (every output zeroed).
bool is_null(const float* p) {
  return p == nullptr;
}
bool is_null(const Half* p) {
  return p == nullptr;
}
bool is_null(Q8Row p) {
  return p.block == nullptr || p.at != 0;  // a row starts at a block
}

template <class P>
bool check_attention(const AttentionQueries& a, const P* k_blocks, const P* v_blocks, int64_t block_rows,
                     int64_t kv_stride, int64_t head_dim, float scale, const float* scratch) {
  if (head_dim <= 0) fail(ErrorCode::kInvalidArgument, "attention_head: head_dim ", head_dim, " <= 0");
  if (a.n_kv < 0) fail(ErrorCode::kInvalidArgument, "attention_head: n_kv ", a.n_kv, " is negative");
  if (a.n_heads < 1 || a.n_tokens < 1) {
    fail(ErrorCode::kInvalidArgument, "attention_queries: ", a.n_tokens, " tokens of ", a.n_heads, " heads");
  }
  if ((a.n_heads > 1 && a.head_stride < head_dim) || (a.n_tokens > 1 && a.token_stride < a.n_heads * head_dim)) {
    fail(ErrorCode::kInvalidArgument, "attention_queries: strides of ", a.head_stride, " (heads) and ", a.token_stride,
         " (tokens) floats overlap ", a.n_heads, " heads of ", head_dim);
  }
  if (kv_stride < head_dim) {
    fail(ErrorCode::kInvalidArgument, "attention_head: kv_stride ", kv_stride, " is smaller than head_dim ", head_dim);
  }
  if (!std::isfinite(scale)) fail(ErrorCode::kInvalidArgument, "attention_head: scale is not finite");
  const int64_t rows = attention_rows(a);
  if (block_rows <= 0 || (block_rows < rows && block_rows % 4 != 0)) {
    fail(ErrorCode::kInvalidArgument, "attention_head: ", block_rows,
         " rows per block is neither a multiple of 4 nor all of the ", rows, " rows");
  }
  const int64_t last = (a.n_tokens - 1) * a.token_stride + (a.n_heads - 1) * a.head_stride + head_dim;
  check_span("attention_head", "q", a.q, last);
  check_span("attention_head", "out", a.out, last);
  check_span("attention_head", "scratch", scratch, a.n_tokens * a.n_heads * rows);
  const int64_t n_blocks = (rows + block_rows - 1) / block_rows;
  check_span("attention_head", "k blocks", k_blocks, n_blocks);
  check_span("attention_head", "v blocks", v_blocks, n_blocks);
  for (int64_t b = 0; b < n_blocks; ++b) {
    if (is_null(k_blocks[b]) || is_null(v_blocks[b])) {
      fail(ErrorCode::kInvalidArgument, "attention_head: block ", b, " is null");
    }
  }
  if (a.n_kv > 0) return true;
  // Token 0 attends to nothing (no probability mass anywhere): zeros; the others to rows.
  for (int64_t h = 0; h < a.n_heads; ++h) std::fill_n(a.out + h * a.head_stride, head_dim, 0.0f);
  return false;
}

// A Q8_0 cache's heads and rows must start at blocks.
void check_q8_0_rows(int64_t head_dim, int64_t kv_stride) {
  if (head_dim % 32 != 0 || kv_stride % 32 != 0) {
    fail(ErrorCode::kInvalidArgument, "attention_head: a Q8_0 cache needs head_dim (", head_dim, ") and kv_stride (",
         kv_stride, ") that are multiples of 32");
  }
}

// The variant's kernels for caches of f32, f16 or Q8_0 elements (chosen by the row pointer type).
auto head_kernel(const float* const*) {
  return active_vector_kernels().attention_head;
}
auto head_kernel(const Half* const*) {
  return active_vector_kernels().attention_head_f16;
}
auto queries_kernel(const float* const*) {
  return active_vector_kernels().attention_queries;
}
auto queries_kernel(const Half* const*) {
  return active_vector_kernels().attention_queries_f16;
}
auto head_kernel(const Q8Row*) {
  return active_vector_kernels().attention_head_q8_0;
}
auto queries_kernel(const Q8Row*) {
  return active_vector_kernels().attention_queries_q8_0;
}

template <class P>
void head_paged(const float* q, const P* k_blocks, const P* v_blocks, int64_t block_rows, int64_t kv_stride,
                int64_t head_dim, int64_t n_kv, float scale, float* out, float* scratch) {
  const AttentionQueries a{.q = q, .out = out, .n_kv = n_kv};
  if (!check_attention(a, k_blocks, v_blocks, block_rows, kv_stride, head_dim, scale, scratch)) return;
  head_kernel(k_blocks)(q, k_blocks, v_blocks, block_rows, kv_stride, head_dim, n_kv, scale, out, scratch);
}

template <class P>
void queries_paged(const AttentionQueries& a, const P* k_blocks, const P* v_blocks, int64_t block_rows,
                   int64_t kv_stride, int64_t head_dim, float scale, float* scratch) {
  const auto queries = queries_kernel(k_blocks);
  if (check_attention(a, k_blocks, v_blocks, block_rows, kv_stride, head_dim, scale, scratch)) {
    queries(a, k_blocks, v_blocks, block_rows, kv_stride, head_dim, scale, scratch);
    return;
  }
  if (a.n_tokens == 1) return;
  AttentionQueries rest = a;  // the tokens after the first attend to at least one row
  rest.q += a.token_stride;
  rest.out += a.token_stride;
  rest.n_tokens -= 1;
  rest.n_kv = 1;
  queries(rest, k_blocks, v_blocks, block_rows, kv_stride, head_dim, scale, scratch);
}

}  // namespace

void attention_head_paged(const float* q, const float* const* k_blocks, const float* const* v_blocks,
                          int64_t block_rows, int64_t kv_stride, int64_t head_dim, int64_t n_kv, float scale,
                          float* out, float* scratch) {
  head_paged(q, k_blocks, v_blocks, block_rows, kv_stride, head_dim, n_kv, scale, out, scratch);
}

void attention_head_paged(const float* q, const Half* const* k_blocks, const Half* const* v_blocks, int64_t block_rows,
                          int64_t kv_stride, int64_t head_dim, int64_t n_kv, float scale, float* out, float* scratch) {
  head_paged(q, k_blocks, v_blocks, block_rows, kv_stride, head_dim, n_kv, scale, out, scratch);
}

void attention_queries_paged(const AttentionQueries& a, const float* const* k_blocks, const float* const* v_blocks,
                             int64_t block_rows, int64_t kv_stride, int64_t head_dim, float scale, float* scratch) {
  queries_paged(a, k_blocks, v_blocks, block_rows, kv_stride, head_dim, scale, scratch);
}

void attention_queries_paged(const AttentionQueries& a, const Half* const* k_blocks, const Half* const* v_blocks,
                             int64_t block_rows, int64_t kv_stride, int64_t head_dim, float scale, float* scratch) {
  queries_paged(a, k_blocks, v_blocks, block_rows, kv_stride, head_dim, scale, scratch);
}

void attention_head_paged(const float* q, const Q8Row* k_blocks, const Q8Row* v_blocks, int64_t block_rows,
                          int64_t kv_stride, int64_t head_dim, int64_t n_kv, float scale, float* out, float* scratch) {
  check_q8_0_rows(head_dim, kv_stride);
  head_paged(q, k_blocks, v_blocks, block_rows, kv_stride, head_dim, n_kv, scale, out, scratch);
}

void attention_queries_paged(const AttentionQueries& a, const Q8Row* k_blocks, const Q8Row* v_blocks,
                             int64_t block_rows, int64_t kv_stride, int64_t head_dim, float scale, float* scratch) {
  check_q8_0_rows(head_dim, kv_stride);
  queries_paged(a, k_blocks, v_blocks, block_rows, kv_stride, head_dim, scale, scratch);
}

void to_half(const float* x, Half* y, int64_t n) {
  check_span("to_half", "x", x, n);
  check_span("to_half", "y", y, n);
  if (n == 0) return;
  active_vector_kernels().to_half(x, y, n);
}

}  // namespace mixserve::cpu

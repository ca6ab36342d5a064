// The operations a backend executes. The engine builds a list of Ops per forward step; devices
// declare which they support (supports_op) and streams run them.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "hal/tensor.h"

namespace mixserve::hal {

/// Operation kinds. Shapes use ne[0] as the innermost dimension; T = number of tokens.
enum class OpKind {
  kGetRows,    ///< dst[d, T] (f32) = src0[d, V] rows selected by ids (i32 [T] in src1)
  kMatMul,     ///< dst[N, T] (f32) = src0[K, N] (weights, any computable type) x src1[K, T] (f32)
  kAdd,        ///< dst = src0 + src1 (f32, same shape; src1 may have one row that is broadcast)
  kRmsNorm,    ///< dst[d, T] = src0[d, T] / rms(row) * src1[d] (weight); f0 = eps
  kRope,       ///< in place on dst = src0 [head_dim, heads, T]; positions from i0 (first pos);
               ///< i1 = n_rot dims, i2 = mode (0 normal pairs (2i,2i+1), 1 NeoX (i, i+n/2)); f0 = freq_base
  kSwiGLU,     ///< dst[n, T] = silu(src0) * src1
  kAttention,  ///< dst[head_dim*H, T] = causal softmax(q k^T * f0) v, q = src0 [head_dim, H, T],
               ///< k = src1 / v = src2 cache [head_dim*Hkv, rows]; i0 = position of token 0,
               ///< i1 = Hkv (grouped-query heads); keys [0, i0 + t] are visible to token t. Paged:
               ///< src3 = block table (i32 [n]), i2 = rows per block; key j is cache row
               ///< table[j / i2] * i2 + j % i2 (without src3, key j is row j)
  kStoreKV,    ///< copy src0 [w, T] (f32) into rows [i0, i0+T) of dst [w, rows] (the KV cache);
               ///< paged: src1 = block table (i32), i1 = rows per block, mapping rows as attention does
};

/// Name of an op kind ("mat_mul").
std::string_view op_name(OpKind kind);

/// One operation with its operands and scalar parameters.
struct Op {
  OpKind kind = OpKind::kAdd;
  Tensor* dst = nullptr;                         ///< output (written)
  std::array<const Tensor*, 4> src = {nullptr, nullptr, nullptr, nullptr};  ///< inputs, kind-specific
  std::array<float, 2> f = {0.0f, 0.0f};         ///< float parameters, kind-specific
  std::array<int64_t, 3> i = {0, 0, 0};          ///< integer parameters, kind-specific
  int32_t layer = -1;  ///< transformer block the op belongs to (-1: embedding/output); for layer splits
};

/// An op of `kind` writing `dst` from up to four sources; parameters are set by the caller.
inline Op make_op(OpKind kind, Tensor* dst, const Tensor* a, const Tensor* b = nullptr,
                  const Tensor* c = nullptr, const Tensor* d = nullptr) {
  Op op;
  op.kind = kind;
  op.dst = dst;
  op.src = {a, b, c, d};
  return op;
}

}  // namespace mixserve::hal

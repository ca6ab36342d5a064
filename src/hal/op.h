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
               ///< k = src1 / v = src2 cache [head_dim*Hkv, ctx]; i0 = position of token 0,
               ///< i1 = Hkv (grouped-query heads); keys [0, i0 + t] are visible to token t
  kStoreKV,    ///< copy src0 [w, T] (f32) into rows [i0, i0+T) of dst [w, ctx] (the KV cache)
};

/// Name of an op kind ("mat_mul").
std::string_view op_name(OpKind kind);

/// One operation with its operands and scalar parameters.
struct Op {
  OpKind kind = OpKind::kAdd;
  Tensor* dst = nullptr;                         ///< output (written)
  std::array<const Tensor*, 3> src = {nullptr, nullptr, nullptr};  ///< inputs, kind-specific
  std::array<float, 2> f = {0.0f, 0.0f};         ///< float parameters, kind-specific
  std::array<int64_t, 3> i = {0, 0, 0};          ///< integer parameters, kind-specific
  int32_t layer = -1;  ///< transformer block the op belongs to (-1: embedding/output); for layer splits
};

/// An op of `kind` writing `dst` from up to three sources; parameters are set by the caller.
inline Op make_op(OpKind kind, Tensor* dst, const Tensor* a, const Tensor* b = nullptr,
                  const Tensor* c = nullptr) {
  Op op;
  op.kind = kind;
  op.dst = dst;
  op.src = {a, b, c};
  return op;
}

}  // namespace mixserve::hal

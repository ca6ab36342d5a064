// CPU matrix kernels for the weight formats F32, F16, BF16, Q8_0 and Q4_0, with scalar, AVX2/FMA
// and AVX-512 variants chosen at run time (see cpu_features()).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"

namespace mixserve::cpu {

/// Format the activations are converted to before a product with weights of `wtype`:
/// Q8_0 for Q8_0/Q4_0 weights (integer dot products), F32 for F32/F16/BF16 weights.
DType activation_type(DType wtype);

/// Converts one activation row of k floats to activation_type(wtype) in `dst`
/// (dtype_row_bytes(activation_type(wtype), k) bytes).
void convert_activation(DType wtype, const float* x, void* dst, int64_t k);

/// y[t * y_stride + r] = sum_j W[r, j] * X[t, j] for rows r in [r0, r1) and tokens t in [0, n_tok).
/// W: weights of `wtype`, row r at w + r * w_row_bytes, k elements per row.
/// X: activations already converted by convert_activation, token t at x + t * x_row_bytes.
/// Every output is bit-identical whatever n_tok, r0 and r1 are (so one token alone, a batch, and
/// any split of rows between threads agree exactly).
void matmul_rows(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                 const void* x, size_t x_row_bytes, int64_t n_tok, float* y, int64_t y_stride);

/// Whether this CPU's kernels multiply packed rows (weight_packing.h) of `wtype` with k elements,
/// rows w_row_bytes apart. Such weights may be packed with pack_rows and then go to
/// matmul_packed_rows only.
bool packed_matmul_available(DType wtype, int64_t k, size_t w_row_bytes);

/// matmul_rows for weights packed by pack_rows; requires packed_matmul_available. The outputs are
/// bit-identical to matmul_rows' on the same weights unpacked.
void matmul_packed_rows(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                        const void* x, size_t x_row_bytes, int64_t n_tok, float* y, int64_t y_stride);

/// Whether this CPU's kernels for `wtype` take a product of a small batch (2 to 16 tokens: sequences
/// decoding together) in many small calls at little cost: true where they prepare a batch's
/// activations once per thread and product, false where every call prepares them again (a product
/// is then best split into few calls).
bool matmul_batch_splits_finely(DType wtype);

/// Name of the kernel variant matmul_rows uses for `wtype` on this CPU ("avx512", "avx2", "scalar").
const char* matmul_variant(DType wtype);

}  // namespace mixserve::cpu

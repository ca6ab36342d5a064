// Internal: the per-ISA implementations behind matmul_kernels.h, exposed so tests can run each.
// Variant entry points expect arguments already validated by the public functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/dtype.h"

namespace mixserve::cpu {

/// One implementation of the matmul kernels (same contracts as matmul_kernels.h).
struct MatmulKernelTable {
  const char* name;  ///< "scalar", "avx2" or "avx512"
  /// See mixserve::cpu::convert_activation. Every variant writes the same bytes for finite input.
  void (*convert_activation)(DType wtype, const float* x, void* dst, int64_t k);
  /// See mixserve::cpu::matmul_rows; wtype is one of F32, F16, BF16, Q8_0, Q4_0.
  void (*matmul_rows)(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0,
                      int64_t r1, const void* x, size_t x_row_bytes, int64_t n_tok, float* y,
                      int64_t y_stride);
  /// See mixserve::cpu::matmul_packed_rows; nullptr when the variant has no packed kernels.
  void (*matmul_packed_rows)(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                             const void* x, size_t x_row_bytes, int64_t n_tok, float* y, int64_t y_stride);
  /// See mixserve::cpu::matmul_batch_splits_finely, for Q8_0 and Q4_0 weights.
  bool quant_batch_splits_finely;
  /// Whether matmul_packed_rows takes packed rows that end in a partial group (k % 512 != 0).
  bool packed_tail_blocks;
};

/// The portable scalar kernels (always usable).
extern const MatmulKernelTable kMatmulKernelsScalar;
/// AVX2+FMA+F16C kernels: call only when matmul_kernels_avx2() is not null.
extern const MatmulKernelTable kMatmulKernelsAvx2;
/// AVX-512 (F, BW, VL, VNNI) kernels: call only when matmul_kernels_avx512() is not null.
extern const MatmulKernelTable kMatmulKernelsAvx512;

/// &kMatmulKernelsAvx2 when this CPU (as capped by MIXSERVE_CPU_ISA) can run it, else nullptr.
const MatmulKernelTable* matmul_kernels_avx2();
/// &kMatmulKernelsAvx512 when this CPU (as capped by MIXSERVE_CPU_ISA) can run it, else nullptr.
const MatmulKernelTable* matmul_kernels_avx512();
/// Every table this CPU can run, scalar first.
std::vector<const MatmulKernelTable*> usable_matmul_kernels();
/// The table the public functions dispatch to (the best usable one), chosen once.
const MatmulKernelTable& active_matmul_kernels();

/// The AVX-512 VNNI kernels for Q8_0/Q4_0 weights behind kMatmulKernelsAvx512 (same contract as
/// matmul_rows; `packed`: the rows are in the layout of weight_packing.h); call only when
/// matmul_kernels_avx512() is not null.
void matmul_quant_avx512(DType wtype, bool packed, int64_t k, const void* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                         const void* x, size_t x_row_bytes, int64_t n_tok, float* y, int64_t y_stride);

/// The AVX2 kernels for Q8_0/Q4_0 weights behind kMatmulKernelsAvx2 (matmul_quant_avx2.cpp), same
/// contract and, under the arithmetic of matmul_quant_avx512.h, the same bits as
/// matmul_quant_avx512; call only when matmul_kernels_avx2() is not null.
void matmul_quant_avx2(DType wtype, bool packed, int64_t k, const void* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                       const void* x, size_t x_row_bytes, int64_t n_tok, float* y, int64_t y_stride);

/// A 64-byte aligned per-thread scratch area of at least `bytes` bytes: one per `slot` (0 or 1) and
/// thread, zero when first allocated or grown, and keeping its contents between calls that do not
/// grow it. Lives in generic code so SIMD files instantiate no shared library templates.
void* matmul_scratch(size_t bytes, int slot = 0);

/// A per-thread memo of activations arranged for a kernel: the work items of one product multiply
/// the same activations, so each thread arranges them once per product, not once per item. Returns
/// a 64-byte aligned area of `arranged_bytes` (in scratch slot 1) and whether it already holds what
/// the arrangement named by `arranger` (the address of a tag object of the kernel's) made of exactly
/// these n_tok rows of row_bytes bytes (xrb apart), compared in full. When it does not, the caller
/// must fill it before the next call.
struct ArrangedArea {
  void* data;
  bool valid;
};
ArrangedArea arranged_activations(const void* arranger, const uint8_t* x, size_t xrb, size_t row_bytes, int64_t n_tok,
                                  size_t arranged_bytes);

}  // namespace mixserve::cpu

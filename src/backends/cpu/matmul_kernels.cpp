#include "backends/cpu/matmul_kernels.h"

#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "backends/cpu/matmul_variants.h"
#include "backends/cpu/weight_packing.h"
#include "common/cpu_features.h"
#include "common/error.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

bool is_matmul_type(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kQ8_0 ||
         t == DType::kQ4_0;
}

void check_type(DType wtype, const char* what) {
  if (!is_matmul_type(wtype)) {
    fail(ErrorCode::kUnimplemented, what, ": no CPU matmul kernel for weights of type ",
         dtype_name(wtype), " (f32, f16, bf16, q8_0 and q4_0 are supported)");
  }
}

// Bytes of one row of k elements of `type`, or a kInvalidArgument error naming `what`.
size_t row_bytes_or_fail(DType type, int64_t k, const char* what) {
  const auto bytes = dtype_row_bytes(type, k);
  if (k <= 0 || !bytes) {
    fail(ErrorCode::kInvalidArgument, what, ": k = ", k, " is not a positive multiple of the ",
         dtype_name(type), " block size ", dtype_info(type).block_elems);
  }
  return *bytes;
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

const MatmulKernelTable* matmul_kernels_avx2() {
  const CpuFeatures& f = cpu_features();
  return f.avx2 && f.fma && f.f16c ? &kMatmulKernelsAvx2 : nullptr;
}

const MatmulKernelTable* matmul_kernels_avx512() {
  const CpuFeatures& f = cpu_features();
  const bool ok = f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni && f.avx2 && f.fma && f.f16c;
  return ok ? &kMatmulKernelsAvx512 : nullptr;
}

std::vector<const MatmulKernelTable*> usable_matmul_kernels() {
  std::vector<const MatmulKernelTable*> out{&kMatmulKernelsScalar};
  if (const auto* t = matmul_kernels_avx2()) out.push_back(t);
  if (const auto* t = matmul_kernels_avx512()) out.push_back(t);
  return out;
}

const MatmulKernelTable& active_matmul_kernels() {
  static const MatmulKernelTable* const table = [] {
    if (const auto* t = matmul_kernels_avx512()) return t;
    if (const auto* t = matmul_kernels_avx2()) return t;
    return &kMatmulKernelsScalar;
  }();
  return *table;
}

void* matmul_scratch(size_t bytes, int slot) {
  constexpr int kSlots = 2;
  MIXSERVE_CHECK(slot >= 0 && slot < kSlots, "matmul_scratch: slot ", slot, " out of range");
  thread_local std::unique_ptr<void, FreeDeleter> buffers[kSlots];
  thread_local size_t capacities[kSlots] = {};
  auto& buffer = buffers[slot];
  size_t& capacity = capacities[slot];
  if (bytes > capacity) {
    const size_t rounded = (bytes + 4095) / 4096 * 4096;
    buffer.reset();
    void* p = std::aligned_alloc(64, rounded);
    if (p == nullptr) {
      capacity = 0;
      fail(ErrorCode::kResourceExhausted, "matmul: cannot allocate ", rounded, " bytes of scratch");
    }
    std::memset(p, 0, rounded);
    buffer.reset(p);
    capacity = rounded;
  }
  return buffer.get();
}

ArrangedArea arranged_activations(const void* arranger, const uint8_t* x, size_t xrb, size_t row_bytes, int64_t n_tok,
                                  size_t arranged_bytes) {
  struct alignas(64) Header {
    const void* arranger;
    size_t row_bytes, arranged_bytes;
    int64_t n_tok;
  };
  const size_t area = (arranged_bytes + 63) / 64 * 64;
  auto* base = static_cast<uint8_t*>(matmul_scratch(sizeof(Header) + area + row_bytes * static_cast<size_t>(n_tok), 1));
  auto* header = reinterpret_cast<Header*>(base);
  uint8_t* data = base + sizeof(Header);
  uint8_t* key = data + area;
  bool same = header->arranger == arranger && header->row_bytes == row_bytes && header->n_tok == n_tok &&
              header->arranged_bytes == arranged_bytes;
  for (int64_t t = 0; same && t < n_tok; ++t) same = std::memcmp(key + t * row_bytes, x + t * xrb, row_bytes) == 0;
  if (same) return {data, true};
  for (int64_t t = 0; t < n_tok; ++t) std::memcpy(key + t * row_bytes, x + t * xrb, row_bytes);
  *header = {arranger, row_bytes, arranged_bytes, n_tok};
  return {data, false};
}

DType activation_type(DType wtype) {
  check_type(wtype, "activation_type");
  return wtype == DType::kQ8_0 || wtype == DType::kQ4_0 ? DType::kQ8_0 : DType::kF32;
}

void convert_activation(DType wtype, const float* x, void* dst, int64_t k) {
  const DType act = activation_type(wtype);
  row_bytes_or_fail(act, k, "convert_activation");
  if (x == nullptr || dst == nullptr) fail(ErrorCode::kInvalidArgument, "convert_activation: null pointer");
  active_matmul_kernels().convert_activation(wtype, x, dst, k);
}

namespace {

// Checks the arguments of a product; false when there is nothing to compute.
bool check_matmul(const char* what, DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                  const void* x, size_t x_row_bytes, int64_t n_tok, const float* y, int64_t y_stride) {
  check_type(wtype, what);
  const size_t need_w = row_bytes_or_fail(wtype, k, what);
  const size_t need_x = row_bytes_or_fail(activation_type(wtype), k, what);
  if (r0 < 0 || r1 < r0 || n_tok < 0) {
    fail(ErrorCode::kInvalidArgument, what, ": bad ranges rows [", r0, ", ", r1, ") n_tok ", n_tok);
  }
  if (r0 == r1 || n_tok == 0) return false;
  if (w_row_bytes < need_w || x_row_bytes < need_x || (n_tok > 1 && y_stride < r1)) {
    fail(ErrorCode::kInvalidArgument, what, ": strides too small (w ", w_row_bytes, " < ", need_w, ", x ", x_row_bytes,
         " < ", need_x, ", or y ", y_stride, " < ", r1, ")");
  }
  if (w == nullptr || x == nullptr || y == nullptr) fail(ErrorCode::kInvalidArgument, what, ": null pointer");
  return true;
}

}  // namespace

void matmul_rows(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0, int64_t r1, const void* x,
                 size_t x_row_bytes, int64_t n_tok, float* y, int64_t y_stride) {
  if (!check_matmul("matmul_rows", wtype, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n_tok, y, y_stride)) return;
  active_matmul_kernels().matmul_rows(wtype, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n_tok, y,
                                      y_stride);
}

bool packed_matmul_available(DType wtype, int64_t k, size_t w_row_bytes) {
  // The packed prefill kernels gather a tile's 16 rows with 32-bit offsets.
  const MatmulKernelTable& kernels = active_matmul_kernels();
  return kernels.matmul_packed_rows != nullptr && packable_rows(wtype, k) &&
         (k % (quant::kQK * kPackGroupBlocks) == 0 || kernels.packed_tail_blocks) &&
         w_row_bytes <= static_cast<size_t>(INT32_MAX / 16);
}

void matmul_packed_rows(DType wtype, int64_t k, const void* w, size_t w_row_bytes, int64_t r0, int64_t r1,
                        const void* x, size_t x_row_bytes, int64_t n_tok, float* y, int64_t y_stride) {
  if (!packed_matmul_available(wtype, k, w_row_bytes)) {
    fail(ErrorCode::kInvalidArgument, "matmul_packed_rows: no packed kernel for ", dtype_name(wtype), " rows of ", k,
         " elements on this CPU (", active_matmul_kernels().name, ")");
  }
  if (!check_matmul("matmul_packed_rows", wtype, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n_tok, y, y_stride)) return;
  active_matmul_kernels().matmul_packed_rows(wtype, k, w, w_row_bytes, r0, r1, x, x_row_bytes, n_tok, y, y_stride);
}

bool matmul_batch_splits_finely(DType wtype) {
  check_type(wtype, "matmul_batch_splits_finely");
  return (wtype == DType::kQ8_0 || wtype == DType::kQ4_0) && active_matmul_kernels().quant_batch_splits_finely;
}

const char* matmul_variant(DType wtype) {
  check_type(wtype, "matmul_variant");
  return active_matmul_kernels().name;
}

}  // namespace mixserve::cpu

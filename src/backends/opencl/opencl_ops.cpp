#include "backends/opencl/opencl_ops.h"

#include <limits>

#include "common/error.h"

namespace mixserve::opencl {
namespace {

// Kernels index rows, tokens and widths with 32-bit ints.
constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();

bool is_f32(const hal::Tensor* t) { return t != nullptr && t->dtype == DType::kF32; }

bool fits(const hal::Tensor& t) {
  for (int64_t n : t.ne) {
    if (n < 0 || n > kMaxDim) return false;
  }
  return t.elements() >= 0;
}

// Float tensors are addressed in elements, so their byte offsets must be multiples of 4;
// f16 and Q8_0/Q4_0 weights read fp16 values, which need 2-byte alignment.
bool aligned(const hal::Tensor& t) {
  const size_t unit = t.dtype == DType::kF32 ? 4 : 2;
  return t.offset % unit == 0;
}

std::optional<std::string> check_operands(const hal::Op& op, int n_src) {
  if (!is_f32(op.dst)) return std::string("the output must be f32");
  for (int i = 0; i < n_src; ++i) {
    const hal::Tensor* src = op.src[static_cast<size_t>(i)];
    if (src == nullptr) return str_cat("source ", i, " is missing");
  }
  for (size_t i = static_cast<size_t>(n_src); i < op.src.size(); ++i) {
    if (op.src[i] != nullptr) return str_cat("source ", i, " is unexpected");
  }
  for (int i = 0; i < n_src; ++i) {
    const hal::Tensor& src = *op.src[static_cast<size_t>(i)];
    if (!fits(src)) return str_cat("source ", i, " shape ", src.shape_string(), " is out of range");
    if (!aligned(src)) return str_cat("source ", i, " offset ", src.offset, " is misaligned");
  }
  if (!fits(*op.dst)) return str_cat("output shape ", op.dst->shape_string(), " is out of range");
  if (!aligned(*op.dst)) return str_cat("output offset ", op.dst->offset, " is misaligned");
  return std::nullopt;
}

std::optional<std::string> mat_mul_reason(const hal::Op& op) {
  const hal::Tensor& w = *op.src[0];
  const hal::Tensor& x = *op.src[1];
  const bool quantised = w.dtype == DType::kQ8_0 || w.dtype == DType::kQ4_0;
  if (w.dtype != DType::kF32 && w.dtype != DType::kF16 && !quantised) {
    return str_cat("weights of type ", dtype_name(w.dtype), " (f32, f16, q8_0 and q4_0 are supported)");
  }
  if (!is_f32(&x)) return str_cat("activations of type ", dtype_name(x.dtype), " (f32 is supported)");
  const int64_t k = w.ne[0];
  if (k <= 0 || (quantised && k % 32 != 0)) return str_cat("row length ", k, " of ", dtype_name(w.dtype));
  if (w.rows() > kMaxDim || x.rows() > kMaxDim) return std::string("too many rows");
  if (x.ne[0] != k || op.dst->ne[0] != w.rows() || op.dst->rows() != x.rows()) {
    return str_cat("shapes ", w.shape_string(), " x ", x.shape_string(), " -> ", op.dst->shape_string());
  }
  return std::nullopt;
}

std::optional<std::string> binary_reason(const hal::Op& op) {
  const hal::Tensor& a = *op.src[0];
  const hal::Tensor& b = *op.src[1];
  if (!is_f32(&a) || !is_f32(&b)) return std::string("sources must be f32");
  const hal::Tensor& y = *op.dst;
  switch (op.kind) {
    case hal::OpKind::kAdd:
      if (b.ne[0] != a.ne[0] || (b.rows() != a.rows() && b.rows() != 1) || y.ne[0] != a.ne[0] ||
          y.rows() != a.rows()) {
        return str_cat("shapes ", a.shape_string(), " + ", b.shape_string(), " -> ", y.shape_string());
      }
      return std::nullopt;
    case hal::OpKind::kRmsNorm:
      if (a.ne[0] <= 0 || b.elements() != a.ne[0] || y.ne[0] != a.ne[0] || y.rows() != a.rows()) {
        return str_cat("shapes ", a.shape_string(), " weight ", b.shape_string(), " -> ", y.shape_string());
      }
      return std::nullopt;
    default:  // kSwiGLU
      if (b.elements() != a.elements() || y.elements() != a.elements()) {
        return str_cat("shapes ", a.shape_string(), " * ", b.shape_string(), " -> ", y.shape_string());
      }
      return std::nullopt;
  }
}

}  // namespace

std::optional<std::string> unsupported_reason(const hal::Op& op) {
  switch (op.kind) {
    case hal::OpKind::kMatMul: {
      if (auto why = check_operands(op, 2)) return why;
      return mat_mul_reason(op);
    }
    case hal::OpKind::kAdd:
    case hal::OpKind::kRmsNorm:
    case hal::OpKind::kSwiGLU: {
      if (auto why = check_operands(op, 2)) return why;
      return binary_reason(op);
    }
    case hal::OpKind::kGetRows:
    case hal::OpKind::kRope:
    case hal::OpKind::kAttention:
    case hal::OpKind::kStoreKV:
      break;
  }
  return str_cat(hal::op_name(op.kind), " is not implemented by the OpenCL backend");
}

}  // namespace mixserve::opencl

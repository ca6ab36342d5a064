#include "hal/op.h"

namespace mixserve::hal {

std::string_view op_name(OpKind kind) {
  switch (kind) {
    case OpKind::kGetRows: return "get_rows";
    case OpKind::kMatMul: return "mat_mul";
    case OpKind::kAdd: return "add";
    case OpKind::kRmsNorm: return "rms_norm";
    case OpKind::kRope: return "rope";
    case OpKind::kSwiGLU: return "swiglu";
    case OpKind::kAttention: return "attention";
    case OpKind::kStoreKV: return "store_kv";
  }
  return "unknown";
}

}  // namespace mixserve::hal

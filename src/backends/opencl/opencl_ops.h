// What the OpenCL backend can run: a deliberately partial op set, so that the scheduler has to
// place the rest (get_rows, rope, attention, store_kv) on another device.
#pragma once

#include <optional>
#include <string>

#include "hal/op.h"

namespace mixserve::opencl {

/// Why the OpenCL kernels cannot run `op` ("attention is not implemented by the OpenCL
/// backend", "mat_mul weights of type bf16 ..."), or nullopt when they can. Checks the op kind,
/// operand types, shapes and offset alignment; does not look at where the buffers live.
std::optional<std::string> unsupported_reason(const hal::Op& op);

}  // namespace mixserve::opencl

// The OpenCL backend: every device of every OpenCL platform ("opencl:0", "opencl:1", ...).
#pragma once

#include <memory>

#include "hal/device.h"

namespace mixserve::opencl {

/// Enumerates OpenCL platforms and devices. Never throws: without an ICD, platform or usable
/// device the backend has no devices and status() says why.
std::unique_ptr<hal::Backend> make_opencl_backend();

}  // namespace mixserve::opencl

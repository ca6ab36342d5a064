// Building OpenCL programs from source with errors that carry the compiler's build log.
#pragma once

#include <string>
#include <string_view>

#include "backends/opencl/opencl_api.h"

namespace mixserve::opencl {

/// Compiles `source` for `device` in `context` with build `options` and returns the program
/// (the caller releases it). On failure throws Error "clBuildProgram failed:
/// CL_BUILD_PROGRAM_FAILURE" followed by the device name and the build log; kUnavailable when
/// the device has no compiler.
cl_program build_program(cl_context context, cl_device_id device, std::string_view source,
                         const std::string& options);

/// The build log of `program` for `device` (empty when none or when it cannot be read).
std::string build_log(cl_program program, cl_device_id device);

/// A string property of a device (CL_DEVICE_NAME, ...); throws Error naming the query on failure.
std::string device_string(cl_device_id device, cl_device_info param);

/// A fixed-size property of a device; instantiated for cl_uint (also cl_bool) and cl_ulong
/// (also size_t and bitfields on 64-bit hosts). Throws Error on failure.
template <typename T>
T device_value(cl_device_id device, cl_device_info param);

/// A string property of a platform (CL_PLATFORM_NAME, ...); throws Error on failure.
std::string platform_string(cl_platform_id platform, cl_platform_info param);

}  // namespace mixserve::opencl

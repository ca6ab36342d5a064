// OpenCL status codes as names and as mixserve errors: every failing cl* call becomes a
// mixserve::Error that names the call and the code ("clBuildProgram failed: CL_BUILD_PROGRAM_FAILURE").
#pragma once

#include <string>
#include <string_view>

#include "backends/opencl/opencl_api.h"
#include "common/error.h"

namespace mixserve::opencl {

/// Name of an OpenCL status code ("CL_OUT_OF_RESOURCES"), or "CL error <n>" for unknown codes.
std::string cl_error_name(cl_int status);

/// The mixserve error category of a status: out-of-memory codes give kResourceExhausted,
/// missing platforms/devices kUnavailable, everything else kInternal.
ErrorCode cl_error_code(cl_int status);

/// Throws the Error for a failed `call` ("clCreateBuffer") with optional `context` appended;
/// does nothing when status is CL_SUCCESS.
void check_cl(cl_int status, std::string_view call, std::string_view context = {});

}  // namespace mixserve::opencl

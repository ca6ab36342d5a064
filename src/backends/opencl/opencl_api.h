// The OpenCL C API at the version mixserve targets (1.2: core everywhere, no 2.x features needed).
#pragma once

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

/// Returned by clGetPlatformIDs through the ICD loader when no vendor ICD is installed
/// (cl_khr_icd extension; also defined in CL/cl_ext.h).
#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif

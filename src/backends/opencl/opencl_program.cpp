#include "backends/opencl/opencl_program.h"

#include <vector>

#include "backends/opencl/opencl_error.h"

namespace mixserve::opencl {
namespace {

// Build logs of broken programs can be long; enough to show the first errors.
constexpr size_t kMaxLogChars = 4000;

std::string trim_string(std::vector<char> bytes) {
  std::string out(bytes.begin(), bytes.end());
  while (!out.empty() && (out.back() == '\0' || out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

std::string build_log(cl_program program, cl_device_id device) {
  size_t size = 0;
  if (clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &size) != CL_SUCCESS || size == 0) {
    return {};
  }
  std::vector<char> log(size);
  if (clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, size, log.data(), nullptr) != CL_SUCCESS) {
    return {};
  }
  std::string out = trim_string(std::move(log));
  if (out.size() > kMaxLogChars) out = out.substr(0, kMaxLogChars) + "\n[... build log truncated]";
  return out;
}

cl_program build_program(cl_context context, cl_device_id device, std::string_view source,
                         const std::string& options) {
  const char* text = source.data();
  const size_t length = source.size();
  cl_int status = CL_SUCCESS;
  cl_program program = clCreateProgramWithSource(context, 1, &text, &length, &status);
  check_cl(status, "clCreateProgramWithSource");
  status = clBuildProgram(program, 1, &device, options.c_str(), nullptr, nullptr);
  if (status != CL_SUCCESS) {
    std::string log = build_log(program, device);
    clReleaseProgram(program);
    std::string name;
    try {
      name = device_string(device, CL_DEVICE_NAME);
    } catch (const Error&) {
      name = "unknown device";
    }
    fail(status == CL_BUILD_PROGRAM_FAILURE ? ErrorCode::kInternal : cl_error_code(status),
         "clBuildProgram failed: ", cl_error_name(status), " on ", name, " (options '", options, "')",
         log.empty() ? std::string(", no build log") : ", build log:\n" + log);
  }
  return program;
}

std::string device_string(cl_device_id device, cl_device_info param) {
  size_t size = 0;
  check_cl(clGetDeviceInfo(device, param, 0, nullptr, &size), "clGetDeviceInfo");
  std::vector<char> bytes(size);
  if (size > 0) check_cl(clGetDeviceInfo(device, param, size, bytes.data(), nullptr), "clGetDeviceInfo");
  return trim_string(std::move(bytes));
}

template <typename T>
T device_value(cl_device_id device, cl_device_info param) {
  T value{};
  check_cl(clGetDeviceInfo(device, param, sizeof(T), &value, nullptr), "clGetDeviceInfo");
  return value;
}

template cl_uint device_value<cl_uint>(cl_device_id, cl_device_info);
template cl_ulong device_value<cl_ulong>(cl_device_id, cl_device_info);

std::string platform_string(cl_platform_id platform, cl_platform_info param) {
  size_t size = 0;
  check_cl(clGetPlatformInfo(platform, param, 0, nullptr, &size), "clGetPlatformInfo");
  std::vector<char> bytes(size);
  if (size > 0) check_cl(clGetPlatformInfo(platform, param, size, bytes.data(), nullptr), "clGetPlatformInfo");
  return trim_string(std::move(bytes));
}

}  // namespace mixserve::opencl

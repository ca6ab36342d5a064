#include "backends/opencl/opencl_device.h"

#include <cstdio>

#include "backends/opencl/opencl_error.h"
#include "backends/opencl/opencl_kernels.h"
#include "backends/opencl/opencl_ops.h"
#include "backends/opencl/opencl_program.h"
#include "backends/opencl/opencl_stream.h"

namespace mixserve::opencl {
namespace {

static_assert(sizeof(size_t) == sizeof(cl_ulong), "size_t device queries are read as cl_ulong");

// "OpenCL 3.0 PoCL HSTR: ..." -> "OpenCL 3.0".
std::string short_version(const std::string& version) {
  const auto first = version.find(' ');
  if (first == std::string::npos) return version;
  const auto second = version.find(' ', first + 1);
  return version.substr(0, second);
}

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

}  // namespace

OpenclBuffer::OpenclBuffer(OpenclDevice& device, cl_mem mem, size_t bytes)
    : device_(device), mem_(mem), bytes_(bytes) {}

OpenclBuffer::~OpenclBuffer() {
  // Commands still queued on the memory keep it alive until they finish (clReleaseMemObject).
  clReleaseMemObject(mem_);
  device_.note_release(bytes_);
}

hal::Device& OpenclBuffer::device() const { return device_; }

OpenclDevice::OpenclDevice(cl_platform_id platform, cl_device_id device, int index) : device_(device) {
  info_.id = "opencl:" + std::to_string(index);
  info_.name = device_string(device, CL_DEVICE_NAME);
  info_.vendor = device_string(device, CL_DEVICE_VENDOR);
  info_.backend = "opencl";
  info_.memory_total = device_value<cl_ulong>(device, CL_DEVICE_GLOBAL_MEM_SIZE);
  info_.compute_units = static_cast<int>(device_value<cl_uint>(device, CL_DEVICE_MAX_COMPUTE_UNITS));
  max_alloc_ = device_value<cl_ulong>(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
  info_.details = str_cat(short_version(device_string(device, CL_DEVICE_VERSION)), ", ",
                          device_string(device, CL_DEVICE_OPENCL_C_VERSION), ", driver ",
                          device_string(device, CL_DRIVER_VERSION), ", platform ",
                          platform_string(platform, CL_PLATFORM_NAME), ", max alloc ", gib(max_alloc_));
  // Division must round correctly for Q8_0 activation scales to match quantize_row's; the option
  // is only valid where the device reports the capability (OpenCL 1.2, clBuildProgram).
  build_options_ = str_cat("-DTOKEN_TILE=", kMatMulTokenTile);
  const auto fp = device_value<cl_ulong>(device, CL_DEVICE_SINGLE_FP_CONFIG);
  if ((fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0) build_options_ += " -cl-fp32-correctly-rounded-divide-sqrt";

  const cl_context_properties props[] = {CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(platform),
                                         0};
  cl_int status = CL_SUCCESS;
  context_ = clCreateContext(props, 1, &device_, nullptr, nullptr, &status);
  check_cl(status, "clCreateContext", info_.name);
}

OpenclDevice::~OpenclDevice() {
  if (program_ != nullptr) clReleaseProgram(program_);
  if (context_ != nullptr) clReleaseContext(context_);
}

hal::DeviceInfo OpenclDevice::info() const {
  hal::DeviceInfo out = info_;
  const uint64_t used = allocated_.load();
  out.memory_free = used < out.memory_total ? out.memory_total - used : 0;
  return out;
}

bool OpenclDevice::supports_op(const hal::Op& op) const { return !unsupported_reason(op).has_value(); }

std::unique_ptr<hal::Buffer> OpenclDevice::create_buffer(size_t bytes, cl_mem_flags flags, const void* host) {
  if (bytes > max_alloc_) {
    fail(ErrorCode::kResourceExhausted, info_.id, ": cannot allocate ", bytes, " bytes: the device's largest ",
         "allocation is ", max_alloc_, " bytes (", gib(max_alloc_), ")");
  }
  // OpenCL rejects empty buffers; an empty hal buffer still gets a valid one-byte cl_mem.
  const size_t request = bytes == 0 ? 1 : bytes;
  cl_int status = CL_SUCCESS;
  cl_mem mem = clCreateBuffer(context_, flags, request, const_cast<void*>(host), &status);
  check_cl(status, "clCreateBuffer", str_cat(info_.id, ", ", bytes, " bytes"));
  allocated_ += bytes;
  return std::make_unique<OpenclBuffer>(*this, mem, bytes);
}

std::unique_ptr<hal::Buffer> OpenclDevice::allocate(size_t bytes) {
  return create_buffer(bytes, CL_MEM_READ_WRITE, nullptr);
}

std::unique_ptr<hal::Buffer> OpenclDevice::wrap_host(const void* data, size_t bytes) {
  if (bytes == 0) return allocate(0);
  if (data == nullptr) fail(ErrorCode::kInvalidArgument, info_.id, ": wrap_host of a null pointer");
  return create_buffer(bytes, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, data);
}

std::unique_ptr<hal::Stream> OpenclDevice::create_stream(const hal::StreamOptions& /*options*/) {
  return std::make_unique<OpenclStream>(*this);
}

cl_program OpenclDevice::program() {
  std::lock_guard lock(program_mutex_);
  if (program_ != nullptr) return program_;
  if (!build_error_.empty()) throw Error(build_error_code_, build_error_);
  try {
    program_ = build_program(context_, device_, kernel_source(), build_options_);
  } catch (const Error& e) {
    build_error_ = str_cat(info_.id, ": ", e.what());
    build_error_code_ = e.code();
    throw Error(build_error_code_, build_error_);
  }
  return program_;
}

}  // namespace mixserve::opencl

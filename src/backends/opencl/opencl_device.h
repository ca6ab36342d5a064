// OpenCL device and buffers: one context per device, device memory from clCreateBuffer, and the
// kernel program compiled on first use and shared by all streams of the device.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "backends/opencl/opencl_api.h"
#include "common/error.h"
#include "hal/device.h"

namespace mixserve::opencl {

class OpenclDevice;

/// Device memory (a cl_mem). Not host-visible: host_ptr() is nullptr; copy with a Stream.
class OpenclBuffer : public hal::Buffer {
 public:
  /// Takes ownership of `mem` (`bytes` long, the requested size) allocated on `device`.
  OpenclBuffer(OpenclDevice& device, cl_mem mem, size_t bytes);
  ~OpenclBuffer() override;
  OpenclBuffer(const OpenclBuffer&) = delete;
  OpenclBuffer& operator=(const OpenclBuffer&) = delete;
  size_t size() const override { return bytes_; }
  void* host_ptr() const override { return nullptr; }
  hal::Device& device() const override;
  /// The OpenCL memory object (owned by this buffer).
  cl_mem mem() const { return mem_; }

 private:
  OpenclDevice& device_;
  cl_mem mem_;
  size_t bytes_;
};

/// One OpenCL device ("opencl:N") with its own context.
class OpenclDevice : public hal::Device {
 public:
  /// Queries `device` of `platform` and creates its context; `index` gives the id "opencl:<index>".
  /// Throws Error when the device cannot be queried or the context cannot be created.
  OpenclDevice(cl_platform_id platform, cl_device_id device, int index);
  ~OpenclDevice() override;
  OpenclDevice(const OpenclDevice&) = delete;
  OpenclDevice& operator=(const OpenclDevice&) = delete;

  hal::DeviceInfo info() const override;
  bool supports_op(const hal::Op& op) const override;
  /// Allocates device memory; kResourceExhausted when `bytes` exceeds the device's largest
  /// allocation (CL_DEVICE_MAX_MEM_ALLOC_SIZE) or the driver is out of memory.
  std::unique_ptr<hal::Buffer> allocate(size_t bytes) override;
  /// Copies the host bytes into new device memory at creation (CL_MEM_COPY_HOST_PTR).
  std::unique_ptr<hal::Buffer> wrap_host(const void* data, size_t bytes) override;
  std::unique_ptr<hal::Stream> create_stream(const hal::StreamOptions& options) override;

  /// The device's context (owned by the device).
  cl_context context() const { return context_; }
  /// The OpenCL device id.
  cl_device_id id() const { return device_; }
  /// The mixserve id ("opencl:0"), without the cost of info().
  const std::string& name_id() const { return info_.id; }
  /// The kernel program, compiled on the first call and cached (thread-safe); a build failure
  /// is remembered and rethrown as the same Error on later calls. Owned by the device.
  cl_program program();
  /// Largest single allocation the device allows, in bytes.
  uint64_t max_alloc() const { return max_alloc_; }
  /// Called by buffers when they release `bytes` of device memory.
  void note_release(size_t bytes) { allocated_ -= bytes; }

 private:
  std::unique_ptr<hal::Buffer> create_buffer(size_t bytes, cl_mem_flags flags, const void* host);

  cl_device_id device_;
  cl_context context_ = nullptr;
  hal::DeviceInfo info_;
  uint64_t max_alloc_ = 0;
  std::string build_options_;
  std::atomic<uint64_t> allocated_{0};

  std::mutex program_mutex_;
  cl_program program_ = nullptr;
  std::string build_error_;  ///< message of a failed build (empty = not tried or succeeded)
  ErrorCode build_error_code_ = ErrorCode::kInternal;
};

}  // namespace mixserve::opencl

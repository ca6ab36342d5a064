// OpenCL stream: one in-order command queue. Kernels are queued by run() and finish in order;
// write() and read() block until the copy is done (callers may reuse or read host memory at once).
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/opencl/opencl_api.h"
#include "hal/device.h"

namespace mixserve::opencl {

class OpenclDevice;

/// A command queue on one OpenCL device with its own kernel objects and scratch memory.
class OpenclStream : public hal::Stream {
 public:
  /// Creates an in-order queue on `device` (which outlives the stream); throws Error on failure.
  explicit OpenclStream(OpenclDevice& device);
  ~OpenclStream() override;
  OpenclStream(const OpenclStream&) = delete;
  OpenclStream& operator=(const OpenclStream&) = delete;

  /// Queues the op's kernels; kUnimplemented for ops the device does not support,
  /// kInvalidArgument when an operand is not in this device's memory or lies outside its buffer.
  void run(const hal::Op& op) override;
  /// Blocking copy from host memory into `dst` at `offset`.
  void write(hal::Buffer& dst, size_t offset, const void* src, size_t bytes) override;
  /// Blocking copy from `src` at `offset` to host memory (after all queued work on it).
  void read(const hal::Buffer& src, size_t offset, void* dst, size_t bytes) override;
  /// clFinish: waits for every queued command.
  void synchronize() override;

 private:
  /// cl_kernel objects of this stream (clSetKernelArg is not thread-safe, so none are shared).
  struct Kernels {
    cl_kernel quantize_q8_0 = nullptr;
    /// mat_mul by weight type (f32, f16, q8_0, q4_0), one token per work-item [0] or tiled [1].
    cl_kernel matmul[4][2] = {};
    cl_kernel rms_norm = nullptr;
    cl_kernel swiglu = nullptr;
    cl_kernel add = nullptr;
  };

  /// Creates the kernels on first use (this compiles the device's program if needed).
  const Kernels& kernels();
  /// Local work size for `kernel`: the largest power of two <= min(`want`, the kernel's limit).
  size_t local_size(cl_kernel kernel, size_t want) const;
  /// Queues `kernel` over `global` (rounded up to multiples of `local`) work-items.
  void launch(cl_kernel kernel, const char* name, int dims, const size_t* global, const size_t* local);
  /// The cl_mem of a tensor after checking it lives on this device inside its buffer.
  cl_mem mem_of(const hal::Tensor& t, const char* role, const hal::Op& op) const;
  /// A scratch buffer of at least `bytes` (grown on demand, reused across ops).
  cl_mem scratch(cl_mem& slot, size_t& capacity, size_t bytes);

  void mat_mul(const hal::Op& op);
  void add(const hal::Op& op);
  void rms_norm(const hal::Op& op);
  void swiglu(const hal::Op& op);

  OpenclDevice& device_;
  cl_command_queue queue_ = nullptr;
  Kernels kernels_;
  bool have_kernels_ = false;
  cl_mem xq_ = nullptr;   ///< Q8_0 activation values (32 int8 per block)
  size_t xq_capacity_ = 0;
  cl_mem xd_ = nullptr;   ///< Q8_0 activation scales (fp16 per block)
  size_t xd_capacity_ = 0;
};

}  // namespace mixserve::opencl

// The device interface every backend implements, in three parts (see docs/architecture.md):
// a Backend enumerates Devices; a Device allocates Buffers and creates Streams; a Stream runs Ops
// and copies data. Core code asks capabilities and never switches on the backend type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "hal/op.h"
#include "hal/op_profile.h"

namespace mixserve::hal {

class Device;

/// A block of device memory. Owned by whoever allocated it (unique_ptr).
class Buffer {
 public:
  virtual ~Buffer() = default;
  /// Size in bytes.
  virtual size_t size() const = 0;
  /// Host address when the memory is host-visible (CPU memory, mmap'd file), else nullptr.
  virtual void* host_ptr() const = 0;
  /// The device this buffer belongs to (outlives the buffer).
  virtual Device& device() const = 0;
};

/// An ordered queue of work on one device. Methods may return before the work is done;
/// synchronize() waits for everything queued so far.
class Stream {
 public:
  virtual ~Stream() = default;
  /// Queues one op; throws kUnimplemented if the device does not support it.
  virtual void run(const Op& op) = 0;
  /// Queues ops in order. Default: run() each; backends may fuse or capture a graph.
  virtual void run_all(std::span<const Op> ops) {
    for (const auto& op : ops) run(op);
  }
  /// Copies `bytes` host bytes into `dst` at `offset`.
  virtual void write(Buffer& dst, size_t offset, const void* src, size_t bytes) = 0;
  /// Copies `bytes` from `src` at `offset` to host memory.
  virtual void read(const Buffer& src, size_t offset, void* dst, size_t bytes) = 0;
  /// Waits until all queued work is complete.
  virtual void synchronize() = 0;
  /// Starts adding the time of each op run from now on to *profile (nullptr: stops); false, and
  /// nothing added, when this stream cannot time its ops.
  virtual bool set_profile(OpProfile* profile) { return profile == nullptr; }
};

/// Static facts about a device, for listings and placement.
struct DeviceInfo {
  std::string id;           ///< stable id used on the command line, e.g. "cpu" or "cuda:0"
  std::string name;         ///< marketing or CPU model name
  std::string vendor;       ///< "AMD", "Intel", "NVIDIA", "Huawei", ...
  std::string backend;      ///< backend name, e.g. "cpu"
  uint64_t memory_total = 0;  ///< bytes of device memory (host RAM for CPU)
  uint64_t memory_free = 0;   ///< bytes free at the time of the query
  int compute_units = 0;      ///< threads (CPU) or multiprocessors (GPU)
  std::string details;        ///< free-form capabilities, e.g. ISA extensions
};

/// Settings of a new stream.
struct StreamOptions {
  int n_threads = 0;  ///< host threads the stream may use (CPU backends); 0 = all usable cores
};

/// One device of a backend.
class Device {
 public:
  virtual ~Device() = default;
  /// Facts about the device.
  virtual DeviceInfo info() const = 0;
  /// Whether this device can run `op` with these operand types and shapes.
  virtual bool supports_op(const Op& op) const = 0;
  /// Allocates `bytes` of device memory; throws kResourceExhausted when it cannot.
  virtual std::unique_ptr<Buffer> allocate(size_t bytes) = 0;
  /// Makes a buffer holding `bytes` of host data that must stay valid and unchanged for the
  /// buffer's lifetime (e.g. an mmap'd model file). Optional: the default allocates and copies;
  /// host-memory devices override it to wrap the memory without a copy.
  virtual std::unique_ptr<Buffer> wrap_host(const void* data, size_t bytes);
  /// Creates a new stream on this device.
  virtual std::unique_ptr<Stream> create_stream(const StreamOptions& options = {}) = 0;
  /// Offers weights in buffers this device allocated, read only as the weights (src[0]) of this
  /// device's matrix products and sharing their bytes with no other tensor, to be rearranged in
  /// place into a layout the device's kernels read faster; those it rearranges get layout
  /// kDevicePacked. Optional: the default keeps every layout. Returns how many it packed.
  virtual size_t pack_weights(std::span<Tensor* const> weights) {
    (void)weights;
    return 0;
  }
};

/// A family of devices with one implementation (cpu, cuda, opencl, ...).
class Backend {
 public:
  virtual ~Backend() = default;
  /// Backend name ("cpu").
  virtual std::string name() const = 0;
  /// Devices found at registration time; owned by the backend.
  virtual std::vector<Device*> devices() = 0;
  /// Why the backend has no devices (e.g. "OpenCL: no platform found ..."); empty when it has
  /// some or nothing is worth saying. Optional: the default is empty.
  virtual std::string status() const { return {}; }
};

}  // namespace mixserve::hal

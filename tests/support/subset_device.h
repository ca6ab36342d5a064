// A second device for scheduler tests that need no OpenCL: it executes ops with the CPU kernels but
// keeps its own memory (buffers are not host-visible, so every transfer goes through the scheduler's
// copies) and accepts only a chosen subset of op kinds, like a partial accelerator backend.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "hal/device.h"

namespace mixserve::testing {

/// A device running `kinds` (and nothing else) on private memory; id "subset:N".
class SubsetDevice : public hal::Device {
 public:
  /// A device with id `id` accepting `kinds`.
  SubsetDevice(std::string id, std::set<hal::OpKind> kinds);
  hal::DeviceInfo info() const override;
  bool supports_op(const hal::Op& op) const override;
  std::unique_ptr<hal::Buffer> allocate(size_t bytes) override;
  std::unique_ptr<hal::Stream> create_stream(const hal::StreamOptions& options) override;

 private:
  std::string id_;
  std::set<hal::OpKind> kinds_;
};

/// The process-wide "subset:0" device (mat_mul, rms_norm, swiglu, add), registered in the hal
/// registry on first call so that model loading can name it.
SubsetDevice& registered_subset_device();

}  // namespace mixserve::testing

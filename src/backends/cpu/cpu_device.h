// CPU device and buffers: aligned host allocations, or wrapped host memory without a copy.
#pragma once

#include <memory>

#include "hal/device.h"

namespace mixserve::cpu {

/// Host memory owned (aligned allocation) or borrowed (wrap_host) by a buffer.
class CpuBuffer : public hal::Buffer {
 public:
  /// Takes `data` of `bytes`; frees it on destruction when `owned`.
  CpuBuffer(hal::Device& device, void* data, size_t bytes, bool owned);
  ~CpuBuffer() override;
  size_t size() const override { return bytes_; }
  void* host_ptr() const override { return data_; }
  hal::Device& device() const override { return device_; }
  /// Whether the buffer allocated its memory (false: it wraps memory it must not change).
  bool owned() const { return owned_; }

 private:
  hal::Device& device_;
  void* data_;
  size_t bytes_;
  bool owned_;
};

/// The host CPU as a device.
class CpuDevice : public hal::Device {
 public:
  CpuDevice();
  hal::DeviceInfo info() const override;
  bool supports_op(const hal::Op& op) const override;
  std::unique_ptr<hal::Buffer> allocate(size_t bytes) override;
  std::unique_ptr<hal::Buffer> wrap_host(const void* data, size_t bytes) override;
  std::unique_ptr<hal::Stream> create_stream(const hal::StreamOptions& options) override;
  /// Packs Q4_0/Q8_0 weights whose rows the AVX2 or AVX-512 VNNI kernels read packed (weight_packing.h).
  size_t pack_weights(std::span<hal::Tensor* const> weights) override;

 private:
  std::string cpu_name_;
};

}  // namespace mixserve::cpu

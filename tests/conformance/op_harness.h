// Runs one hal::Op on a device with host-provided inputs and reads back the result; used by the
// conformance suite to compare every backend against plain double-precision references.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "hal/device.h"

namespace mixserve::conformance {

/// Byte value written around every tensor so that writes outside it can be detected.
inline constexpr uint8_t kGuardByte = 0xA5;
/// Guard bytes after the end of every tensor.
inline constexpr size_t kGuardBytes = 64;

/// A tensor on a device together with the bytes it was filled with.
struct DeviceTensor {
  hal::Tensor tensor;
  std::unique_ptr<hal::Buffer> buffer;
  std::vector<uint8_t> host;  ///< the bytes written (inputs) or read back (outputs)
};

/// Allocates a tensor of `type` and shape `ne` on `device`, `offset` bytes into a buffer with
/// kGuardBytes of guard after it (guards filled with kGuardByte), and fills it with `bytes`
/// (or zeros).
DeviceTensor make_tensor(hal::Device& device, hal::Stream& stream, DType type, std::array<int64_t, 4> ne,
                         std::vector<uint8_t> bytes = {}, size_t offset = 0);
/// Reads a tensor back into its `host` bytes and returns them as floats (tensor must be f32).
std::vector<float> read_f32(hal::Stream& stream, DeviceTensor& t);
/// Whether every byte of t's buffer outside the tensor still holds kGuardByte.
bool guards_intact(hal::Stream& stream, const DeviceTensor& t);
/// Random floats, normal(0, scale), from a seeded generator.
std::vector<float> random_floats(size_t n, std::mt19937_64& rng, float scale = 1.0f);
/// Float data as bytes of `type` (quantised with the reference routines of src/quant).
std::vector<uint8_t> encode(DType type, const std::vector<float>& values, int64_t row);
/// Rows of `type` bytes decoded with the reference routines of src/quant.
std::vector<float> dequantised(DType type, const std::vector<uint8_t>& bytes, int64_t row, int64_t rows);
/// Normalised mean squared error sum((a-b)^2) / sum(b^2) of a result `a` against reference `b`.
double nmse(const std::vector<float>& a, const std::vector<double>& b);
/// nmse() against a float reference (e.g. another backend's result).
double nmse(const std::vector<float>& a, const std::vector<float>& b);

/// Every registered device (CPU first).
std::vector<hal::Device*> all_devices();
/// The registered device with backend "cpu" (always present).
hal::Device& cpu_device();

/// Whether `device` supports `op`. When it does not, the case is skipped for that device but
/// recorded: a line on stdout and a test property name "skipped.<device>.<what>".
bool runs_on(hal::Device& device, const hal::Op& op, const std::string& what);

}  // namespace mixserve::conformance

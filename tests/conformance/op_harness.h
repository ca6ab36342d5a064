// Runs one hal::Op on a device with host-provided inputs and reads back the result; used by the
// conformance suite to compare every backend against plain double-precision references.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "hal/device.h"

namespace mixserve::conformance {

/// A tensor on a device together with the bytes it was filled with.
struct DeviceTensor {
  hal::Tensor tensor;
  std::unique_ptr<hal::Buffer> buffer;
  std::vector<uint8_t> host;  ///< the bytes written (inputs) or read back (outputs)
};

/// Allocates a tensor of `type` and shape `ne` on `device` and fills it with `bytes` (or zeros).
DeviceTensor make_tensor(hal::Device& device, hal::Stream& stream, DType type, std::array<int64_t, 4> ne,
                         std::vector<uint8_t> bytes = {});
/// Reads a tensor back into its `host` bytes and returns them as floats (tensor must be f32).
std::vector<float> read_f32(hal::Stream& stream, DeviceTensor& t);
/// Random floats, normal(0, scale), from a seeded generator.
std::vector<float> random_floats(size_t n, std::mt19937_64& rng, float scale = 1.0f);
/// Float data as bytes of `type` (quantised with the reference routines of src/quant).
std::vector<uint8_t> encode(DType type, const std::vector<float>& values, int64_t row);
/// Normalised mean squared error sum((a-b)^2) / sum(b^2) of a result `a` against reference `b`.
double nmse(const std::vector<float>& a, const std::vector<double>& b);

}  // namespace mixserve::conformance

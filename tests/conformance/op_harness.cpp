#include "conformance/op_harness.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "hal/registry.h"
#include "quant/quant.h"

namespace mixserve::conformance {

DeviceTensor make_tensor(hal::Device& device, hal::Stream& stream, DType type, std::array<int64_t, 4> ne,
                         std::vector<uint8_t> bytes, size_t offset) {
  DeviceTensor t;
  t.tensor.dtype = type;
  t.tensor.ne = ne;
  t.tensor.offset = offset;
  const size_t size = t.tensor.bytes();
  if (bytes.empty()) bytes.assign(size, 0);
  MIXSERVE_CHECK(bytes.size() == size, "make_tensor: ", bytes.size(), " bytes for ", size);
  t.host = std::move(bytes);
  std::vector<uint8_t> image(offset + size + kGuardBytes, kGuardByte);
  std::memcpy(image.data() + offset, t.host.data(), size);
  t.buffer = device.allocate(image.size());
  t.tensor.buffer = t.buffer.get();
  stream.write(*t.buffer, 0, image.data(), image.size());
  return t;
}

std::vector<float> read_f32(hal::Stream& stream, DeviceTensor& t) {
  stream.synchronize();
  t.host.resize(t.tensor.bytes());
  stream.read(*t.buffer, t.tensor.offset, t.host.data(), t.host.size());
  stream.synchronize();
  std::vector<float> out(t.host.size() / sizeof(float));
  std::memcpy(out.data(), t.host.data(), t.host.size());
  return out;
}

bool guards_intact(hal::Stream& stream, const DeviceTensor& t) {
  stream.synchronize();
  std::vector<uint8_t> image(t.buffer->size());
  stream.read(*t.buffer, 0, image.data(), image.size());
  const size_t begin = t.tensor.offset;
  const size_t end = begin + t.tensor.bytes();
  for (size_t i = 0; i < image.size(); ++i) {
    if ((i < begin || i >= end) && image[i] != kGuardByte) return false;
  }
  return true;
}

std::vector<float> random_floats(size_t n, std::mt19937_64& rng, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> out(n);
  for (auto& v : out) v = dist(rng);
  return out;
}

std::vector<uint8_t> encode(DType type, const std::vector<float>& values, int64_t row) {
  const size_t row_bytes = *dtype_row_bytes(type, row);
  const size_t rows = values.size() / static_cast<size_t>(row);
  std::vector<uint8_t> out(row_bytes * rows);
  for (size_t r = 0; r < rows; ++r) {
    quant::quantize_row(type, values.data() + r * static_cast<size_t>(row), out.data() + r * row_bytes, row);
  }
  return out;
}

std::vector<float> dequantised(DType type, const std::vector<uint8_t>& bytes, int64_t row, int64_t rows) {
  std::vector<float> out(static_cast<size_t>(row * rows));
  const size_t row_bytes = *dtype_row_bytes(type, row);
  for (int64_t r = 0; r < rows; ++r) {
    quant::dequantize_row(type, bytes.data() + r * row_bytes, out.data() + r * row, row);
  }
  return out;
}

double nmse(const std::vector<float>& a, const std::vector<double>& b) {
  MIXSERVE_CHECK(a.size() == b.size(), "nmse of ", a.size(), " values against ", b.size());
  double err = 0.0;
  double ref = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    err += d * d;
    ref += b[i] * b[i];
  }
  return ref == 0.0 ? err : err / ref;
}

double nmse(const std::vector<float>& a, const std::vector<float>& b) {
  return nmse(a, std::vector<double>(b.begin(), b.end()));
}

std::vector<hal::Device*> all_devices() { return hal::Registry::instance().devices(); }

hal::Device& cpu_device() { return hal::Registry::instance().device("cpu"); }

bool runs_on(hal::Device& device, const hal::Op& op, const std::string& what) {
  if (device.supports_op(op)) return true;
  const std::string id = device.info().id;
  std::printf("[  SKIP    ] %s does not support %s (recorded in the coverage table)\n", id.c_str(), what.c_str());
  ::testing::Test::RecordProperty("skipped." + id + "." + what, "unsupported");
  return false;
}

}  // namespace mixserve::conformance

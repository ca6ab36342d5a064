#include "conformance/op_harness.h"

#include <cstring>

#include "quant/quant.h"

namespace mixserve::conformance {

DeviceTensor make_tensor(hal::Device& device, hal::Stream& stream, DType type, std::array<int64_t, 4> ne,
                         std::vector<uint8_t> bytes) {
  DeviceTensor t;
  t.tensor.dtype = type;
  t.tensor.ne = ne;
  const size_t size = t.tensor.bytes();
  if (bytes.empty()) bytes.assign(size, 0);
  t.host = std::move(bytes);
  t.buffer = device.allocate(size);
  t.tensor.buffer = t.buffer.get();
  stream.write(*t.buffer, 0, t.host.data(), size);
  return t;
}

std::vector<float> read_f32(hal::Stream& stream, DeviceTensor& t) {
  stream.synchronize();
  t.host.resize(t.tensor.bytes());
  stream.read(*t.buffer, 0, t.host.data(), t.host.size());
  stream.synchronize();
  std::vector<float> out(t.host.size() / sizeof(float));
  std::memcpy(out.data(), t.host.data(), t.host.size());
  return out;
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

double nmse(const std::vector<float>& a, const std::vector<double>& b) {
  double err = 0.0;
  double ref = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    err += d * d;
    ref += b[i] * b[i];
  }
  return ref == 0.0 ? err : err / ref;
}

}  // namespace mixserve::conformance

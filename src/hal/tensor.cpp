#include "hal/tensor.h"

#include "hal/device.h"

namespace mixserve::hal {

size_t Tensor::row_bytes() const {
  const auto& info = dtype_info(dtype);
  return static_cast<size_t>(ne[0] / info.block_elems) * info.block_bytes;
}

void* Tensor::host_data() const {
  if (buffer == nullptr || buffer->host_ptr() == nullptr) return nullptr;
  return static_cast<uint8_t*>(buffer->host_ptr()) + offset;
}

std::string Tensor::shape_string() const {
  std::string out = "[" + std::to_string(ne[0]);
  int last = 3;
  while (last > 0 && ne[static_cast<size_t>(last)] == 1) --last;
  for (int i = 1; i <= last; ++i) out += ", " + std::to_string(ne[static_cast<size_t>(i)]);
  return out + "]";
}

}  // namespace mixserve::hal

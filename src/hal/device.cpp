#include "hal/device.h"

#include "common/error.h"

namespace mixserve::hal {

std::unique_ptr<Buffer> Device::wrap_host(const void* data, size_t bytes) {
  auto buffer = allocate(bytes);
  auto stream = create_stream();
  stream->write(*buffer, 0, data, bytes);
  stream->synchronize();
  return buffer;
}

}  // namespace mixserve::hal

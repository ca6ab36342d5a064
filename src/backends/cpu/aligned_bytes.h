// Grow-only byte storage handed out from a 64-byte boundary: scratch and conversion buffers that
// the CPU stream reuses from one op (or graph) to the next.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mixserve::cpu {

/// `bytes` rounded up to a whole number of 64-byte lines.
inline size_t whole_lines(size_t bytes) {
  return (bytes + 63) / 64 * 64;
}

/// Bytes that grow on demand, handed out from a 64-byte boundary.
struct AlignedBytes {
  std::vector<uint8_t> storage;
  uint8_t* data = nullptr;  ///< the aligned start, after reserve()
  /// At least `bytes` from `data` on; moves the bytes (and invalidates earlier pointers) only to grow.
  uint8_t* reserve(size_t bytes) {
    if (storage.size() < bytes + 64) storage.resize(bytes + 64);
    data = storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64;
    return data;
  }
};

}  // namespace mixserve::cpu

// A tensor view: element type, shape and where its bytes live (a device buffer and an offset).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/dtype.h"

namespace mixserve::hal {

class Buffer;

/// How a tensor's bytes are arranged.
enum class TensorLayout : uint8_t {
  kGguf,          ///< as GGUF stores them (blocks of dtype one after the other)
  kDevicePacked,  ///< rearranged by the device holding the buffer (Device::pack_weights) for its own
                  ///< kernels: only that device's matrix products read it
};

/// Dense, row-major tensor of up to 4 dimensions. ne[0] is the innermost (contiguous) dimension,
/// as in GGUF: a weight matrix with K inputs and N outputs has ne = {K, N, 1, 1}.
/// Non-owning: the Buffer outlives the tensor.
struct Tensor {
  std::string name;                        ///< for logs and op tables
  DType dtype = DType::kF32;               ///< element type
  std::array<int64_t, 4> ne = {1, 1, 1, 1};  ///< elements per dimension
  Buffer* buffer = nullptr;                ///< storage; nullptr = not allocated yet
  size_t offset = 0;                       ///< byte offset into the buffer
  TensorLayout layout = TensorLayout::kGguf;  ///< byte arrangement

  /// Number of elements.
  int64_t elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  /// Number of rows (product of ne[1..3]).
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  /// Bytes of one row of ne[0] elements.
  size_t row_bytes() const;
  /// Bytes of the whole tensor.
  size_t bytes() const { return row_bytes() * static_cast<size_t>(rows()); }
  /// Host address of the first byte; valid only when the buffer is host-visible (else nullptr).
  void* host_data() const;
  /// Shape as "[2048, 32000]" for messages.
  std::string shape_string() const;
};

}  // namespace mixserve::hal

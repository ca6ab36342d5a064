// Tensor element types, numbered as in the GGUF specification (ggml_type), with their block layouts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mixserve {

/// Tensor element type; values are the GGUF/ggml type ids (ggml/docs/gguf.md, "ggml_type").
enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

/// Layout facts of one element type.
struct DTypeInfo {
  DType type;
  std::string_view name;     ///< "q8_0", "f32", ...
  int64_t block_elems;       ///< elements per block (1 for plain types)
  size_t block_bytes;        ///< bytes per block
  bool computable;           ///< mixserve has kernels for it (F32, F16, BF16, Q8_0, Q4_0)
};

/// Layout of a known type id, or nullopt when the id is not one mixserve knows the size of.
std::optional<DTypeInfo> dtype_info(uint32_t type_id);
/// Layout of a type (always known).
const DTypeInfo& dtype_info(DType type);
/// Name of a type ("q4_0").
std::string_view dtype_name(DType type);
/// Type by name ("q8_0", case-insensitive), or nullopt.
std::optional<DType> dtype_from_name(std::string_view name);
/// Bytes taken by one row of `elems` elements; nullopt if `elems` is not a multiple of the block
/// size or the size overflows.
std::optional<size_t> dtype_row_bytes(DType type, int64_t elems);

}  // namespace mixserve

#include "common/dtype.h"

#include <array>
#include <cctype>
#include <limits>

namespace mixserve {
namespace {

// Sizes from the ggml block definitions as documented by the GGUF specification.
constexpr std::array<DTypeInfo, 20> kTypes = {{
    {DType::kF32, "f32", 1, 4, true},
    {DType::kF16, "f16", 1, 2, true},
    {DType::kQ4_0, "q4_0", 32, 18, true},
    {DType::kQ4_1, "q4_1", 32, 20, false},
    {DType::kQ5_0, "q5_0", 32, 22, false},
    {DType::kQ5_1, "q5_1", 32, 24, false},
    {DType::kQ8_0, "q8_0", 32, 34, true},
    {DType::kQ8_1, "q8_1", 32, 36, false},
    {DType::kQ2_K, "q2_k", 256, 84, false},
    {DType::kQ3_K, "q3_k", 256, 110, false},
    {DType::kQ4_K, "q4_k", 256, 144, false},
    {DType::kQ5_K, "q5_k", 256, 176, false},
    {DType::kQ6_K, "q6_k", 256, 210, false},
    {DType::kQ8_K, "q8_k", 256, 292, false},
    {DType::kI8, "i8", 1, 1, false},
    {DType::kI16, "i16", 1, 2, false},
    {DType::kI32, "i32", 1, 4, false},
    {DType::kI64, "i64", 1, 8, false},
    {DType::kF64, "f64", 1, 8, false},
    {DType::kBF16, "bf16", 1, 2, true},
}};

}  // namespace

std::optional<DTypeInfo> dtype_info(uint32_t type_id) {
  for (const auto& info : kTypes) {
    if (static_cast<uint32_t>(info.type) == type_id) return info;
  }
  return std::nullopt;
}

const DTypeInfo& dtype_info(DType type) {
  for (const auto& info : kTypes) {
    if (info.type == type) return info;
  }
  return kTypes[0];  // unreachable for valid enum values
}

std::string_view dtype_name(DType type) { return dtype_info(type).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& info : kTypes) {
    if (info.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(name[i])) != info.name[i]) same = false;
    }
    if (same) return info.type;
  }
  return std::nullopt;
}

std::optional<size_t> dtype_row_bytes(DType type, int64_t elems) {
  const auto& info = dtype_info(type);
  if (elems < 0 || elems % info.block_elems != 0) return std::nullopt;
  const auto blocks = static_cast<uint64_t>(elems / info.block_elems);
  if (blocks > std::numeric_limits<size_t>::max() / info.block_bytes) return std::nullopt;
  return blocks * info.block_bytes;
}

}  // namespace mixserve

#include "backends/cpu/weight_packing.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "quant/quant.h"

namespace mixserve::cpu {
namespace {

// One group's geometry: block bytes, and the mask XOR-ed into every stored 4-byte word (for Q8_0,
// q + 128 modulo 256 is q XOR 0x80).
struct GroupShape {
  size_t block_bytes;
  size_t qs_bytes;  // quantised bytes per block
  uint32_t flip;
  const int32_t* order;
};

GroupShape shape_of(DType type) {
  if (type == DType::kQ4_0) return {sizeof(quant::BlockQ4_0), quant::kQK / 2, 0, kPackedOrderQ4};
  return {sizeof(quant::BlockQ8_0), quant::kQK, 0x80808080u, kPackedOrderQ8};
}

// Moves a group of m <= 16 blocks between layouts through `tmp`, 4 bytes at a time: the fields of
// the present positions (order[p] < m; all 16 in a whole group), in increasing p, slot by slot. With
// m = 16, slot s is position s: the scales at 2p, register j's dwords at 32 + 64j + 4p.
void convert_group(const GroupShape& s, uint8_t* group, int64_t m, uint8_t* tmp, bool to_packed) {
  std::memcpy(tmp, group, s.block_bytes * static_cast<size_t>(m));
  const size_t n_regs = s.qs_bytes / 4;
  const auto blocks = static_cast<size_t>(m);
  size_t slot = 0;
  for (int p = 0; p < kPackGroupBlocks; ++p) {
    if (s.order[p] >= m) continue;
    const size_t plain = static_cast<size_t>(s.order[p]) * s.block_bytes;  // the block in the GGUF layout
    const size_t scale = 2 * slot;
    std::memcpy(group + (to_packed ? scale : plain), tmp + (to_packed ? plain : scale), 2);
    for (size_t j = 0; j < n_regs; ++j) {
      const size_t packed = 2 * blocks + 4 * blocks * j + 4 * slot;
      const size_t q = plain + 2 + 4 * j;
      uint32_t word;
      std::memcpy(&word, tmp + (to_packed ? q : packed), 4);
      word ^= s.flip;
      std::memcpy(group + (to_packed ? packed : q), &word, 4);
    }
    ++slot;
  }
}

void convert_rows(DType type, int64_t k, void* w, size_t row_bytes, int64_t rows, bool to_packed) {
  MIXSERVE_CHECK(packable_rows(type, k), "rows of ", dtype_name(type), " with k = ", k, " have no packed layout");
  const GroupShape s = shape_of(type);
  const int64_t nb = k / quant::kQK;
  const size_t group_bytes = s.block_bytes * kPackGroupBlocks;
  uint8_t tmp[sizeof(quant::BlockQ8_0) * kPackGroupBlocks];
  auto* base = static_cast<uint8_t*>(w);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = base + static_cast<size_t>(r) * row_bytes;
    for (int64_t g = 0; g * kPackGroupBlocks < nb; ++g) {
      convert_group(s, row + static_cast<size_t>(g) * group_bytes, std::min(kPackGroupBlocks, nb - g * kPackGroupBlocks),
                    tmp, to_packed);
    }
  }
}

}  // namespace

bool packable_rows(DType type, int64_t k) {
  return (type == DType::kQ4_0 || type == DType::kQ8_0) && k % quant::kQK == 0 && k >= quant::kQK * kPackGroupBlocks;
}

void pack_rows(DType type, int64_t k, void* w, size_t row_bytes, int64_t rows) {
  convert_rows(type, k, w, row_bytes, rows, true);
}

void unpack_rows(DType type, int64_t k, void* w, size_t row_bytes, int64_t rows) {
  convert_rows(type, k, w, row_bytes, rows, false);
}

}  // namespace mixserve::cpu

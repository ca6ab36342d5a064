// ValidityMap against a per-byte reference: random writes and reads on several devices must copy
// exactly the bytes a device lacks, from a device that holds them, and nothing else.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "hal/validity_map.h"

namespace mixserve::hal {
namespace {

TEST(ValidityMap, NeverWrittenBytesNeedNoCopy) {
  ValidityMap map(100);
  int copies = 0;
  map.make_valid(0, 100, 1, [&](size_t, size_t, int) { ++copies; });
  EXPECT_EQ(copies, 0);
  EXPECT_EQ(map.valid_on(0, 100), DeviceMask{0b10});
}

TEST(ValidityMap, CopiesOnlyTheMissingRangeFromItsHolder) {
  ValidityMap map(1000);
  map.mark_written(0, 1000, 0);
  map.mark_written(200, 300, 1);  // device 1 now alone holds [200, 300)
  std::vector<std::tuple<size_t, size_t, int>> copies;
  map.make_valid(100, 400, 0, [&](size_t b, size_t e, int from) { copies.emplace_back(b, e, from); });
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0], std::make_tuple(size_t{200}, size_t{300}, 1));
  EXPECT_EQ(map.valid_on(0, 1000), DeviceMask{0b01});
  EXPECT_EQ(map.valid_on(200, 300), DeviceMask{0b11});
  // A second request copies nothing.
  map.make_valid(0, 1000, 0, [&](size_t, size_t, int) { FAIL() << "unexpected copy"; });
}

TEST(ValidityMap, AdjacentRangesWithEqualMasksMerge) {
  ValidityMap map(64);
  for (size_t i = 0; i < 64; i += 8) map.mark_written(i, i + 8, 2);
  EXPECT_EQ(map.ranges(), 1u);
  map.mark_written(8, 16, 0);
  EXPECT_EQ(map.ranges(), 3u);
  map.mark_written(8, 16, 2);
  EXPECT_EQ(map.ranges(), 1u);
}

TEST(ValidityMap, RandomOperationsMatchPerByteReference) {
  constexpr size_t kSize = 257;
  constexpr int kDevices = 3;
  std::mt19937 rng(7);
  ValidityMap map(kSize);
  std::vector<DeviceMask> ref(kSize, 0);
  for (int step = 0; step < 5000; ++step) {
    size_t a = rng() % (kSize + 1), b = rng() % (kSize + 1);
    if (a > b) std::swap(a, b);
    const int slot = static_cast<int>(rng() % kDevices);
    const DeviceMask bit = DeviceMask{1} << slot;
    if (rng() % 2 == 0) {
      map.mark_written(a, b, slot);
      for (size_t i = a; i < b; ++i) ref[i] = bit;
    } else {
      std::vector<int> copied(kSize, 0);
      map.make_valid(a, b, slot, [&](size_t cb, size_t ce, int from) {
        ASSERT_LE(a, cb);
        ASSERT_LE(ce, b);
        ASSERT_LT(cb, ce);
        for (size_t i = cb; i < ce; ++i) {
          ASSERT_TRUE(ref[i] & (DeviceMask{1} << from)) << "copied byte " << i << " from a device without it";
          ASSERT_FALSE(ref[i] & bit) << "copied byte " << i << " the device already had";
          ++copied[i];
        }
      });
      for (size_t i = a; i < b; ++i) {
        const bool needed = ref[i] != 0 && !(ref[i] & bit);
        ASSERT_EQ(copied[i], needed ? 1 : 0) << "byte " << i << " at step " << step;
        ref[i] |= bit;
      }
    }
    for (int probe = 0; probe < 4; ++probe) {
      size_t pa = rng() % kSize, pb = rng() % (kSize + 1);
      if (pa > pb) std::swap(pa, pb);
      if (pa == pb) continue;
      DeviceMask expect = ~DeviceMask{0};
      for (size_t i = pa; i < pb; ++i) expect &= ref[i];
      ASSERT_EQ(map.valid_on(pa, pb), expect);
    }
  }
}

}  // namespace
}  // namespace mixserve::hal

// KvBlockPool: reference counts, lowest-id allocation, prefix-cache lookups that verify content,
// and least-recently-used reclaim of cached blocks.
#include <gtest/gtest.h>

#include "common/error.h"
#include "engine/kv_blocks.h"

namespace mixserve {
namespace {

TEST(KvBlockPool, AllocatesLowestFreeIdAndFreesOnLastRelease) {
  KvBlockPool pool(4, 2);
  EXPECT_EQ(pool.allocate(), 0);
  EXPECT_EQ(pool.allocate(), 1);
  EXPECT_EQ(pool.allocate(), 2);
  pool.retain(1);
  pool.release(1);
  EXPECT_EQ(pool.stats().used, 3);
  pool.release(1);
  EXPECT_EQ(pool.stats().used, 2);
  EXPECT_EQ(pool.allocate(), 1);  // lowest free again
  EXPECT_EQ(pool.allocate(), 3);
  EXPECT_EQ(pool.allocate(), std::nullopt);
  EXPECT_EQ(pool.available(), 0);
  EXPECT_THROW(pool.release(7), Error);
}

TEST(KvBlockPool, RejectsBadSizes) {
  EXPECT_THROW(KvBlockPool(0, 16), Error);
  EXPECT_THROW(KvBlockPool(4, 0), Error);
}

TEST(KvBlockPool, PublishedBlocksAreFoundOnlyForIdenticalContentAndParent) {
  KvBlockPool pool(4, 2);
  const int32_t b0 = *pool.allocate();
  const std::vector<int32_t> t0 = {5, 6};
  pool.publish(b0, 0, t0);
  const uint64_t h0 = KvBlockPool::block_hash(0, t0);
  EXPECT_EQ(pool.lookup(0, t0), b0);  // now referenced twice
  EXPECT_EQ(pool.lookup(0, std::vector<int32_t>{5, 7}), std::nullopt);
  EXPECT_EQ(pool.lookup(h0, t0), std::nullopt);  // same tokens, other parent
  EXPECT_EQ(pool.stats().prefix_hits, 1u);
  EXPECT_EQ(pool.stats().prefix_misses, 2u);
  pool.release(b0);
  pool.release(b0);
  // Unreferenced but cached: still found, and not free.
  EXPECT_EQ(pool.stats().cached, 1);
  EXPECT_EQ(pool.stats().free, 3);
  EXPECT_EQ(pool.lookup(0, t0), b0);
  EXPECT_EQ(pool.stats().cached, 0);
  pool.release(b0);
}

TEST(KvBlockPool, CachedBlocksAreReclaimedLeastRecentlyUsedFirst) {
  KvBlockPool pool(2, 1);
  const int32_t a = *pool.allocate();
  const int32_t b = *pool.allocate();
  pool.publish(a, 0, std::vector<int32_t>{1});
  pool.publish(b, 0, std::vector<int32_t>{2});
  pool.release(b);  // b becomes evictable first
  pool.release(a);
  EXPECT_EQ(pool.available(), 2);
  EXPECT_EQ(pool.allocate(), b);  // least recently used cached block
  EXPECT_EQ(pool.lookup(0, std::vector<int32_t>{2}), std::nullopt);  // its content left the cache
  EXPECT_EQ(pool.lookup(0, std::vector<int32_t>{1}), a);
}

}  // namespace
}  // namespace mixserve

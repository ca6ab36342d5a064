// Where the KV caches of a session live: one buffer for all of them on one device (so that the CPU
// backs them with huge pages), one per cache across devices.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/kv_cache_buffers.h"
#include "hal/registry.h"
#include "support/subset_device.h"

namespace mixserve {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.n_vocab = 32;
  c.n_embd = 128;
  c.n_layer = 3;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.head_dim = 32;  // a multiple of 32, as a Q8_0 cache needs
  c.n_ff = 96;
  c.n_ctx_train = 64;
  c.n_rot = 32;
  return c;
}

hal::Device& cpu() {
  return hal::Registry::instance().device("cpu");
}

// Every cache tensor, K then V.
std::vector<hal::Tensor*> caches(ForwardBuffers& b) {
  std::vector<hal::Tensor*> out;
  for (auto* list : {&b.k_cache, &b.v_cache}) {
    for (hal::Tensor& t : *list) out.push_back(&t);
  }
  return out;
}

TEST(KvCacheBuffers, OneDeviceHoldsEveryCacheInOneBufferWithoutOverlap) {
  for (DType type : {DType::kF32, DType::kF16, DType::kQ8_0}) {
    SCOPED_TRACE(dtype_name(type));
    ForwardLayout layout = layout_forward(small_config(), 4, 40, type);
    hal::Scheduler sched(hal::PlacementPolicy::single(cpu()));
    const auto buffers = allocate_kv_caches(sched, layout.buffers, layout.cache_bytes);
    ASSERT_EQ(buffers.size(), 1u);
    const auto all = caches(layout.buffers);
    ASSERT_EQ(all.size(), 6u);
    std::vector<std::pair<size_t, size_t>> spans;
    for (const hal::Tensor* t : all) {
      EXPECT_EQ(t->buffer, buffers.front().get());
      EXPECT_LE(t->bytes(), layout.cache_bytes);
      EXPECT_EQ(t->offset % 64, 0u) << "each cache from a 64-byte boundary";
      EXPECT_LE(t->offset + t->bytes(), buffers.front()->size());
      spans.emplace_back(t->offset, t->offset + t->bytes());
    }
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i) EXPECT_LE(spans[i - 1].second, spans[i].first) << "caches overlap";
    // Each cache holds its own bytes: write a pattern per cache through the tensors, read it back.
    for (size_t i = 0; i < all.size(); ++i) {
      std::fill_n(static_cast<uint8_t*>(all[i]->host_data()), all[i]->bytes(), static_cast<uint8_t>(i + 1));
    }
    for (size_t i = 0; i < all.size(); ++i) {
      const auto* p = static_cast<const uint8_t*>(all[i]->host_data());
      EXPECT_TRUE(std::all_of(p, p + all[i]->bytes(), [&](uint8_t v) { return v == i + 1; })) << "cache " << i;
    }
  }
}

TEST(KvCacheBuffers, SeveralDevicesGetABufferPerCache) {
  ForwardLayout layout = layout_forward(small_config(), 4, 40, DType::kF32);
  hal::PlacementPolicy policy;
  policy.devices = {&testing::registered_subset_device(), &cpu()};
  hal::Scheduler sched(policy);
  const auto buffers = allocate_kv_caches(sched, layout.buffers, layout.cache_bytes);
  const auto all = caches(layout.buffers);
  ASSERT_EQ(buffers.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i]->buffer, buffers[i].get());
    EXPECT_EQ(all[i]->offset, 0u);
    EXPECT_EQ(buffers[i]->size(), layout.cache_bytes);
  }
}

}  // namespace
}  // namespace mixserve

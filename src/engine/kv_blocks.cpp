#include "engine/kv_blocks.h"

#include <algorithm>

#include "common/error.h"

namespace mixserve {

KvBlockPool::KvBlockPool(int32_t n_blocks, int32_t block_size)
    : block_size_(block_size), refs_(static_cast<size_t>(std::max(n_blocks, 0)), 0) {
  if (n_blocks <= 0 || block_size <= 0) {
    fail(ErrorCode::kInvalidArgument, "KV cache needs a positive block count and size, got ", n_blocks, " x ", block_size);
  }
  for (int32_t b = 0; b < n_blocks; ++b) free_.insert(free_.end(), b);
}

std::optional<int32_t> KvBlockPool::allocate() {
  int32_t block = -1;
  if (!free_.empty()) {
    block = *free_.begin();
    free_.erase(free_.begin());
  } else if (!lru_.empty()) {
    block = lru_.front();
    forget(block);
  } else {
    return std::nullopt;
  }
  refs_[static_cast<size_t>(block)] = 1;
  return block;
}

void KvBlockPool::retain(int32_t block) {
  MIXSERVE_CHECK(block >= 0 && static_cast<size_t>(block) < refs_.size() && refs_[static_cast<size_t>(block)] > 0,
                 "retain of block ", block, " that is not in use");
  ++refs_[static_cast<size_t>(block)];
}

void KvBlockPool::release(int32_t block) {
  MIXSERVE_CHECK(block >= 0 && static_cast<size_t>(block) < refs_.size() && refs_[static_cast<size_t>(block)] > 0,
                 "release of block ", block, " that is not in use");
  if (--refs_[static_cast<size_t>(block)] > 0) return;
  const auto it = entries_.find(block);
  if (it == entries_.end()) {
    free_.insert(block);
    return;
  }
  it->second.lru = lru_.insert(lru_.end(), block);
  it->second.in_lru = true;
}

uint64_t KvBlockPool::block_hash(uint64_t parent, std::span<const int32_t> tokens) {
  // FNV-1a over the parent identity and the token ids, then a final avalanche (splitmix64).
  uint64_t h = 1469598103934665603ull ^ parent;
  for (int32_t t : tokens) {
    for (int i = 0; i < 4; ++i) {
      h ^= static_cast<uint8_t>(static_cast<uint32_t>(t) >> (8 * i));
      h *= 1099511628211ull;
    }
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h == 0 ? 1 : h;  // 0 means "no parent"
}

std::optional<int32_t> KvBlockPool::lookup(uint64_t parent, std::span<const int32_t> tokens) {
  const auto it = by_hash_.find(block_hash(parent, tokens));
  if (it == by_hash_.end()) {
    ++misses_;
    return std::nullopt;
  }
  Entry& e = entries_.at(it->second);
  if (e.parent != parent || !std::equal(e.tokens.begin(), e.tokens.end(), tokens.begin(), tokens.end())) {
    ++misses_;
    return std::nullopt;
  }
  const int32_t block = it->second;
  if (e.in_lru) {
    lru_.erase(e.lru);
    e.in_lru = false;
  }
  ++refs_[static_cast<size_t>(block)];
  ++hits_;
  return block;
}

void KvBlockPool::publish(int32_t block, uint64_t parent, std::span<const int32_t> tokens) {
  MIXSERVE_CHECK(static_cast<int64_t>(tokens.size()) == block_size_, "only full blocks are cached");
  if (entries_.count(block) > 0) return;
  const uint64_t h = block_hash(parent, tokens);
  if (by_hash_.count(h) > 0) return;
  by_hash_[h] = block;
  Entry& e = entries_[block];
  e.parent = parent;
  e.tokens.assign(tokens.begin(), tokens.end());
}

void KvBlockPool::forget(int32_t block) {
  const auto it = entries_.find(block);
  if (it == entries_.end()) return;
  if (it->second.in_lru) lru_.erase(it->second.lru);
  by_hash_.erase(block_hash(it->second.parent, it->second.tokens));
  entries_.erase(it);
}

KvBlockStats KvBlockPool::stats() const {
  KvBlockStats s;
  s.total = static_cast<int64_t>(refs_.size());
  s.free = static_cast<int64_t>(free_.size());
  s.cached = static_cast<int64_t>(lru_.size());
  s.used = s.total - s.free - s.cached;
  s.prefix_hits = hits_;
  s.prefix_misses = misses_;
  return s;
}

}  // namespace mixserve

// The block pool of a paged KV cache: fixed-size blocks of cache rows with reference counts, and a
// prefix cache that keeps full blocks of finished sequences so that a later prompt with the same
// prefix (a shared system prompt) reuses them instead of recomputing. One object mutates it.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <set>
#include <span>
#include <unordered_map>
#include <vector>

namespace mixserve {

/// Counts of a block pool, for admission control and /metrics.
struct KvBlockStats {
  int64_t total = 0;      ///< blocks in the pool
  int64_t used = 0;       ///< blocks referenced by at least one sequence
  int64_t cached = 0;     ///< unreferenced blocks kept for the prefix cache (reclaimable)
  int64_t free = 0;       ///< blocks holding nothing
  uint64_t prefix_hits = 0;    ///< blocks served from the prefix cache
  uint64_t prefix_misses = 0;  ///< full-block lookups that found nothing
};

/// Reference-counted blocks plus a content-addressed cache of full blocks.
class KvBlockPool {
 public:
  /// A pool of `n_blocks` blocks of `block_size` token rows each.
  KvBlockPool(int32_t n_blocks, int32_t block_size);

  /// Takes a block (the lowest free id, so tables stay contiguous when they can; else the least
  /// recently used cached block, which leaves the prefix cache). nullopt when every block is in use.
  std::optional<int32_t> allocate();
  /// Adds a reference to a block in use.
  void retain(int32_t block);
  /// Drops a reference; an unreferenced block stays in the prefix cache when registered there,
  /// else it is free at once.
  void release(int32_t block);

  /// Identity of a full block of tokens following the block with identity `parent` (0 for the first).
  static uint64_t block_hash(uint64_t parent, std::span<const int32_t> tokens);
  /// The cached block holding exactly `tokens` after `parent`, retained for the caller; nullopt if none.
  std::optional<int32_t> lookup(uint64_t parent, std::span<const int32_t> tokens);
  /// Registers a full, written block under (parent, tokens) so later prompts can reuse it. A block
  /// already registered, or content already cached in another block, is left as it is.
  void publish(int32_t block, uint64_t parent, std::span<const int32_t> tokens);

  /// Blocks that allocate() can still hand out (free + cached).
  int64_t available() const { return static_cast<int64_t>(free_.size() + lru_.size()); }
  /// Token rows per block.
  int32_t block_size() const { return block_size_; }
  /// Current counts.
  KvBlockStats stats() const;

 private:
  struct Entry {
    uint64_t parent = 0;
    std::vector<int32_t> tokens;  // compared on lookup: a hash collision can never serve wrong data
    std::list<int32_t>::iterator lru;
    bool in_lru = false;
  };
  /// Removes a cached block from the cache index.
  void forget(int32_t block);

  int32_t block_size_;
  std::vector<int32_t> refs_;
  std::set<int32_t> free_;
  std::list<int32_t> lru_;  // unreferenced cached blocks, least recently used first
  std::unordered_map<uint64_t, int32_t> by_hash_;
  std::unordered_map<int32_t, Entry> entries_;  // cached blocks
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace mixserve

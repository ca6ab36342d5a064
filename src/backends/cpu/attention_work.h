// An attention op's work for the CPU stream, prepared on one thread before any thread runs it:
// work items of query heads that share a KV head (and consecutive tokens), the cache's block
// addresses and every thread's scores, in scratch memory the caller provides.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "hal/op.h"

namespace mixserve::cpu {

/// How an attention op's work divides.
struct AttentionLayout {
  int64_t items = 0;         ///< work items
  int64_t heads_per_item = 0;  ///< query heads of an item (of one KV head's group): for one token,
                               ///< item i has heads [i * heads_per_item, (i + 1) * heads_per_item)
  int64_t item_outputs = 0;  ///< output floats of an item when the op has one token (item i
                             ///< writes [i * item_outputs, (i + 1) * item_outputs))
  size_t scratch_bytes = 0;  ///< scratch for the items' scores (and gathered rows): ops that run one
                             ///< after the other can share it
  size_t address_bytes = 0;  ///< memory for the cache blocks' addresses, written by prepare_attention:
                             ///< the op's own until its items have run
  bool gathers = false;      ///< whether preparing copies the rows of scattered cache blocks, so that
                             ///< rows stored after it (by the same graph) would be missed
};

/// The layout of `op` (an attention op) on a pool of n_threads threads; checks its shapes and block
/// table (kInternal when they do not fit).
AttentionLayout attention_layout(const hal::Op& op, int n_threads);

/// Prepared work: run(begin, end, ith) computes items [begin, end) on thread ith (any split of the
/// items over the threads gives the same bits).
struct AttentionWork {
  AttentionLayout layout;
  std::function<void(int64_t begin, int64_t end, int ith)> run;
};

/// Prepares `op` for a pool of n_threads threads, with the layout's scratch_bytes of scratch and
/// address_bytes for the block addresses, both 64-byte aligned.
AttentionWork prepare_attention(const hal::Op& op, int n_threads, uint8_t* scratch, uint8_t* addresses);

}  // namespace mixserve::cpu

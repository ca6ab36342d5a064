// Where a session's or batch runner's KV caches live: the buffers behind the K and V cache
// tensors of every layer.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "hal/device.h"
#include "hal/scheduler.h"
#include "model/transformer_builder.h"

namespace mixserve {

/// Allocates the K and V caches of `buffers` (`cache_bytes` each) on `sched` and points the cache
/// tensors at them. One buffer holds them all when one device runs every op: on the CPU a buffer of
/// 2 MiB or more is backed by huge pages, and with the 4 KiB pages of separate small buffers each
/// new cache page cost a TLB miss of about a microsecond per KV store in decoding (Zen 5 VM,
/// TinyLlama, 128-row caches). With several devices, one buffer per cache, since each device's
/// instance of a buffer covers all of it.
std::vector<std::unique_ptr<hal::Buffer>> allocate_kv_caches(hal::Scheduler& sched, ForwardBuffers& buffers,
                                                             size_t cache_bytes);

}  // namespace mixserve

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
/// 2 MiB or more is backed by huge pages. On the 4 KiB pages of separate small buffers a KV store
/// in decoding took 0.6-1.2 us (a TLB miss whose page walk came from memory), on huge pages
/// 0.03-0.05 us (Zen 5 VM, TinyLlama, 128-row caches). With several devices, one buffer per cache,
/// since each device's instance of a buffer covers all of it.
std::vector<std::unique_ptr<hal::Buffer>> allocate_kv_caches(hal::Scheduler& sched, ForwardBuffers& buffers,
                                                             size_t cache_bytes);

}  // namespace mixserve

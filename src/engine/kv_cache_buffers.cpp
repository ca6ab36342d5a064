#include "engine/kv_cache_buffers.h"

namespace mixserve {

std::vector<std::unique_ptr<hal::Buffer>> allocate_kv_caches(hal::Scheduler& sched, ForwardBuffers& buffers,
                                                             size_t cache_bytes) {
  std::vector<hal::Tensor*> caches;
  for (auto* list : {&buffers.k_cache, &buffers.v_cache}) {
    for (hal::Tensor& t : *list) caches.push_back(&t);
  }
  std::vector<std::unique_ptr<hal::Buffer>> out;
  if (sched.policy().devices.size() == 1) {
    const size_t stride = (cache_bytes + 63) / 64 * 64;  // each cache from a 64-byte boundary
    out.push_back(sched.allocate(stride * caches.size()));
    for (size_t i = 0; i < caches.size(); ++i) {
      caches[i]->buffer = out.front().get();
      caches[i]->offset = stride * i;
    }
    return out;
  }
  for (hal::Tensor* t : caches) {
    out.push_back(sched.allocate(cache_bytes));
    t->buffer = out.back().get();
    t->offset = 0;
  }
  return out;
}

}  // namespace mixserve

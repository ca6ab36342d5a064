#include "hal/validity_map.h"

#include <bit>

#include "common/error.h"

namespace mixserve::hal {

ValidityMap::ValidityMap(size_t size) : size_(size) { segments_[0] = 0; }

void ValidityMap::split_at(size_t at) {
  if (at >= size_) return;
  auto it = segments_.upper_bound(at);
  --it;  // segment containing `at` (segments_ always has key 0)
  if (it->first != at) segments_.emplace_hint(std::next(it), at, it->second);
}

void ValidityMap::coalesce(size_t begin, size_t end) {
  auto it = segments_.upper_bound(begin);
  if (it != segments_.begin()) --it;
  if (it != segments_.begin()) --it;
  while (it != segments_.end() && it->first <= end) {
    auto next = std::next(it);
    if (next != segments_.end() && next->second == it->second) {
      segments_.erase(next);
    } else {
      it = next;
    }
  }
}

void ValidityMap::make_valid(size_t begin, size_t end, int slot,
                             const std::function<void(size_t, size_t, int)>& copy) {
  MIXSERVE_CHECK(begin <= end && end <= size_, "range [", begin, ", ", end, ") outside a buffer of ", size_);
  if (begin == end) return;
  const DeviceMask bit = DeviceMask{1} << slot;
  split_at(begin);
  split_at(end);
  for (auto it = segments_.find(begin); it != segments_.end() && it->first < end; ++it) {
    if (it->second & bit) continue;
    if (it->second != 0) {
      const auto next = std::next(it);
      const size_t seg_end = next == segments_.end() ? size_ : next->first;
      copy(it->first, seg_end, std::countr_zero(it->second));
    }
    it->second |= bit;
  }
  coalesce(begin, end);
}

void ValidityMap::mark_written(size_t begin, size_t end, int slot) {
  MIXSERVE_CHECK(begin <= end && end <= size_, "range [", begin, ", ", end, ") outside a buffer of ", size_);
  if (begin == end) return;
  split_at(begin);
  split_at(end);
  auto first = segments_.find(begin);
  auto last = segments_.lower_bound(end);
  first->second = DeviceMask{1} << slot;
  segments_.erase(std::next(first), last);
  coalesce(begin, end);
}

DeviceMask ValidityMap::valid_on(size_t begin, size_t end) const {
  DeviceMask mask = ~DeviceMask{0};
  auto it = segments_.upper_bound(begin);
  --it;
  for (; it != segments_.end() && it->first < end; ++it) mask &= it->second;
  return mask;
}

}  // namespace mixserve::hal

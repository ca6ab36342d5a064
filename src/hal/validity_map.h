// Which devices hold the current bytes of a buffer that is mirrored on several devices, tracked by
// byte range, so that the scheduler copies only the ranges a device lacks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>

namespace mixserve::hal {

/// Bit set of device slots (slot i = bit i); at most 32 devices take part in one schedule.
using DeviceMask = uint32_t;

/// Per-byte-range validity of a mirrored buffer of fixed size. Bytes never written have an empty
/// mask: they are undefined everywhere, so making them valid on a device needs no copy.
class ValidityMap {
 public:
  /// A map for `size` bytes, none written yet.
  explicit ValidityMap(size_t size);

  /// Calls `copy(begin, end, source_slot)` for every sub-range of [begin, end) that other devices
  /// hold but `slot` lacks, then marks the whole range valid on `slot` too.
  void make_valid(size_t begin, size_t end, int slot,
                  const std::function<void(size_t, size_t, int)>& copy);
  /// Records that `slot` wrote [begin, end): it is now the only holder of those bytes.
  void mark_written(size_t begin, size_t end, int slot);
  /// Devices holding every byte of [begin, end) (0 when some byte was never written).
  DeviceMask valid_on(size_t begin, size_t end) const;
  /// Number of ranges tracked (for tests: adjacent ranges with equal masks are merged).
  size_t ranges() const { return segments_.size(); }

 private:
  /// Splits the segment containing `at` so that a segment starts at `at`.
  void split_at(size_t at);
  /// Merges equal-mask neighbours around [begin, end).
  void coalesce(size_t begin, size_t end);

  size_t size_;
  std::map<size_t, DeviceMask> segments_;  // start -> mask; a segment ends where the next starts
};

}  // namespace mixserve::hal

// A buffer that ends (or starts) flush against an inaccessible page, so that a kernel reading
// past either end of its input crashes the test instead of passing by luck.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace mixserve::testing {

/// `bytes` of memory flush against an inaccessible page: after the data (kAfter) or before it.
/// data() is nullptr when the mapping fails.
class GuardedBuffer {
 public:
  enum Side { kAfter, kBefore };
  GuardedBuffer(size_t bytes, Side side) {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    data_pages_ = (bytes + page_ - 1) / page_;
    map_bytes_ = (data_pages_ + 1) * page_;
    void* m = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return;
    base_ = static_cast<uint8_t*>(m);
    if (side == kAfter) {
      mprotect(base_ + data_pages_ * page_, page_, PROT_NONE);
      data_ = base_ + data_pages_ * page_ - bytes;
    } else {
      mprotect(base_, page_, PROT_NONE);
      data_ = base_ + page_;
    }
  }
  ~GuardedBuffer() {
    if (base_ != nullptr) munmap(base_, map_bytes_);
  }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  uint8_t* data() const { return data_; }

 private:
  size_t page_ = 0, data_pages_ = 0, map_bytes_ = 0;
  uint8_t* base_ = nullptr;
  uint8_t* data_ = nullptr;
};

}  // namespace mixserve::testing

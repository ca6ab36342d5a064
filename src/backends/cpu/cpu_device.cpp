#include "backends/cpu/cpu_device.h"

#include <sys/mman.h>

#include <cstdlib>
#include <fstream>
#include <new>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_stream.h"
#include "backends/cpu/matmul_kernels.h"
#include "backends/cpu/weight_packing.h"
#include "common/cpu_features.h"
#include "common/error.h"
#include "common/thread_pool.h"

namespace mixserve::cpu {
namespace {

constexpr size_t kAlignment = 64;
// Large buffers start on a 2 MiB boundary and are offered to transparent huge pages (which, in
// the kernel's "madvise" mode, back only memory advised so): fewer TLB misses.
constexpr size_t kHugeAlignment = size_t{2} << 20;

size_t alignment_for(size_t bytes) { return bytes >= kHugeAlignment ? kHugeAlignment : kAlignment; }

std::string read_cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}

// Returns the value in bytes of a /proc/meminfo field such as "MemTotal", or 0.
uint64_t meminfo_bytes(const std::string& field) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  uint64_t kib = 0;
  std::string unit;
  while (in >> name >> kib >> unit) {
    if (name == field + ":") return kib * 1024;
  }
  return 0;
}

std::string vendor_of(const std::string& cpu_name) {
  if (cpu_name.find("AMD") != std::string::npos) return "AMD";
  if (cpu_name.find("Intel") != std::string::npos) return "Intel";
  return "unknown";
}

bool is_f32(const hal::Tensor* t) { return t != nullptr && t->dtype == DType::kF32; }

// The element types of the KV caches the attention kernels read.
bool is_kv_cache_type(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kQ8_0;
}

class CpuBackend : public hal::Backend {
 public:
  std::string name() const override { return "cpu"; }
  std::vector<hal::Device*> devices() override { return {&device_}; }

 private:
  CpuDevice device_;
};

}  // namespace

CpuBuffer::CpuBuffer(hal::Device& device, void* data, size_t bytes, bool owned)
    : device_(device), data_(data), bytes_(bytes), owned_(owned) {}

CpuBuffer::~CpuBuffer() {
  if (owned_) ::operator delete(data_, std::align_val_t(alignment_for(bytes_)));
}

CpuDevice::CpuDevice() : cpu_name_(read_cpu_name()) {}

hal::DeviceInfo CpuDevice::info() const {
  hal::DeviceInfo info;
  info.id = "cpu";
  info.name = cpu_name_;
  info.vendor = vendor_of(cpu_name_);
  info.backend = "cpu";
  info.memory_total = meminfo_bytes("MemTotal");
  info.memory_free = meminfo_bytes("MemAvailable");
  info.compute_units = ThreadPool::hardware_threads();
  info.details = cpu_features_string(cpu_features());
  return info;
}

bool CpuDevice::supports_op(const hal::Op& op) const {
  if (op.kind == hal::OpKind::kStoreKV) {  // into an f32, f16 or Q8_0 cache (rows of whole blocks)
    return op.dst != nullptr && is_kv_cache_type(op.dst->dtype) && is_f32(op.src[0]) &&
           op.dst->ne[0] % dtype_info(op.dst->dtype).block_elems == 0 &&
           (op.src[1] == nullptr || op.src[1]->dtype == DType::kI32);
  }
  if (op.dst == nullptr || op.dst->dtype != DType::kF32) return false;
  switch (op.kind) {
    case hal::OpKind::kGetRows:
    case hal::OpKind::kMatMul:
      return op.src[0] != nullptr && dtype_info(op.src[0]->dtype).computable &&
             (op.kind == hal::OpKind::kMatMul || op.src[0]->layout == hal::TensorLayout::kGguf) &&
             (op.kind == hal::OpKind::kGetRows ? op.src[1] != nullptr && op.src[1]->dtype == DType::kI32
                                               : is_f32(op.src[1]));
    case hal::OpKind::kAdd:
    case hal::OpKind::kRmsNorm:
    case hal::OpKind::kSwiGLU:
      return is_f32(op.src[0]) && is_f32(op.src[1]);
    case hal::OpKind::kRope:
      return is_f32(op.src[0]);
    case hal::OpKind::kStoreKV: return false;  // handled above
    case hal::OpKind::kAttention:
      return is_f32(op.src[0]) && op.src[1] != nullptr && op.src[2] != nullptr && is_kv_cache_type(op.src[1]->dtype) &&
             op.src[2]->dtype == op.src[1]->dtype &&
             op.src[0]->ne[0] % dtype_info(op.src[1]->dtype).block_elems == 0 &&  // heads of whole blocks
             (op.src[3] == nullptr || op.src[3]->dtype == DType::kI32);
  }
  return false;
}

std::unique_ptr<hal::Buffer> CpuDevice::allocate(size_t bytes) {
  // A large buffer takes whole huge pages: its last one too.
  const size_t whole = bytes >= kHugeAlignment ? (bytes + kHugeAlignment - 1) / kHugeAlignment * kHugeAlignment : bytes;
  void* data = ::operator new(whole == 0 ? kAlignment : whole, std::align_val_t(alignment_for(bytes)), std::nothrow);
  if (data == nullptr) {
    fail(ErrorCode::kResourceExhausted, "cannot allocate ", bytes, " bytes of host memory");
  }
  if (bytes >= kHugeAlignment) madvise(data, whole, MADV_HUGEPAGE);
  return std::make_unique<CpuBuffer>(*this, data, bytes, true);
}

std::unique_ptr<hal::Buffer> CpuDevice::wrap_host(const void* data, size_t bytes) {
  // The memory is only ever read through weight tensors; the const_cast does not lead to writes.
  return std::make_unique<CpuBuffer>(*this, const_cast<void*>(data), bytes, false);
}

std::unique_ptr<hal::Stream> CpuDevice::create_stream(const hal::StreamOptions& options) {
  return std::make_unique<CpuStream>(*this, options.n_threads);
}

size_t CpuDevice::pack_weights(std::span<hal::Tensor* const> weights) {
  std::vector<hal::Tensor*> to_pack;
  for (hal::Tensor* t : weights) {
    const auto* buffer = dynamic_cast<const CpuBuffer*>(t->buffer);
    if (buffer == nullptr || &buffer->device() != this || !buffer->owned()) continue;  // not ours to change
    if (t->layout == hal::TensorLayout::kGguf && packed_matmul_available(t->dtype, t->ne[0], t->row_bytes())) {
      to_pack.push_back(t);
    }
  }
  if (to_pack.empty()) return 0;
  ThreadPool pool;
  for (hal::Tensor* t : to_pack) {
    auto* base = static_cast<uint8_t*>(t->host_data());
    const size_t row_bytes = t->row_bytes();
    pool.parallel_for(t->rows(), 64, [&](int64_t begin, int64_t end, int) {
      pack_rows(t->dtype, t->ne[0], base + static_cast<size_t>(begin) * row_bytes, row_bytes, end - begin);
    });
    t->layout = hal::TensorLayout::kDevicePacked;
  }
  return to_pack.size();
}

std::unique_ptr<hal::Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace mixserve::cpu

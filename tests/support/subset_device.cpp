#include "support/subset_device.h"

#include <cstring>

#include "common/error.h"
#include "hal/registry.h"

namespace mixserve::testing {
namespace {

hal::Device& cpu() { return hal::Registry::instance().device("cpu"); }

// Private memory: a CPU allocation whose address is not exposed as host-visible.
class SubsetBuffer : public hal::Buffer {
 public:
  SubsetBuffer(hal::Device& device, std::unique_ptr<hal::Buffer> memory) : device_(device), memory_(std::move(memory)) {}
  size_t size() const override { return memory_->size(); }
  void* host_ptr() const override { return nullptr; }
  hal::Device& device() const override { return device_; }
  hal::Buffer& memory() const { return *memory_; }

 private:
  hal::Device& device_;
  std::unique_ptr<hal::Buffer> memory_;
};

hal::Buffer& memory_of(const hal::Buffer& buffer) {
  const auto* own = dynamic_cast<const SubsetBuffer*>(&buffer);
  if (own == nullptr) fail(ErrorCode::kInvalidArgument, "subset device given a buffer of ", buffer.device().info().id);
  return own->memory();
}

class SubsetStream : public hal::Stream {
 public:
  SubsetStream(const SubsetDevice& device, std::unique_ptr<hal::Stream> cpu) : device_(device), cpu_(std::move(cpu)) {}

  void run(const hal::Op& op) override {
    if (!device_.supports_op(op)) fail(ErrorCode::kUnimplemented, "subset device cannot run ", hal::op_name(op.kind));
    std::array<hal::Tensor, 5> local;
    std::array<const hal::Tensor*, 5> original{};
    size_t n = 0;
    auto remap = [&](const hal::Tensor* t) -> const hal::Tensor* {
      if (t == nullptr) return nullptr;
      for (size_t i = 0; i < n; ++i) {
        if (original[i] == t) return &local[i];
      }
      local[n] = *t;
      local[n].buffer = &memory_of(*t->buffer);
      original[n] = t;
      return &local[n++];
    };
    hal::Op mapped = op;
    for (size_t i = 0; i < op.src.size(); ++i) mapped.src[i] = remap(op.src[i]);
    mapped.dst = const_cast<hal::Tensor*>(remap(op.dst));
    cpu_->run(mapped);
  }
  void write(hal::Buffer& dst, size_t offset, const void* src, size_t bytes) override {
    std::memcpy(static_cast<uint8_t*>(memory_of(dst).host_ptr()) + offset, src, bytes);
  }
  void read(const hal::Buffer& src, size_t offset, void* dst, size_t bytes) override {
    std::memcpy(dst, static_cast<const uint8_t*>(memory_of(src).host_ptr()) + offset, bytes);
  }
  void synchronize() override {}

 private:
  const SubsetDevice& device_;
  std::unique_ptr<hal::Stream> cpu_;
};

class SubsetBackend : public hal::Backend {
 public:
  explicit SubsetBackend(SubsetDevice* device) : device_(device) {}
  std::string name() const override { return "subset"; }
  std::vector<hal::Device*> devices() override { return {device_}; }

 private:
  SubsetDevice* device_;
};

}  // namespace

SubsetDevice::SubsetDevice(std::string id, std::set<hal::OpKind> kinds) : id_(std::move(id)), kinds_(std::move(kinds)) {}

hal::DeviceInfo SubsetDevice::info() const {
  hal::DeviceInfo info = cpu().info();
  info.id = id_;
  info.name = "test device (CPU kernels, private memory)";
  info.backend = "subset";
  return info;
}

bool SubsetDevice::supports_op(const hal::Op& op) const { return kinds_.count(op.kind) > 0 && cpu().supports_op(op); }

std::unique_ptr<hal::Buffer> SubsetDevice::allocate(size_t bytes) {
  return std::make_unique<SubsetBuffer>(*this, cpu().allocate(bytes));
}

std::unique_ptr<hal::Stream> SubsetDevice::create_stream(const hal::StreamOptions& options) {
  return std::make_unique<SubsetStream>(*this, cpu().create_stream(options));
}

SubsetDevice& registered_subset_device() {
  static SubsetDevice* device = [] {
    auto* d = new SubsetDevice("subset:0", {hal::OpKind::kMatMul, hal::OpKind::kRmsNorm, hal::OpKind::kSwiGLU,
                                            hal::OpKind::kAdd});
    hal::Registry::instance().add(std::make_unique<SubsetBackend>(d));
    return d;
  }();
  return *device;
}

}  // namespace mixserve::testing

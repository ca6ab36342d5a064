#include "hal/scheduler.h"

#include <algorithm>
#include <bit>
#include <functional>

#include "common/error.h"
#include "hal/validity_map.h"

namespace mixserve::hal {

// A buffer with one instance per device slot (allocated on first use) and per-range validity.
// Only the scheduler touches the instances and the map, so they are plain members.
class Scheduler::Mirrored : public Buffer {
 public:
  Mirrored(Device& home, size_t bytes, size_t slots) : validity(bytes), instances(slots), home_(home), bytes_(bytes) {}
  size_t size() const override { return bytes_; }
  void* host_ptr() const override { return nullptr; }
  Device& device() const override { return home_; }

  ValidityMap validity;                            // which slot holds which bytes
  std::vector<std::unique_ptr<Buffer>> instances;  // per slot; null until first use

 private:
  Device& home_;
  size_t bytes_;
};

namespace {

// Byte range [begin, end) of a tensor within its buffer.
struct Range {
  size_t begin = 0;
  size_t end = 0;
};

Range whole(const Tensor& t) { return {t.offset, t.offset + t.bytes()}; }

Range rows(const Tensor& t, int64_t first, int64_t count) {
  const size_t row = t.row_bytes();
  return {t.offset + static_cast<size_t>(first) * row, t.offset + static_cast<size_t>(first + count) * row};
}

// Byte ranges of logical cache rows [first, first + count) of `cache` under a paged block table
// (`table` empty: rows are physical).
std::vector<Range> cache_rows(const Tensor& cache, const std::vector<int32_t>& table, int64_t block, int64_t first,
                              int64_t count) {
  if (table.empty()) return {rows(cache, first, count)};
  std::vector<Range> out;
  for (int64_t r = first; r < first + count;) {
    const int64_t b = r / block;
    const int64_t end = std::min(first + count, (b + 1) * block);
    MIXSERVE_CHECK(static_cast<size_t>(b) < table.size(), "block table too short for row ", r);
    out.push_back(rows(cache, int64_t{table[static_cast<size_t>(b)]} * block + r % block, end - r));
    r = end;
  }
  return out;
}

// A byte range an op reads or writes.
struct Access {
  const Tensor* tensor;
  Range range;
  bool write;
};

// The byte ranges `op` reads and writes (caches: only the rows it touches); `table_of` reads a
// block table back to the host.
std::vector<Access> accesses(const Op& op, const std::function<std::vector<int32_t>(const Tensor*)>& table_of) {
  std::vector<Access> out;
  for (size_t i = 0; i < op.src.size(); ++i) {
    const Tensor* t = op.src[i];
    if (t == nullptr || t->buffer == nullptr) continue;
    if (op.kind == OpKind::kAttention && (i == 1 || i == 2)) {
      // Only the cache rows the queries can see are read.
      const auto table = table_of(op.src[3]);
      for (const Range& r : cache_rows(*t, table, op.i[2], 0, op.i[0] + op.src[0]->ne[2])) out.push_back({t, r, false});
    } else {
      out.push_back({t, whole(*t), false});
    }
  }
  if (op.kind == OpKind::kStoreKV) {
    // Only the new rows are written.
    const auto table = table_of(op.src[1]);
    for (const Range& r : cache_rows(*op.dst, table, op.i[1], op.i[0], op.src[0]->ne[1])) out.push_back({op.dst, r, true});
  } else {
    out.push_back({op.dst, whole(*op.dst), true});
  }
  return out;
}

}  // namespace

Scheduler::Scheduler(PlacementPolicy policy, const StreamOptions& options)
    : policy_(std::move(policy)), options_(options) {
  MIXSERVE_CHECK(!policy_.devices.empty() && policy_.devices.size() <= 32, "a schedule needs 1 to 32 devices, got ",
                 policy_.devices.size());
  streams_.resize(policy_.devices.size());
  stats_.ops_per_device.assign(policy_.devices.size(), 0);
  // The host device (last resort, always present) takes host writes and serves host reads.
  host_slot_ = static_cast<int>(policy_.devices.size()) - 1;
}

Scheduler::~Scheduler() = default;

Stream& Scheduler::stream(int slot) {
  auto& s = streams_[static_cast<size_t>(slot)];
  if (!s) s = policy_.devices[static_cast<size_t>(slot)]->create_stream(options_);
  return *s;
}

std::unique_ptr<Buffer> Scheduler::allocate(size_t bytes) {
  if (policy_.devices.size() == 1) return policy_.devices.front()->allocate(bytes);
  return std::make_unique<Mirrored>(*policy_.devices[static_cast<size_t>(host_slot_)], bytes, policy_.devices.size());
}

Buffer& Scheduler::instance(Mirrored& m, int slot) {
  auto& inst = m.instances[static_cast<size_t>(slot)];
  if (!inst) inst = policy_.devices[static_cast<size_t>(slot)]->allocate(m.size());
  return *inst;
}

void Scheduler::copy_range(Mirrored& m, size_t begin, size_t end, int from, int to) {
  Buffer& src = instance(m, from);
  Buffer& dst = instance(m, to);
  const size_t n = end - begin;
  // Both sides are finished before and after each copy: the copy must not race pending kernels,
  // and host memory handed to a stream must stay unchanged until the stream has read it.
  stream(from).synchronize();
  if (const auto* hs = static_cast<const uint8_t*>(src.host_ptr())) {
    stream(to).write(dst, begin, hs + begin, n);
    stream(to).synchronize();
  } else if (auto* hd = static_cast<uint8_t*>(dst.host_ptr())) {
    stream(to).synchronize();
    stream(from).read(src, begin, hd + begin, n);
    stream(from).synchronize();
  } else {
    staging_.resize(n);
    stream(from).read(src, begin, staging_.data(), n);
    stream(from).synchronize();
    stream(to).write(dst, begin, staging_.data(), n);
    stream(to).synchronize();
  }
  ++stats_.copies;
  stats_.bytes_copied += n;
}

void Scheduler::make_valid(Mirrored& m, size_t begin, size_t end, int slot) {
  m.validity.make_valid(begin, end, slot, [&](size_t b, size_t e, int from) { copy_range(m, b, e, from, slot); });
}

int Scheduler::choose_slot(const Op& op) {
  int pinned = -1;
  const Tensor* pinned_by = nullptr;
  auto check = [&](const Tensor* t) {
    if (t == nullptr || t->buffer == nullptr || dynamic_cast<Mirrored*>(t->buffer) != nullptr) return;
    const int slot = policy_.slot_of(&t->buffer->device());
    if (slot < 0) {
      fail(ErrorCode::kInternal, "tensor '", t->name, "' lives on ", t->buffer->device().info().id,
           ", which is not in this schedule (", policy_.describe(), ")");
    }
    if (pinned >= 0 && pinned != slot) {
      fail(ErrorCode::kInternal, op_name(op.kind), " reads '", pinned_by->name, "' and '", t->name,
           "', which live on different devices");
    }
    pinned = slot;
    pinned_by = t;
  };
  check(op.dst);
  for (const Tensor* t : op.src) check(t);
  if (pinned < 0) {
    const OpPlacement p = policy_.place(op);
    if (p.fallback()) ++stats_.fallbacks;
    return policy_.slot_of(p.device);
  }
  Device& device = *policy_.devices[static_cast<size_t>(pinned)];
  if (!device.supports_op(op)) {
    fail(ErrorCode::kUnimplemented, op_name(op.kind), " on '", pinned_by->name, "' cannot run on ", device.info().id,
         ", where that tensor was placed");
  }
  if (&device != policy_.first_choice(op)) ++stats_.fallbacks;
  return pinned;
}

std::vector<int32_t> Scheduler::read_table(const Tensor* table) {
  if (table == nullptr) return {};
  std::vector<int32_t> ids(static_cast<size_t>(table->elements()));
  read(*table->buffer, table->offset, ids.data(), ids.size() * sizeof(int32_t));
  synchronize();
  return ids;
}

void Scheduler::run(const Op& op) {
  if (policy_.devices.size() == 1) {
    stream(0).run(op);
    ++stats_.ops_per_device[0];
    return;
  }
  const int slot = choose_slot(op);
  const std::vector<Access> access = accesses(op, [this](const Tensor* t) { return read_table(t); });
  for (const Access& a : access) {
    auto* m = dynamic_cast<Mirrored*>(a.tensor->buffer);
    if (m != nullptr && !a.write) make_valid(*m, a.range.begin, a.range.end, slot);
  }
  // Tensors on mirrored buffers are re-pointed at this device's instance; aliasing (in-place ops
  // whose dst is a source) is preserved because each distinct tensor is remapped once.
  std::array<Tensor, 5> local;
  std::array<const Tensor*, 5> original{};
  size_t n_local = 0;
  auto remap = [&](const Tensor* t) -> Tensor* {
    for (size_t i = 0; i < n_local; ++i) {
      if (original[i] == t) return &local[i];
    }
    local[n_local] = *t;
    original[n_local] = t;
    if (auto* m = dynamic_cast<Mirrored*>(t->buffer)) local[n_local].buffer = &instance(*m, slot);
    return &local[n_local++];
  };
  Op mapped = op;
  for (size_t i = 0; i < op.src.size(); ++i) {
    if (op.src[i] != nullptr && op.src[i]->buffer != nullptr) mapped.src[i] = remap(op.src[i]);
  }
  mapped.dst = remap(op.dst);
  stream(slot).run(mapped);
  for (const Access& a : access) {
    auto* m = dynamic_cast<Mirrored*>(a.tensor->buffer);
    if (m != nullptr && a.write) m->validity.mark_written(a.range.begin, a.range.end, slot);
  }
  ++stats_.ops_per_device[static_cast<size_t>(slot)];
}

void Scheduler::run_all(std::span<const Op> ops) {
  if (policy_.devices.size() != 1) {
    for (const Op& op : ops) run(op);
    return;
  }
  stream(0).run_all(ops);
  stats_.ops_per_device[0] += ops.size();
}

bool Scheduler::set_profile(OpProfile* profile) {
  bool all = true;
  for (int slot = 0; slot < static_cast<int>(streams_.size()); ++slot) {
    // Clearing touches only the streams that exist; setting creates the others, so that a stream
    // created later cannot run untimed.
    if (profile == nullptr && !streams_[static_cast<size_t>(slot)]) continue;
    all = stream(slot).set_profile(profile) && all;
  }
  return all;
}

void Scheduler::write(Buffer& dst, size_t offset, const void* src, size_t bytes) {
  auto* m = dynamic_cast<Mirrored*>(&dst);
  if (m == nullptr) {
    const int slot = policy_.slot_of(&dst.device());
    MIXSERVE_CHECK(slot >= 0, "write to a buffer outside the schedule");
    stream(slot).write(dst, offset, src, bytes);
    return;
  }
  stream(host_slot_).write(instance(*m, host_slot_), offset, src, bytes);
  m->validity.mark_written(offset, offset + bytes, host_slot_);
}

void Scheduler::read(const Buffer& src, size_t offset, void* dst, size_t bytes) {
  auto* m = dynamic_cast<Mirrored*>(const_cast<Buffer*>(&src));
  if (m == nullptr) {
    const int slot = policy_.slot_of(&src.device());
    MIXSERVE_CHECK(slot >= 0, "read from a buffer outside the schedule");
    stream(slot).read(src, offset, dst, bytes);
    return;
  }
  const DeviceMask valid = m->validity.valid_on(offset, offset + bytes);
  int slot = host_slot_;
  if (valid != 0 && !(valid & (DeviceMask{1} << host_slot_))) slot = std::countr_zero(valid);
  if (valid == 0) make_valid(*m, offset, offset + bytes, slot);  // pieces may be spread over devices
  stream(slot).read(instance(*m, slot), offset, dst, bytes);
}

void Scheduler::synchronize() {
  for (auto& s : streams_) {
    if (s) s->synchronize();
  }
}

}  // namespace mixserve::hal

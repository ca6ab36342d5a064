// Runs a list of ops across several devices (like ggml's backend scheduler): each op goes to the
// device its placement policy chooses, or to the device that holds its weights; activations and
// caches live in buffers mirrored lazily on the devices that touch them, and the byte ranges a device
// lacks are copied to it just before an op needs them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "hal/device.h"
#include "hal/placement.h"

namespace mixserve::hal {

/// Counters of what the scheduler did (for logs, /metrics and tests).
struct SchedulerStats {
  std::vector<uint64_t> ops_per_device;  ///< ops run, indexed like PlacementPolicy::devices
  uint64_t fallbacks = 0;                ///< ops that ran on another device than their first choice
  uint64_t copies = 0;                   ///< device-to-device range copies
  uint64_t bytes_copied = 0;             ///< bytes those copies moved
};

/// A stream over the devices of a placement policy. Buffers from its allocate() are mirrored;
/// buffers of a single device (weights) pin the ops that read them to that device.
class Scheduler : public Stream {
 public:
  /// A scheduler over `policy.devices`; streams are created with `options` when first used.
  Scheduler(PlacementPolicy policy, const StreamOptions& options = {});
  ~Scheduler() override;

  /// A buffer of `bytes` mirrored on every device that runs an op touching it (device memory is
  /// allocated on first use). Owned by the caller; must not outlive the scheduler.
  std::unique_ptr<Buffer> allocate(size_t bytes);

  void run(const Op& op) override;
  /// One device: the ops go to its stream's run_all (which may fuse them); several: run() each.
  void run_all(std::span<const Op> ops) override;
  void write(Buffer& dst, size_t offset, const void* src, size_t bytes) override;
  void read(const Buffer& src, size_t offset, void* dst, size_t bytes) override;
  void synchronize() override;
  /// Sets the profile of every device's stream; true when all of them time their ops.
  bool set_profile(OpProfile* profile) override;

  /// The policy in use.
  const PlacementPolicy& policy() const { return policy_; }
  /// Counters since construction.
  const SchedulerStats& stats() const { return stats_; }

 private:
  class Mirrored;
  /// A block table's ids read back to the host (empty for nullptr).
  std::vector<int32_t> read_table(const Tensor* table);
  /// The stream of device slot `slot`, created on first use.
  Stream& stream(int slot);
  /// The instance of `m` on `slot`, allocated on first use.
  Buffer& instance(Mirrored& m, int slot);
  /// Makes [begin, end) of `m` current on `slot`, copying from other devices as needed.
  void make_valid(Mirrored& m, size_t begin, size_t end, int slot);
  /// Copies [begin, end) of `m` from slot `from` to slot `to`.
  void copy_range(Mirrored& m, size_t begin, size_t end, int from, int to);
  /// Device slot an op runs on (pinned by single-device buffers, else the policy's choice).
  int choose_slot(const Op& op);

  PlacementPolicy policy_;
  StreamOptions options_;
  int host_slot_ = 0;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<uint8_t> staging_;
  SchedulerStats stats_;
};

}  // namespace mixserve::hal

// Which device runs each op when a model spans several devices: a priority list of devices, optional
// per-layer assignments (a layer split), and the rule that an op a device cannot run falls back to
// the next device loudly (or is an error when fallback is forbidden).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hal/device.h"

namespace mixserve::hal {

/// Transformer layers [first, last] (inclusive) that prefer `device`.
struct LayerAssignment {
  int32_t first = 0;         ///< first layer
  int32_t last = 0;          ///< last layer (inclusive)
  Device* device = nullptr;  ///< preferred device (owned by the registry)
};

/// Where an op runs and where it wanted to run.
struct OpPlacement {
  Device* device = nullptr;     ///< device that runs the op
  Device* preferred = nullptr;  ///< first choice (split device of its layer, else the first device)
  /// True when the op runs on a device other than its first choice.
  bool fallback() const { return device != preferred; }
};

/// Devices ops may run on and the order of preference.
struct PlacementPolicy {
  std::vector<Device*> devices;          ///< priority order; includes the host CPU (appended as the last resort unless listed)
  std::vector<LayerAssignment> layers;   ///< per-layer first choices (a layer split); may be empty
  bool allow_fallback = true;            ///< false: an op its first-choice device cannot run is an error

  /// Parses a device list ("opencl:0,cpu"; ids from `mixserve devices`) and a layer split
  /// ("layers=0-11:opencl:0,12-21:cpu" or "" for none), looking devices up in the registry. Split
  /// devices missing from the list are appended to it, then the CPU when it is missing. Throws kInvalidArgument for malformed text or
  /// overlapping ranges, kNotFound for unknown devices.
  static PlacementPolicy parse(const std::string& device_list, const std::string& split, bool allow_fallback);
  /// A policy running everything on `device` (plus the CPU as last resort when it is another device).
  static PlacementPolicy single(Device& device);

  /// Checks that every split range lies within [0, n_layer); throws kInvalidArgument otherwise.
  void check_layers(int64_t n_layer) const;
  /// Chooses the device for `op`: the first of (its layer's split device, then `devices` in order)
  /// whose supports_op accepts it. Throws kUnimplemented when no device supports it, or when the
  /// choice is a fallback and fallback is forbidden (the message names op, layer and devices).
  OpPlacement place(const Op& op) const;
  /// The first-choice device of `op` (its layer's split device, else the first device).
  Device* first_choice(const Op& op) const;
  /// Slot of `device` in `devices`, or -1.
  int slot_of(const Device* device) const;
  /// "opencl:0 > cpu, layers 0-11 on opencl:0" for logs.
  std::string describe() const;
};

/// Whether operators have forbidden fallback through the environment (MIXSERVE_NO_FALLBACK=1).
bool fallback_forbidden_by_env();

}  // namespace mixserve::hal

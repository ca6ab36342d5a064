// Process-wide list of backends and lookup of devices by id.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hal/device.h"

namespace mixserve::hal {

/// Holds every backend compiled into this build that found usable devices.
class Registry {
 public:
  /// The registry with all built-in backends registered (done once, thread-safe).
  static Registry& instance();

  /// Adds a backend; the registry owns it.
  void add(std::unique_ptr<Backend> backend);
  /// All devices of all backends, in registration order (CPU first).
  std::vector<Device*> devices() const;
  /// Device by id ("cpu", "cuda:0"); throws kNotFound listing the known ids and the
  /// statuses of backends without devices.
  Device& device(const std::string& id) const;
  /// Non-empty Backend::status() lines ("OpenCL: no platform found ..."), in registration order.
  std::vector<std::string> statuses() const;

 private:
  std::vector<std::unique_ptr<Backend>> backends_;
};

}  // namespace mixserve::hal

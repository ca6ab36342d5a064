// The CPU backend: one device ("cpu") backed by host memory and a thread pool.
#pragma once

#include <memory>

#include "hal/device.h"

namespace mixserve::cpu {

/// Creates the CPU backend with its single device.
std::unique_ptr<hal::Backend> make_cpu_backend();

}  // namespace mixserve::cpu

#include "hal/registry.h"

#include "backends/cpu/cpu_backend.h"
#ifdef MIXSERVE_HAVE_OPENCL
#include "backends/opencl/opencl_backend.h"
#endif
#include "common/error.h"

namespace mixserve::hal {

Registry& Registry::instance() {
  static Registry* registry = [] {
    auto* r = new Registry();
    r->add(cpu::make_cpu_backend());
#ifdef MIXSERVE_HAVE_OPENCL
    r->add(opencl::make_opencl_backend());
#endif
    return r;
  }();
  return *registry;
}

void Registry::add(std::unique_ptr<Backend> backend) { backends_.push_back(std::move(backend)); }

std::vector<Device*> Registry::devices() const {
  std::vector<Device*> out;
  for (const auto& backend : backends_) {
    for (Device* device : backend->devices()) out.push_back(device);
  }
  return out;
}

Device& Registry::device(const std::string& id) const {
  std::string known;
  for (Device* device : devices()) {
    const auto info = device->info();
    if (info.id == id) return *device;
    known += (known.empty() ? "" : ", ") + info.id;
  }
  std::string why;
  for (const auto& status : statuses()) why += "; " + status;
  fail(ErrorCode::kNotFound, "no device '", id, "' (available: ", known, ")", why);
}

std::vector<std::string> Registry::statuses() const {
  std::vector<std::string> out;
  for (const auto& backend : backends_) {
    if (auto status = backend->status(); !status.empty()) out.push_back(std::move(status));
  }
  return out;
}

}  // namespace mixserve::hal

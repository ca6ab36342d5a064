#include "backends/opencl/opencl_backend.h"

#include <exception>
#include <string>
#include <vector>

#include "backends/opencl/opencl_device.h"
#include "backends/opencl/opencl_error.h"
#include "backends/opencl/opencl_program.h"

namespace mixserve::opencl {
namespace {

class OpenclBackend : public hal::Backend {
 public:
  OpenclBackend() {
    try {
      enumerate();
    } catch (const std::exception& e) {
      skipped_.push_back(e.what());
    }
    if (devices_.empty() && status_.empty()) {
      status_ = "OpenCL: no usable device";
      for (size_t i = 0; i < skipped_.size(); ++i) status_ += (i == 0 ? " (" : "; ") + skipped_[i];
      if (!skipped_.empty()) status_ += ")";
    }
  }

  std::string name() const override { return "opencl"; }

  std::vector<hal::Device*> devices() override {
    std::vector<hal::Device*> out;
    for (const auto& device : devices_) out.push_back(device.get());
    return out;
  }

  std::string status() const override { return status_; }

 private:
  void enumerate() {
    cl_uint n_platforms = 0;
    const cl_int status = clGetPlatformIDs(0, nullptr, &n_platforms);
    if (status == CL_PLATFORM_NOT_FOUND_KHR || (status == CL_SUCCESS && n_platforms == 0)) {
      status_ = "OpenCL: no platform found (is an ICD such as pocl-opencl-icd installed?)";
      return;
    }
    check_cl(status, "clGetPlatformIDs");
    std::vector<cl_platform_id> platforms(n_platforms);
    check_cl(clGetPlatformIDs(n_platforms, platforms.data(), nullptr), "clGetPlatformIDs");
    for (cl_platform_id platform : platforms) {
      try {
        add_platform(platform);
      } catch (const std::exception& e) {
        skipped_.push_back(e.what());
      }
    }
  }

  void add_platform(cl_platform_id platform) {
    cl_uint n_devices = 0;
    const cl_int status = clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 0, nullptr, &n_devices);
    const std::string platform_name = platform_string(platform, CL_PLATFORM_NAME);
    if (status == CL_DEVICE_NOT_FOUND || (status == CL_SUCCESS && n_devices == 0)) {
      skipped_.push_back("platform '" + platform_name + "' has no devices");
      return;
    }
    check_cl(status, "clGetDeviceIDs", platform_name);
    std::vector<cl_device_id> ids(n_devices);
    check_cl(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, n_devices, ids.data(), nullptr), "clGetDeviceIDs",
             platform_name);
    for (cl_device_id id : ids) {
      try {
        const std::string device_name = device_string(id, CL_DEVICE_NAME);
        if (device_value<cl_uint>(id, CL_DEVICE_AVAILABLE) == CL_FALSE) {
          skipped_.push_back("device '" + device_name + "' is not available");
          continue;
        }
        if (device_value<cl_uint>(id, CL_DEVICE_COMPILER_AVAILABLE) == CL_FALSE) {
          skipped_.push_back("device '" + device_name + "' has no OpenCL C compiler");
          continue;
        }
        devices_.push_back(std::make_unique<OpenclDevice>(platform, id, static_cast<int>(devices_.size())));
      } catch (const std::exception& e) {
        skipped_.push_back(e.what());
      }
    }
  }

  std::vector<std::unique_ptr<OpenclDevice>> devices_;
  std::vector<std::string> skipped_;  ///< why platforms or devices were left out
  std::string status_;
};

}  // namespace

std::unique_ptr<hal::Backend> make_opencl_backend() { return std::make_unique<OpenclBackend>(); }

}  // namespace mixserve::opencl

// End-to-end: the `mixserve` binary with and without a usable OpenCL ICD. OCL_ICD_VENDORS pointing
// at an empty location makes the ocl-icd loader find no platform, as on a machine without
// pocl-opencl-icd: the CPU must keep working and --device opencl:0 must say why it is missing.
#include <gtest/gtest.h>

#include "hal/registry.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

using testing::run_command;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;
const std::string kNoIcd = "OCL_ICD_VENDORS=/nonexistent ";

#ifndef MIXSERVE_HAVE_OPENCL
#define SKIP_WITHOUT_OPENCL_BUILD() GTEST_SKIP() << "this build has no OpenCL backend (MIXSERVE_OPENCL=OFF or not found)"
#else
#define SKIP_WITHOUT_OPENCL_BUILD() (void)0
#endif

std::string synth(const TempDir& dir) {
  const std::string path = dir.file("m.gguf");
  const auto r = run_command(kBin + " model synth --shape tiny --type q8_0 -o " + path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return path;
}

bool has_opencl_device() {
  for (hal::Device* d : hal::Registry::instance().devices()) {
    if (d->info().backend == "opencl") return true;
  }
  return false;
}

TEST(OpenclCli, DevicesWithoutIcdListsCpuAndSaysWhy) {
  SKIP_WITHOUT_OPENCL_BUILD();
  const auto r = run_command(kNoIcd + kBin + " devices");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\ncpu "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("opencl:0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("OpenCL: no platform found"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pocl-opencl-icd"), std::string::npos) << r.out;
}

TEST(OpenclCli, RunOnMissingOpenclDeviceFailsClearlyAndCpuStillRuns) {
  SKIP_WITHOUT_OPENCL_BUILD();
  TempDir dir;
  const std::string model = synth(dir);
  const std::string base = kNoIcd + kBin + " run -m " + model + " -p 'Hello' -n 4 --temp 0 --ignore-eos ";
  const auto missing = run_command(base + "--device opencl:0");
  EXPECT_EQ(missing.exit_code, 1) << missing.err;
  EXPECT_NE(missing.err.find("opencl:0"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("no platform found"), std::string::npos) << missing.err;
  const auto cpu = run_command(base + "--device cpu");
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  EXPECT_EQ(cpu.out.rfind("Hello", 0), 0u) << cpu.out;
}

TEST(OpenclCli, DevicesListsOpenclDevices) {
  SKIP_WITHOUT_OPENCL_BUILD();
  if (!has_opencl_device()) GTEST_SKIP() << "no OpenCL device on this machine (install pocl-opencl-icd)";
  const auto r = run_command(kBin + " devices");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\ncpu "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nopencl:0 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" opencl "), std::string::npos) << r.out;  // the BACKEND column
  EXPECT_EQ(r.out.find("note:"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace mixserve

// `mixserve run/bench` across devices: the op table is printed at load, fallbacks can be forbidden,
// bad device settings exit 2 with one clear line, and a split run prints the same greedy text as
// the CPU alone. Cases that need an OpenCL device skip when `mixserve devices` lists none.
#include <gtest/gtest.h>

#include "support/test_support.h"

namespace mixserve {
namespace {

using testing::run_command;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;

bool have_opencl() { return run_command(kBin + " devices").out.find("opencl:0") != std::string::npos; }

std::string synth(const TempDir& dir, const std::string& type) {
  const std::string path = dir.file("m.gguf");
  const auto r = run_command(kBin + " model synth --shape tiny --type " + type + " -o " + path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return path;
}

TEST(MultiDeviceCli, BadDeviceSettingsExitTwoWithOneLine) {
  TempDir dir;
  const std::string model = synth(dir, "f32");
  const std::string base = kBin + " run -m " + model + " -p hi -n 2 ";
  const auto unknown = run_command(base + "--device nosuch:3");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("no device 'nosuch:3'"), std::string::npos) << unknown.err;
  const auto overlap = run_command(base + "--split layers=0-1:cpu,1:cpu");
  EXPECT_EQ(overlap.exit_code, 2) << overlap.err;
  EXPECT_NE(overlap.err.find("overlap"), std::string::npos) << overlap.err;
  const auto outside = run_command(base + "--split layers=0-5:cpu");
  EXPECT_EQ(outside.exit_code, 2) << outside.err;
  EXPECT_NE(outside.err.find("outside the model's 2 layers"), std::string::npos) << outside.err;
}

TEST(MultiDeviceCli, OpenClSplitPrintsOpTableAndMatchesCpu) {
  if (!have_opencl()) GTEST_SKIP() << "no OpenCL device listed by `mixserve devices`: test skipped";
  TempDir dir;
  const std::string model = synth(dir, "f16");
  const std::string base = kBin + " run -m " + model + " -p 'The cat' -n 12 --temp 0 --ignore-eos ";
  const auto cpu = run_command(base + "--device cpu");
  const auto split = run_command(base + "--device opencl:0,cpu");
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  ASSERT_EQ(split.exit_code, 0) << split.err;
  EXPECT_EQ(split.out, cpu.out);
  EXPECT_NE(split.err.find("opencl:0 cannot run rope"), std::string::npos) << split.err;
  EXPECT_NE(split.err.find("fell back to another device"), std::string::npos) << split.err;
  EXPECT_EQ(cpu.err.find("fell back"), std::string::npos) << cpu.err;  // one device: no table

  const auto layers = run_command(base + "--split layers=0-0:opencl:0,1-1:cpu");
  ASSERT_EQ(layers.exit_code, 0) << layers.err;
  EXPECT_EQ(layers.out, cpu.out);

  const auto strict = run_command(base + "--device opencl:0,cpu --no-fallback");
  EXPECT_NE(strict.exit_code, 0);
  EXPECT_NE(strict.err.find("forbidden"), std::string::npos) << strict.err;
  const auto env = run_command("MIXSERVE_NO_FALLBACK=1 " + base + "--device opencl:0,cpu");
  EXPECT_NE(env.exit_code, 0);
  EXPECT_NE(env.err.find("forbidden"), std::string::npos) << env.err;
}

TEST(MultiDeviceCli, BenchReportsTheSchedule) {
  if (!have_opencl()) GTEST_SKIP() << "no OpenCL device listed by `mixserve devices`: test skipped";
  TempDir dir;
  const std::string model = synth(dir, "q8_0");
  const auto r = run_command(kBin + " bench -m " + model + " -p 16 -n 4 -r 1 --probe-bytes 16777216 --device opencl:0,cpu");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("schedule: opencl:0 > cpu"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace mixserve

// Machine probe: sanity of the measured limits (positive, finite, physically plausible) and
// argument checks. Sizes are small to keep the tests fast; these are not benchmarks.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backends/cpu/machine_probe.h"
#include "backends/cpu/machine_probe_kernels.h"
#include "common/cpu_features.h"
#include "common/error.h"
#include "common/thread_pool.h"

namespace mixserve::cpu {
namespace {

TEST(MachineProbe, ReadBandwidthIsPlausible) {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (size_t bytes : {size_t{4096}, size_t{100000}, size_t{8} << 20}) {
      const double bw = measure_read_bandwidth(pool, bytes, 3);
      EXPECT_TRUE(std::isfinite(bw)) << bytes;
      // Tiny buffers mostly time the dispatch, so only the large one has a lower bound.
      EXPECT_GT(bw, bytes >= (size_t{8} << 20) ? 0.5e9 : 0.0) << bytes << " bytes, " << threads << " threads";
      EXPECT_LT(bw, 2e12) << bytes << " bytes, " << threads << " threads";
    }
  }
}

// One buffer measured again and again (as bench does around every decode run) stays plausible.
TEST(MachineProbe, ReusedReadProbeIsPlausible) {
  ThreadPool pool(2);
  ReadBandwidthProbe probe(pool, size_t{8} << 20);
  for (int i = 0; i < 3; ++i) {
    const double bw = probe.measure(2);
    EXPECT_TRUE(std::isfinite(bw));
    EXPECT_GT(bw, 0.5e9) << "measurement " << i;
    EXPECT_LT(bw, 2e12) << "measurement " << i;
  }
  EXPECT_THROW(probe.measure(0), Error);
  EXPECT_THROW(probe.measure(1001), Error);
  EXPECT_THROW(ReadBandwidthProbe(pool, 100), Error);
  EXPECT_THROW(ReadBandwidthProbe(pool, size_t{1} << 50), Error);
}

// Every read loop reads every value once, whatever the length (whole lines): the two-stream loops
// split the buffer in halves and finish each alone. Small integers keep the float sums exact.
TEST(MachineProbe, ReadLoopsReadEveryValueOnce) {
  const CpuFeatures& f = cpu_features();
  std::vector<const probe::ReadLoop*> loops = {&probe::kReadScalar};
  if (f.avx2) loops.insert(loops.end(), {&probe::kReadAvx2, &probe::kReadTwoStreamsAvx2});
  if (f.avx512f) loops.insert(loops.end(), {&probe::kReadAvx512, &probe::kReadTwoStreamsAvx512});
  for (size_t n : {size_t{16}, size_t{32}, size_t{48}, size_t{1040}, size_t{3 * 4096 + 48}, size_t{20000}}) {
    std::vector<float> data(n);
    double expected = 0.0;
    for (size_t i = 0; i < n; ++i) {
      data[i] = static_cast<float>(i % 7 + 1);
      expected += data[i];
    }
    for (const probe::ReadLoop* loop : loops)
      EXPECT_EQ(loop->sum(data.data(), n), expected) << loop->name << ", n " << n;
  }
}

TEST(MachineProbe, PeakFlopsIsPlausible) {
  ThreadPool pool(2);
  const double flops = measure_peak_flops_f32(pool);
  EXPECT_TRUE(std::isfinite(flops));
  EXPECT_GT(flops, 1e8) << peak_flops_f32_method();   // even scalar code on a loaded core
  EXPECT_LT(flops, 1e15) << peak_flops_f32_method();  // ~ a 1000-core AVX-512 machine
}

TEST(MachineProbe, PeakInt8OpsIsPlausible) {
  ThreadPool pool(2);
  const double ops = measure_peak_ops_int8(pool);
  EXPECT_TRUE(std::isfinite(ops));
  EXPECT_GT(ops, 1e8) << peak_ops_int8_method();
  EXPECT_LT(ops, 1e16) << peak_ops_int8_method();
}

// A handoff between two threads takes somewhere between a shared cache's few nanoseconds and the
// millisecond a preempted thread could add; a pool of one thread hands nothing off.
TEST(MachineProbe, HandoffLatencyIsPlausible) {
  ThreadPool two(2);
  const double one_way = measure_handoff_latency(two, 2000);
  EXPECT_TRUE(std::isfinite(one_way));
  EXPECT_GT(one_way, 1e-9);
  EXPECT_LT(one_way, 1e-3);
  ThreadPool one(1);
  EXPECT_EQ(measure_handoff_latency(one, 2000), 0.0);
  EXPECT_THROW(measure_handoff_latency(two, 0), Error);
  EXPECT_THROW(measure_handoff_latency(two, 10'000'001), Error);
}

TEST(MachineProbe, RejectsBadArguments) {
  ThreadPool pool(1);
  EXPECT_THROW(measure_read_bandwidth(pool, 100, 1), Error);
  EXPECT_THROW(measure_read_bandwidth(pool, size_t{1} << 50, 1), Error);
  EXPECT_THROW(measure_read_bandwidth(pool, 1 << 20, 0), Error);
  EXPECT_THROW(measure_read_bandwidth(pool, 1 << 20, 100000), Error);
}

}  // namespace
}  // namespace mixserve::cpu

#include "backends/cpu/machine_probe.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <new>
#include <utility>
#include <vector>

#include "backends/cpu/machine_probe_kernels.h"
#include "common/cpu_features.h"
#include "common/error.h"

namespace mixserve::cpu {
namespace probe {
namespace {

double read_sum_scalar(const float* p, size_t n) {
  float a[8] = {};
  for (size_t i = 0; i < n; i += 8) {
#pragma GCC unroll 16
    for (int k = 0; k < 8; ++k) a[k] += p[i + static_cast<size_t>(k)];
  }
  double sum = 0.0;
  for (float v : a) sum += v;
  return sum;
}

constexpr int kScalarChains = 8;

double fma_scalar(int64_t iters) {
  float acc[kScalarChains];
#pragma GCC unroll 16
  for (int k = 0; k < kScalarChains; ++k) acc[k] = static_cast<float>(k);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (float& v : acc) v = v * 0.9999f + 1e-4f;  // converges to 1: no overflow, no denormals
  }
  double sum = 0.0;
  for (float v : acc) sum += v;
  return sum;
}

double int8_scalar(int64_t iters) {
  int32_t a = 3;
  int32_t acc[kScalarChains] = {};
  for (int64_t it = 0; it < iters; ++it) {
    asm volatile("" : "+r"(a));  // keeps the products inside the loop
#pragma GCC unroll 16
    for (int k = 0; k < kScalarChains; ++k) acc[k] += a * static_cast<int8_t>(k - 4);
  }
  int64_t sum = 0;
  for (int32_t v : acc) sum += v;
  return static_cast<double>(sum);
}

}  // namespace

const ReadLoop kReadScalar = {"scalar", read_sum_scalar};
const ComputeLoop kFmaScalar = {"scalar mul+add", 2.0 * kScalarChains, fma_scalar};
const ComputeLoop kInt8Scalar = {"scalar int32 mul+add", 2.0 * kScalarChains, int8_scalar};

}  // namespace probe

namespace {

using Clock = std::chrono::steady_clock;

// A spin-wait hint (lets the core's other hardware thread run; no-op elsewhere).
inline void pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

constexpr size_t kMinBytes = 4096;
constexpr size_t kMaxBytes = size_t{64} << 30;
constexpr double kComputeSeconds = 0.2;
constexpr double kWarmupSeconds = 0.02;  // wakes the threads and lets the clock settle
constexpr int64_t kChunkIters = 2048;    // rounds between clock checks (~10 us)

// Results land here so that the compiler cannot drop the loops that produce them.
std::atomic<double> g_sink{0.0};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The read loops this CPU can run: one sequential stream per thread, and two side by side with
// software prefetch (faster on some placements of the threads, never measured slower by more
// than noise); the probe keeps the best pass of either.
std::vector<const probe::ReadLoop*> read_loops() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f) return {&probe::kReadAvx512, &probe::kReadTwoStreamsAvx512};
  if (f.avx2) return {&probe::kReadAvx2, &probe::kReadTwoStreamsAvx2};
  return {&probe::kReadScalar};
}

const probe::ComputeLoop& fma_loop() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f) return probe::kFmaAvx512;
  if (f.avx2 && f.fma) return probe::kFmaAvx2;
  return probe::kFmaScalar;
}

const probe::ComputeLoop& int8_loop() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vnni) return probe::kInt8Avx512Vnni;
  if (f.avx2) return probe::kInt8Avx2;
  return probe::kInt8Scalar;
}

// Runs `loop` on every pool thread for about `seconds`; returns operations per second of wall
// time (threads that start late only lower the result: it never overstates the peak).
double ops_per_second(ThreadPool& pool, const probe::ComputeLoop& loop, double seconds) {
  const auto nth = static_cast<size_t>(pool.size());
  std::vector<double> ops(nth), sinks(nth);
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  pool.run([&](int ith, int) {
    double done = 0.0, sink = 0.0;
    for (;;) {
      sink += loop.run(kChunkIters);
      done += loop.ops_per_iter * static_cast<double>(kChunkIters);
      if (ith == 0 && seconds_since(start) >= seconds) stop.store(true, std::memory_order_relaxed);
      if (stop.load(std::memory_order_relaxed)) break;
    }
    ops[static_cast<size_t>(ith)] = done;
    sinks[static_cast<size_t>(ith)] = sink;
  });
  const double elapsed = seconds_since(start);
  double total = 0.0, sink = 0.0;
  for (size_t t = 0; t < nth; ++t) total += ops[t], sink += sinks[t];
  g_sink.store(sink, std::memory_order_relaxed);
  return total / elapsed;
}

double peak(ThreadPool& pool, const probe::ComputeLoop& loop) {
  ops_per_second(pool, loop, kWarmupSeconds);
  return ops_per_second(pool, loop, kComputeSeconds);
}

size_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return kMaxBytes;
  return static_cast<size_t>(pages) * static_cast<size_t>(page);
}

constexpr size_t kProbeAlignment = size_t{2} << 20;

// [begin, end) of the floats of thread ith of nth over n floats: whole 64-byte lines.
std::pair<size_t, size_t> slice(size_t n, int ith, int nth) {
  const size_t lines = n / 16;
  return {lines * static_cast<size_t>(ith) / static_cast<size_t>(nth) * 16,
          lines * (static_cast<size_t>(ith) + 1) / static_cast<size_t>(nth) * 16};
}

void check_repetitions(int repetitions) {
  if (repetitions < 1 || repetitions > 1000) {
    fail(ErrorCode::kInvalidArgument, "read bandwidth repetitions ", repetitions, " is out of range [1, 1000]");
  }
}

}  // namespace

ReadBandwidthProbe::ReadBandwidthProbe(ThreadPool& pool, size_t bytes) : pool_(pool) {
  if (bytes < kMinBytes || bytes > kMaxBytes) {
    fail(ErrorCode::kInvalidArgument, "read bandwidth buffer of ", bytes, " bytes is out of range [", kMinBytes, ", ",
         kMaxBytes, "]");
  }
  if (bytes > physical_memory_bytes() / 2) {
    fail(ErrorCode::kInvalidArgument, "read bandwidth buffer of ", bytes,
         " bytes exceeds half of this machine's memory (", physical_memory_bytes(), " bytes)");
  }
  n_ = bytes / sizeof(float) / 16 * 16;  // whole 64-byte lines
  // The same kind of memory model weights are copied into: 2 MiB aligned, huge pages requested,
  // so the roofline compares like with like.
  data_ = static_cast<float*>(::operator new[](n_ * sizeof(float), std::align_val_t{kProbeAlignment}, std::nothrow));
  if (data_ == nullptr) fail(ErrorCode::kResourceExhausted, "cannot allocate ", bytes, " bytes to probe bandwidth");
  madvise(data_, n_ * sizeof(float) / kProbeAlignment * kProbeAlignment, MADV_HUGEPAGE);
  // Thread t owns lines [lines * t / nth, lines * (t + 1) / nth) (slice()): first touch places its
  // pages near it, and the timed passes read exactly what it touched.
  pool_.run([this](int ith, int nth) {
    const auto [begin, end] = slice(n_, ith, nth);
    std::fill(data_ + begin, data_ + end, 1.0f);
  });
}

ReadBandwidthProbe::~ReadBandwidthProbe() {
  ::operator delete[](data_, std::align_val_t{kProbeAlignment});
}

double ReadBandwidthProbe::measure(int repetitions) {
  check_repetitions(repetitions);
  std::vector<double> sinks(static_cast<size_t>(pool_.size()));
  const std::vector<const probe::ReadLoop*> loops = read_loops();
  double best = INFINITY;
  for (int r = 0; r < repetitions; ++r) {
    for (const probe::ReadLoop* loop : loops) {
      const auto start = Clock::now();
      pool_.run([&](int ith, int nth) {
        const auto [begin, end] = slice(n_, ith, nth);
        sinks[static_cast<size_t>(ith)] += loop->sum(data_ + begin, end - begin);
      });
      best = std::min(best, seconds_since(start));
    }
  }
  double sink = 0.0;
  for (double s : sinks) sink += s;
  g_sink.store(sink, std::memory_order_relaxed);
  return static_cast<double>(n_ * sizeof(float)) / std::max(best, 1e-9);
}

double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int repetitions) {
  check_repetitions(repetitions);  // before allocating anything
  return ReadBandwidthProbe(pool, bytes).measure(repetitions);
}

double measure_peak_flops_f32(ThreadPool& pool) {
  return peak(pool, fma_loop());
}

double measure_peak_ops_int8(ThreadPool& pool) {
  return peak(pool, int8_loop());
}

double measure_handoff_latency(ThreadPool& pool, int round_trips) {
  if (round_trips < 1 || round_trips > 10'000'000) {
    fail(ErrorCode::kInvalidArgument, "handoff round trips ", round_trips, " is out of range [1, 10000000]");
  }
  if (pool.size() < 2) return 0.0;
  constexpr int kRuns = 5;
  constexpr auto kLimit = std::chrono::seconds(1);
  std::vector<double> one_way;
  for (int run = 0; run < kRuns; ++run) {
    // ball: 2i + 1 once thread 0 has sent round trip i, 2i + 2 once thread 1 has answered it.
    struct alignas(64) Line {
      std::atomic<int64_t> ball{0};
      std::atomic<bool> stop{false};
    } line;
    int64_t made = 0;
    double seconds = 0.0;
    pool.run([&](int ith, int) {
      if (ith == 0) {
        const auto start = std::chrono::steady_clock::now();
        int64_t i = 0;
        for (; i < round_trips; ++i) {
          line.ball.store(2 * i + 1, std::memory_order_release);
          while (line.ball.load(std::memory_order_acquire) != 2 * i + 2) pause();
          if (i % 1024 == 1023 && std::chrono::steady_clock::now() - start > kLimit) {
            ++i;
            break;
          }
        }
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        made = i;
        line.stop.store(true, std::memory_order_release);
      } else if (ith == 1) {
        for (int64_t i = 0;; ++i) {
          while (line.ball.load(std::memory_order_acquire) != 2 * i + 1) {
            if (line.stop.load(std::memory_order_acquire)) return;
            pause();
          }
          line.ball.store(2 * i + 2, std::memory_order_release);
        }
      }
    });
    one_way.push_back(seconds / (2.0 * static_cast<double>(made)));
  }
  std::nth_element(one_way.begin(), one_way.begin() + kRuns / 2, one_way.end());
  return one_way[kRuns / 2];
}

const char* peak_flops_f32_method() {
  return fma_loop().name;
}

const char* peak_ops_int8_method() {
  return int8_loop().name;
}

}  // namespace mixserve::cpu

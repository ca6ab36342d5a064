// Compliance ledger throughput: durable appends (WAL, synchronous=FULL: one fsync of the WAL per
// commit) and full-chain verification. The ledger file goes to $MIXSERVE_BENCH_DIR (default: the
// system temp directory); append speed is bound by that disk's fsync latency, so report the disk.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>

#include "policy/ledger.h"

namespace {

using mixserve::policy::Ledger;
using mixserve::policy::RecordKind;

std::filesystem::path bench_dir() {
  const char* dir = std::getenv("MIXSERVE_BENCH_DIR");
  return dir != nullptr ? std::filesystem::path(dir) : std::filesystem::temp_directory_path();
}

// A fresh ledger file path, removed (with its -wal and -shm files) on destruction.
struct ScratchLedger {
  std::string path;
  ScratchLedger() {
    path = (bench_dir() / ("mixserve-bench-ledger-" + std::to_string(getpid()) + ".db")).string();
    remove_files();
  }
  ~ScratchLedger() { remove_files(); }
  void remove_files() const {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
};

// A usage sample as the serving layer would record it (about 150 bytes of canonical JSON).
nlohmann::json sample_payload(int64_t i) {
  return {{"node", "sh-a01"}, {"device", "huawei-ascend-910b"}, {"index", i % 8}, {"device_hours", 0.25},
          {"tokens", 123456 + i}, {"pool", "inference"}, {"project", "pudong-phase2"}};
}

void BM_LedgerAppendDurable(benchmark::State& state) {
  ScratchLedger scratch;
  auto ledger = Ledger::open(scratch.path);
  int64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(ledger.append(RecordKind::kUsageSample, sample_payload(i++)));
  state.SetItemsProcessed(state.iterations());
  state.counters["records/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LedgerAppendDurable)->Unit(benchmark::kMicrosecond)->MinTime(3.0)->UseRealTime();

void BM_LedgerVerify(benchmark::State& state) {
  ScratchLedger scratch;
  auto ledger = Ledger::open(scratch.path);
  const int64_t n = state.range(0);
  // Filled with ordinary durable appends (one fsync each), so keep n modest.
  for (int64_t i = 0; i < n; ++i) ledger.append(RecordKind::kUsageSample, sample_payload(i));
  for (auto _ : state) {
    const auto result = ledger.verify();
    if (!result.ok) state.SkipWithError(result.problem.c_str());
    benchmark::DoNotOptimize(result.records);
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["records/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * n), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LedgerVerify)->Arg(2000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_RecordHash(benchmark::State& state) {
  const std::string payload = mixserve::policy::canonical_json(sample_payload(1));
  const std::string prev(64, 'a');
  for (auto _ : state) {
    benchmark::DoNotOptimize(mixserve::policy::record_hash(prev, 12345, "2026-11-25T15:00:00.000000Z", "usage_sample", payload));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RecordHash);

}  // namespace

BENCHMARK_MAIN();

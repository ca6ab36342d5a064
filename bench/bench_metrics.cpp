// Metrics hot-path cost: Counter::inc and Histogram::observe on one shared series from 1 and 2
// threads (2 threads contend for the same cache line, the worst case for the server), and the cost
// of rendering a registry of about 40 series for one /metrics scrape.
#include <benchmark/benchmark.h>

#include <string>

#include "serve/metrics.h"

namespace {

using mixserve::serve::Counter;
using mixserve::serve::Histogram;
using mixserve::serve::latency_buckets;
using mixserve::serve::MetricsRegistry;

// One registry shared by the threads of a benchmark (threads of one run start together).
MetricsRegistry& shared_registry() {
  static MetricsRegistry registry({{"model", "tinyllama"}, {"chip", "nvidia-h100"}, {"device", "cpu"}});
  return registry;
}

void BM_CounterInc(benchmark::State& state) {
  Counter& c = shared_registry().counter("bench_requests_total", "Requests.");
  for (auto _ : state) c.inc();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CounterInc)->Threads(1)->Threads(2)->UseRealTime();

void BM_CounterIncFractional(benchmark::State& state) {
  Counter& c = shared_registry().counter("bench_seconds_total", "Busy seconds.");
  for (auto _ : state) c.inc(0.25);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CounterIncFractional)->Threads(1)->Threads(2)->UseRealTime();

void BM_HistogramObserve(benchmark::State& state) {
  Histogram& h = shared_registry().histogram("bench_latency_seconds", "Latency.", latency_buckets());
  // Values cycle through all buckets so the search does not always take the same path.
  const double values[] = {0.0004, 0.003, 0.02, 0.07, 0.3, 0.8, 3.0, 12.0, 45.0, 90.0};
  size_t i = static_cast<size_t>(state.thread_index());
  for (auto _ : state) {
    h.observe(values[i]);
    i = i == 9 ? 0 : i + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramObserve)->Threads(1)->Threads(2)->UseRealTime();

// About 40 series: 20 counters, 12 gauges, 4 callback gauges and 4 latency histograms.
void BM_Render40Series(benchmark::State& state) {
  MetricsRegistry r({{"model", "tinyllama"}, {"chip", "nvidia-h100"}, {"device", "cpu"}});
  const char* endpoints[] = {"completions", "chat_completions"};
  const char* codes[] = {"200", "400", "429", "500", "503"};
  for (const char* ep : endpoints) {
    for (const char* code : codes) r.counter("requests_total", "Requests.", {{"endpoint", ep}, {"code", code}}).inc(17);
    r.counter("prompt_tokens_total", "Prompt tokens.", {{"endpoint", ep}}).inc(123456);
    r.counter("completion_tokens_total", "Completion tokens.", {{"endpoint", ep}}).inc(654321);
    r.counter("busy_seconds_total", "Busy seconds.", {{"endpoint", ep}}).inc(12.375);
    r.counter("preemptions_total", "Preemptions.", {{"endpoint", ep}}).inc(3);
    r.counter("errors_total", "Errors.", {{"endpoint", ep}}).inc(1);
  }
  for (int i = 0; i < 12; ++i) r.gauge("pool_bytes", "Memory pool bytes.", {{"pool", std::to_string(i)}}).set(1e9 + i);
  for (const char* name : {"queue_depth", "running_sequences", "kv_blocks_used", "kv_blocks_free"}) {
    r.gauge_fn(name, "Engine statistic.", {}, [] { return 42.0; });
  }
  for (const char* name : {"ttft_seconds", "tpot_seconds", "e2e_seconds", "queue_seconds"}) {
    Histogram& h = r.histogram(name, "Latency.", latency_buckets());
    for (int i = 0; i < 1000; ++i) h.observe(0.001 * i);
  }
  size_t bytes = 0;
  for (auto _ : state) {
    std::string text = r.render();
    bytes = text.size();
    benchmark::DoNotOptimize(text);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["text_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Render40Series);

}  // namespace

BENCHMARK_MAIN();

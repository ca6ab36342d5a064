// The server's Prometheus metrics: HTTP requests by endpoint and status, tokens in and out,
// prefix-cache hits, queue depth, running sequences, KV-cache blocks, latency histograms (queue
// time, time to first token, time per output token, whole request), and what the devices do (the
// op table decided at load, ops run, fallbacks, copies). Every series carries the model, chip and
// device labels of the node, so a fleet's scrapes aggregate by chip.
#pragma once

#include <string>
#include <string_view>

#include "engine/batch_scheduler.h"
#include "hal/op_table.h"
#include "serve/metrics.h"
#include "serve/openai_request.h"

namespace mixserve::serve {

/// Registers and updates the serving metrics.
class ServeMetrics {
 public:
  /// Registers every family on `registry`; gauges read `scheduler.stats()` when scraped. `devices`
  /// are the device ids of the placement (index order of SchedulerStats::devices.ops_per_device).
  ServeMetrics(MetricsRegistry& registry, const BatchScheduler& scheduler, const hal::OpTable& op_table,
               const std::vector<std::string>& devices);

  /// Counts one HTTP request by route ("/v1/completions", "other") and status code.
  void request(std::string_view route, int status);
  /// Records a finished generation; `client_gone` when the client disconnected first.
  void finished(Endpoint endpoint, const RequestResult& result, bool client_gone);
  /// The text exposition.
  std::string render() const { return registry_.render(); }

 private:
  MetricsRegistry& registry_;
  Counter& prompt_tokens_;
  Counter& cached_tokens_;
  Counter& generated_tokens_;
  Counter& cancelled_;
  Histogram& queue_time_;
  Histogram& ttft_;
  Histogram& tpot_;
  Histogram& e2e_;
  Histogram& prompt_len_;
  Histogram& output_len_;
};

}  // namespace mixserve::serve

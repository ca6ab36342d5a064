#include "serve/serve_metrics.h"

namespace mixserve::serve {
namespace {

std::vector<double> token_count_buckets() { return exponential_buckets(1, 2, 18); }  // 1 .. 131072 tokens

// Time per output token is much shorter than a request: 1 ms .. ~4 s.
std::vector<double> per_token_buckets() { return exponential_buckets(0.001, 1.5, 21); }

}  // namespace

ServeMetrics::ServeMetrics(MetricsRegistry& registry, const BatchScheduler& scheduler, const hal::OpTable& op_table,
                           const std::vector<std::string>& devices)
    : registry_(registry),
      prompt_tokens_(registry.counter("mixserve_prompt_tokens_total", "Prompt tokens of finished requests (tokens in)")),
      cached_tokens_(registry.counter("mixserve_prompt_tokens_cached_total",
                                      "Prompt tokens served from the prefix cache instead of being computed")),
      generated_tokens_(registry.counter("mixserve_generation_tokens_total", "Tokens generated (tokens out)")),
      cancelled_(registry.counter("mixserve_requests_cancelled_total",
                                  "Generations ended early because the client disconnected")),
      queue_time_(registry.histogram("mixserve_request_queue_seconds", "Time from arrival to joining the batch",
                                     latency_buckets())),
      ttft_(registry.histogram("mixserve_time_to_first_token_seconds", "Time from arrival to the first generated token",
                               latency_buckets())),
      tpot_(registry.histogram("mixserve_time_per_output_token_seconds",
                               "Mean time between generated tokens of a request, after the first", per_token_buckets())),
      e2e_(registry.histogram("mixserve_request_duration_seconds", "Time from arrival to the last token",
                              latency_buckets())),
      prompt_len_(registry.histogram("mixserve_request_prompt_tokens", "Prompt length of requests",
                                     token_count_buckets())),
      output_len_(registry.histogram("mixserve_request_generation_tokens", "Generated tokens per request",
                                     token_count_buckets())) {
  const BatchScheduler* s = &scheduler;
  registry.gauge_fn("mixserve_queue_depth", "Requests waiting to join the batch", {},
                    [s] { return static_cast<double>(s->stats().queued); });
  registry.gauge_fn("mixserve_running_sequences", "Sequences in the running batch", {},
                    [s] { return static_cast<double>(s->stats().running); });
  registry.gauge_fn("mixserve_max_sequences", "Sequences the batch may hold", {},
                    [s] { return static_cast<double>(s->options().max_seqs); });
  registry.gauge_fn("mixserve_kv_blocks_used", "KV-cache blocks held by running sequences", {},
                    [s] { return static_cast<double>(s->stats().kv.used); });
  registry.gauge_fn("mixserve_kv_blocks_cached", "Free KV-cache blocks still holding reusable prompt prefixes", {},
                    [s] { return static_cast<double>(s->stats().kv.cached); });
  registry.gauge_fn("mixserve_kv_blocks_total", "KV-cache blocks in all", {},
                    [s] { return static_cast<double>(s->stats().kv.total); });
  registry.counter_fn("mixserve_prefill_tokens_computed_total",
                      "Prompt tokens run through the model (prefix-cache hits excluded)", {},
                      [s] { return static_cast<double>(s->stats().prompt_tokens); });
  registry.counter_fn("mixserve_engine_steps_total", "Forward steps of the batch engine", {},
                      [s] { return static_cast<double>(s->stats().steps); });
  registry.counter_fn("mixserve_preemptions_total", "Sequences evicted from the KV cache to be recomputed later", {},
                      [s] { return static_cast<double>(s->stats().preemptions); });
  for (size_t i = 0; i < devices.size(); ++i) {
    registry.counter_fn("mixserve_device_ops_total", "Ops run on each device", {{"op_device", devices[i]}}, [s, i] {
      const auto stats = s->stats();
      return i < stats.devices.ops_per_device.size() ? static_cast<double>(stats.devices.ops_per_device[i]) : 0.0;
    });
  }
  registry.counter_fn("mixserve_op_fallbacks_total", "Ops run on another device than their first choice", {},
                      [s] { return static_cast<double>(s->stats().devices.fallbacks); });
  registry.counter_fn("mixserve_device_copies_total", "Device-to-device copies of tensor ranges", {},
                      [s] { return static_cast<double>(s->stats().devices.copies); });
  registry.counter_fn("mixserve_device_copy_bytes_total", "Bytes moved between devices", {},
                      [s] { return static_cast<double>(s->stats().devices.bytes_copied); });
  // The op table decided at load: which device runs how many ops of each kind per forward step.
  for (const auto& row : op_table.rows()) {
    registry.gauge("mixserve_op_table_ops", "Ops of a kind per forward step on a device (decided at load)",
                   {{"op", row.op}, {"op_device", row.device}})
        .set(static_cast<double>(row.count));
    if (row.fallbacks > 0) {
      registry.gauge("mixserve_op_table_fallbacks", "Ops per forward step that fell back from their first-choice device",
                     {{"op", row.op}, {"op_device", row.device}, {"preferred", row.preferred}})
          .set(static_cast<double>(row.fallbacks));
    }
  }
}

void ServeMetrics::request(std::string_view route, int status) {
  registry_.counter("mixserve_http_requests_total", "HTTP requests by route and status code",
                    {{"route", std::string(route)}, {"status", std::to_string(status)}})
      .inc();
}

void ServeMetrics::finished(Endpoint, const RequestResult& result, bool client_gone) {
  const auto generated = static_cast<int64_t>(result.tokens.size());
  prompt_tokens_.inc(result.prompt_tokens);
  cached_tokens_.inc(result.cached_tokens);
  generated_tokens_.inc(generated);
  if (client_gone) cancelled_.inc();
  queue_time_.observe(result.queue_seconds);
  prompt_len_.observe(static_cast<double>(result.prompt_tokens));
  output_len_.observe(static_cast<double>(generated));
  if (generated > 0) ttft_.observe(result.first_token_seconds);
  if (generated > 1) {
    tpot_.observe((result.total_seconds - result.first_token_seconds) / static_cast<double>(generated - 1));
  }
  e2e_.observe(result.total_seconds);
}

}  // namespace mixserve::serve

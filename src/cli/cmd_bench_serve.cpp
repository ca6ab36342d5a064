#include <algorithm>
#include <cstdio>

#include "cli/bench_serve.h"
#include "common/error.h"
#include "common/log.h"
#include "serve/load_test.h"
#include "serve/server.h"

namespace mixserve::cli {

void ServeBenchFlags::add_to(CLI::App* cmd) {
  cmd->add_flag("--serve", enabled,
                "benchmark serving instead: start the HTTP server on loopback and stream completions from "
                "concurrent clients (aggregate output tokens/s, TTFT and inter-token latency)");
  cmd->add_option("--concurrency", concurrency, "streams at once, one test per value")
      ->delimiter(',')
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--serve-prompt", prompt_words, "prompt length in words")->check(CLI::Range(0, 100000))->capture_default_str();
  cmd->add_option("--serve-gen", max_tokens, "tokens generated per request")->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("--serve-rounds", rounds, "requests each client sends in turn")->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_option("--serve-batch-tokens", batch_tokens,
                  "the server's tokens evaluated per step, all sequences (serve --batch-tokens; 0 = its default)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
}

void bench_serve(const ModelFlags& model_flags, const ServeBenchFlags& f) {
  auto model = model_flags.load();
  if (!model) return;
  const int max_streams = *std::max_element(f.concurrency.begin(), f.concurrency.end());
  serve::ServeOptions options;
  options.http.port = 0;
  options.model_id = "bench";
  options.scheduler.max_seqs = max_streams;
  options.scheduler.max_queue = max_streams;
  if (f.batch_tokens > 0) options.scheduler.batch.max_batch_tokens = f.batch_tokens;
  // Room for every stream at once: a generous 4 tokens per prompt word, the output, one spare block.
  const int64_t per_sequence = 4 * f.prompt_words + f.max_tokens + 16;
  options.scheduler.batch.kv_blocks = max_streams * (per_sequence / 16 + 2);
  options.scheduler.batch.max_seq_len = std::min<int64_t>(model->config().n_ctx_train, per_sequence + 16);
  serve::Server server(*model, model_flags.path, options);
  const uint16_t port = server.start();
  const auto info = model->device().info();
  std::printf("serve:   %s on %s (%s), http://127.0.0.1:%u; %d-word prompts, %d output tokens per request "
              "(ignore_eos), %d requests per stream, %lld tokens per step\n",
              model->config().name.c_str(), info.id.c_str(), info.name.c_str(), port, f.prompt_words, f.max_tokens,
              f.rounds, static_cast<long long>(options.scheduler.batch.max_batch_tokens));
  std::printf("%8s %9s %12s %8s %12s %8s %10s %10s %10s %10s\n", "streams", "requests", "out tok/s", "vs 1",
              "decode tok/s", "vs 1", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99");
  double single = 0, single_decode = 0;
  const auto times = [](double value, double base) {
    return base > 0 ? str_cat(std::to_string(value / base).substr(0, 5), "x") : std::string("-");
  };
  for (int c : f.concurrency) {
    serve::LoadTestOptions lo;
    lo.port = port;
    lo.model = "bench";
    lo.concurrency = c;
    lo.requests_per_client = f.rounds;
    lo.prompt_words = f.prompt_words;
    lo.max_tokens = f.max_tokens;
    const serve::LoadTestResult r = serve::run_load_test(lo);
    if (c == 1) {
      single = r.output_tokens_per_s;
      single_decode = r.decode_tokens_per_s;
    }
    std::printf("%8d %9d %12.1f %8s %12.1f %8s %9.1fms %9.1fms %9.1fms %9.1fms\n", c, r.requests, r.output_tokens_per_s,
                times(r.output_tokens_per_s, single).c_str(), r.decode_tokens_per_s,
                times(r.decode_tokens_per_s, single_decode).c_str(), r.ttft_p50 * 1e3, r.ttft_p99 * 1e3,
                r.itl_p50 * 1e3, r.itl_p99 * 1e3);
    if (r.failed > 0) std::printf("         %d requests failed: %s\n", r.failed, r.first_error.c_str());
    std::fflush(stdout);
  }
  std::printf(
      "(out tok/s = generated tokens of all streams / wall time, prefill included; decode tok/s = tokens "
      "after each request's first / time during which at least one stream was decoding, so the start, when "
      "every stream waits for its prompt, is left out, while prompts arriving during others' decoding stay in; "
      "latencies seen by the clients, which share the machine with the server)\n");
  server.shutdown();
}

}  // namespace mixserve::cli

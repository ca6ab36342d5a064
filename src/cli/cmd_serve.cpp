#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/signals.h"
#include "cli/model_flags.h"
#include "common/log.h"
#include "serve/model_host.h"
#include "serve/server.h"

namespace mixserve::cli {
namespace {

struct ServeFlags {
  ModelFlags model;
  serve::ServeOptions serve;
  int64_t ctx = 0;
  std::string models_dir;        // host mode: replicas from this folder, changed through the admin API
  std::string admin_token_file;  // host mode: tokens of the admin API
  uint16_t admin_port = 0;       // host mode: admin listener port (0 = any)
};

// --models-dir: a ModelHost whose replicas load from the folder; the -m file is the first replica.
void host_until_signal(const ServeFlags& f, sigset_t signals) {
  namespace fs = std::filesystem;
  const std::string first = f.serve.model_id.empty() ? fs::path(f.model.path).stem().string() : f.serve.model_id;
  std::error_code ec;
  if (!fs::equivalent(f.model.path, fs::path(f.models_dir) / (first + ".gguf"), ec)) {
    throw CLI::ValidationError("-m", "with --models-dir, the first model must be <models-dir>/<alias or name>.gguf");
  }
  serve::ModelHostOptions o;
  o.replica = f.serve;
  o.replica.scheduler.batch.max_seq_len = f.ctx;
  if (o.replica.node_name.empty()) o.replica.node_name = "node";
  o.models_dir = f.models_dir;
  o.admin_token_file = f.admin_token_file;
  o.admin_http.host = f.serve.http.host;
  o.admin_http.port = f.admin_port;
  const ModelFlags flags = f.model;
  o.load_model = [flags](const std::string& path) {
    ModelFlags m = flags;
    m.path = path;
    return m.load();
  };
  serve::ModelHost host(o);
  host.start(first);
  int signal = 0;
  sigwait(&signals, &signal);
  log_info("received ", signal == SIGINT ? "SIGINT" : "SIGTERM", "; draining every replica");
  host.shutdown();
}

void serve_until_signal(const ServeFlags& f) {
  sigset_t signals = block_termination_signals();

  if (!f.models_dir.empty()) return host_until_signal(f, signals);
  auto model = f.model.load();
  if (!model) return;
  serve::ServeOptions options = f.serve;
  options.scheduler.batch.max_seq_len = f.ctx;
  serve::Server server(*model, f.model.path, options);
  server.start();
  int signal = 0;
  sigwait(&signals, &signal);
  log_info("received ", signal == SIGINT ? "SIGINT" : "SIGTERM", "; draining");
  server.shutdown();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  serve::ServeOptions& o = flags->serve;
  auto* cmd = app.add_subcommand("serve", "serve a model over an OpenAI-compatible HTTP API with continuous batching");
  flags->model.add_to(cmd);
  cmd->add_option("--host", o.http.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", o.http.port, "port to listen on (0 = any free port, printed at start)")->capture_default_str();
  cmd->add_option("--alias", o.model_id, "model id clients send (default: the file name without .gguf)");
  cmd->add_option("--chip", o.chip, "chip catalogue id of this node, for /v1/node and metrics (default: matched "
                                    "from the device name; `mixserve chips` lists ids)");
  cmd->add_option("--max-seqs", o.scheduler.max_seqs, "sequences decoded together")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--max-queue", o.scheduler.max_queue, "requests waiting beyond those; more get 429")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  cmd->add_option("-c,--ctx", flags->ctx, "context length per sequence (0 = the model's)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--kv-blocks", o.scheduler.batch.kv_blocks,
                  "KV-cache blocks (0 = enough for 4 sequences of full context)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--block-size", o.scheduler.batch.block_size, "tokens per KV-cache block")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--batch-tokens", o.scheduler.batch.max_batch_tokens, "tokens evaluated per step, all sequences")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", o.scheduler.prefill_chunk, "prompt tokens of one sequence per step")
      ->check(CLI::Range(1, 1 << 16))
      ->capture_default_str();
  cmd->add_flag("--no-prefix-cache", [flags](int64_t) { flags->serve.scheduler.batch.prefix_cache = false; },
                "do not reuse KV blocks of shared prompt prefixes");
  cmd->add_option("--api-key-file", o.api_key_file, "file of accepted Bearer keys, one per line, for /v1/*");
  cmd->add_option("--chat-template", o.chat_template_file, "Jinja chat template overriding the model's");
  cmd->add_option("--max-body", o.http.max_body_bytes, "largest request body in bytes; larger ones get 413")
      ->check(CLI::Range(1024, 1 << 30))
      ->capture_default_str();
  cmd->add_option("--request-timeout", o.http.request_timeout_s,
                  "seconds a client has to send a whole request (and keep-alive idle time)")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  cmd->add_option("--io-threads", o.http.io_threads, "HTTP I/O threads")->check(CLI::Range(1, 64))->capture_default_str();
  cmd->add_option("--max-connections", o.http.max_connections, "open connections; more get 503")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--drain-timeout", o.drain_timeout_s,
                  "on SIGTERM, seconds requests in flight may take before they are ended")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  cmd->add_option("--join", o.join_url, "gateway to join (http://host:port); heartbeats until shutdown");
  cmd->add_option("--join-token-file", o.join_token_file, "file holding the gateway's join token")
      ->check(CLI::ExistingFile);
  cmd->add_option("--node-name", o.node_name, "name at the gateway (default: hostname-port)");
  cmd->add_option("--advertise", o.advertise_url, "URL the gateway calls (default: http://host:port)");
  cmd->add_option("--devices", o.devices, "accelerators this node counts as at the gateway (device-hours)")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000}))
      ->capture_default_str();
  cmd->add_option("--models-dir", flags->models_dir,
                  "host replicas of any model of this folder (<name>.gguf); the admin API changes them at run time")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--admin-token-file", flags->admin_token_file, "tokens of the admin API (with --models-dir)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--admin-port", flags->admin_port, "port of the admin API (0 = any, printed at start)");
  cmd->callback([flags] {
    if (!flags->models_dir.empty() && flags->admin_token_file.empty()) {
      throw CLI::ValidationError("--models-dir", "needs --admin-token-file");
    }
    if (!flags->serve.join_url.empty() && flags->serve.join_token_file.empty()) {
      throw CLI::ValidationError("--join", "needs --join-token-file");
    }
    serve_until_signal(*flags);
  });
}

}  // namespace mixserve::cli

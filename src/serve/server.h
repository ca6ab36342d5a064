// A serving node: the OpenAI-compatible API over HTTP, the batch scheduler and the engine thread
// that steps it, metrics and the node description, with a graceful shutdown that lets requests in
// flight finish (or ends them cleanly) before the process exits.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "engine/batch_scheduler.h"
#include "engine/model.h"
#include "model/chat_template.h"
#include "serve/http_server.h"

namespace mixserve::serve {

class OpenAiService;
class ServeMetrics;
class MetricsRegistry;
class JoinClient;

/// How to serve.
struct ServeOptions {
  HttpServerOptions http;           ///< address, I/O threads and request limits
  SchedulerOptions scheduler;       ///< sequences, queue, context and KV cache
  std::string model_id;             ///< id clients send as "model" ("" = the file name without .gguf)
  std::string chip;                 ///< chip catalogue id of this node ("" = matched from the first device's name)
  std::string api_key_file;         ///< Bearer keys required on /v1/* ("" = no keys)
  std::string chat_template_file;   ///< Jinja template overriding the model's ("" = the model's, else ChatML)
  std::string home_country = "CN";  ///< country whose chips count as domestic
  double drain_timeout_s = 30;      ///< on shutdown, how long requests in flight may take to finish
  std::string join_url;             ///< gateway to join ("" = none)
  std::string join_token_file;      ///< join token (required with join_url)
  std::string node_name;            ///< name at the gateway ("" = hostname-port)
  std::string advertise_url;        ///< URL the gateway calls ("" = http://host:port)
  int64_t devices = 1;              ///< accelerators this node counts as at the gateway
  std::string node_group;           ///< the machine this replica runs on, told to the gateway ("" = node_name)
  std::string admin_url;            ///< the machine's admin API (ModelHost), told to the gateway ("" = none)
};

/// One node serving one model.
class Server {
 public:
  /// Prepares a server for `model` loaded from `model_path` (both outlive it). Throws kNotFound
  /// (unknown chip id, missing key or template file) or kInvalidArgument (bad options).
  Server(const Model& model, const std::string& model_path, ServeOptions options);
  /// Shuts down if still running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Starts the engine thread and the HTTP server; returns the bound port.
  uint16_t start();
  /// Graceful shutdown: stops accepting, refuses new generations (503), waits up to drain_timeout_s
  /// for those in flight, ends the rest with an error event or 503, then stops everything.
  void shutdown();
  /// The model id clients must send.
  const std::string& model_id() const { return model_id_; }

 private:
  void engine_loop();

  const Model& model_;
  ServeOptions options_;
  std::string model_id_;
  std::string chip_id_;  // catalogue id, "unknown" when none matched
  std::unique_ptr<MetricsRegistry> registry_;
  std::unique_ptr<BatchScheduler> scheduler_;
  std::unique_ptr<ServeMetrics> metrics_;
  std::unique_ptr<ChatTemplate> chat_;
  std::unique_ptr<OpenAiService> service_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<JoinClient> join_;
  std::thread engine_;
  std::atomic<bool> stop_{false};
  bool running_ = false;
};

}  // namespace mixserve::serve

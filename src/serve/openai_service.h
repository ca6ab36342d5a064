// The OpenAI-compatible API of one node: routes requests to completions, chat completions, models,
// health, metrics and node description; checks API keys; turns every failure into OpenAI's error
// JSON with the right status (400 bad input, 401 key, 404 unknown model or route, 405 method, 429
// queue full with Retry-After, 503 shutting down); tracks calls in flight for a graceful drain.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "common/timer.h"
#include "engine/batch_scheduler.h"
#include "engine/model.h"
#include "model/chat_template.h"
#include "serve/api_keys.h"
#include "serve/generation_call.h"
#include "serve/http_server.h"
#include "serve/node_info.h"
#include "serve/serve_metrics.h"

namespace mixserve::serve {

/// Settings of the API.
struct ServiceOptions {
  NodeFacts node;                          ///< model id, chip and host facts (model_id is what clients send)
  ApiKeys keys;                            ///< accepted Bearer keys for /v1/* (none = open)
  int64_t default_completion_tokens = 16;  ///< /v1/completions max_tokens when absent (OpenAI's default)
  int retry_after_s = 1;                   ///< Retry-After of a 429
};

/// Request handler of the HTTP server.
class OpenAiService {
 public:
  /// A service over `model` (with `chat` for chat requests), running requests on `scheduler` and
  /// recording into `metrics`; all must outlive it.
  OpenAiService(const Model& model, const ChatTemplate& chat, BatchScheduler& scheduler, ServeMetrics& metrics,
                ServiceOptions options);

  /// Handles one request (I/O thread).
  void handle(const std::shared_ptr<HttpExchange>& exchange);
  /// From now on new generations get 503 and /health reports draining.
  void set_draining() { draining_ = true; }
  /// Whether set_draining() was called.
  bool draining() const { return draining_.load(); }
  /// Ends every call in flight with a server error (`reason`).
  void abort_all(const std::string& reason);
  /// Generations in flight (submitted and not yet replied).
  size_t active() const;

 private:
  void generate(const std::shared_ptr<HttpExchange>& exchange, Endpoint endpoint, const std::string& route);
  /// Prompt token ids of a request; `echo` receives the prompt text when echo was asked.
  std::vector<int32_t> prompt_of(const GenerationRequest& request, std::string* echo) const;
  void reply_json(HttpExchange& exchange, const std::string& route, int status, const nlohmann::json& body,
                  HttpHeaders headers = {});
  void reply_error(HttpExchange& exchange, const std::string& route, int status, const std::string& message,
                   const std::string& type, const std::string& param = "", const std::string& code = "",
                   HttpHeaders headers = {});
  nlohmann::json models() const;

  const Model& model_;
  const ChatTemplate& chat_;
  BatchScheduler& scheduler_;
  ServeMetrics& metrics_;
  ServiceOptions options_;
  CallContext calls_;
  Stopwatch uptime_;
  int64_t created_ = 0;  // Unix time of start, the models' "created"
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> next_id_{1};
  mutable std::mutex mutex_;  // guards active_
  std::map<uint64_t, std::shared_ptr<GenerationCall>> active_;
};

}  // namespace mixserve::serve

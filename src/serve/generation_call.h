// One generation request in flight: submits it to the batch scheduler and turns the engine's
// callbacks (on the engine thread) into an HTTP reply — a whole JSON body, or Server-Sent Events
// that start at once and end with `data: [DONE]`. Ends early when the client disconnects (the
// sequence is cancelled and its KV blocks freed) or when the server shuts down (an error event).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "engine/batch_scheduler.h"
#include "serve/http_server.h"
#include "serve/openai_request.h"
#include "serve/openai_response.h"

namespace mixserve::serve {

class ServeMetrics;

/// What calls share with the service; outlives every call.
struct CallContext {
  const Tokenizer& tokenizer;   ///< for logprob token texts
  BatchScheduler& scheduler;    ///< where requests run
  ServeMetrics& metrics;        ///< per-request figures
  std::function<void(uint64_t)> on_finished;  ///< told the call's key (engine thread) once it has replied; may be empty
};

/// A generation request from submit to its last byte.
class GenerationCall : public std::enable_shared_from_this<GenerationCall> {
 public:
  /// A call answering on `exchange`; `key` identifies it to CallContext::on_finished; `echo_prefix`
  /// is put before the generated text (completions' echo).
  GenerationCall(CallContext& context, uint64_t key, std::shared_ptr<HttpExchange> exchange,
                 GenerationRequest request, ResponseMeta meta, std::string echo_prefix);

  /// Submits the prompt and starts the reply; returns the scheduler's request id. Throws what
  /// BatchScheduler::submit throws (nothing has been sent to the client then).
  uint64_t start(std::vector<int32_t> prompt, const GenerateOptions& options);
  /// Ends the call as a server error with `reason` (shutdown, engine failure): the request is
  /// cancelled; a stream gets an error event and [DONE], a whole reply a 503.
  void abort(const std::string& reason);

 private:
  void on_text(std::string_view text);
  void on_done(const RequestResult& result);
  void send_event(const nlohmann::json& payload);

  CallContext& context_;
  uint64_t key_;
  std::shared_ptr<HttpExchange> exchange_;
  GenerationRequest request_;
  ResponseMeta meta_;
  std::string echo_prefix_;
  std::mutex mutex_;         // orders start() before the engine thread's callbacks
  uint64_t id_ = 0;
  std::string abort_reason_;
};

}  // namespace mixserve::serve

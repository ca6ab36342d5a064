#include "serve/generation_call.h"

#include "serve/serve_metrics.h"

namespace mixserve::serve {

GenerationCall::GenerationCall(CallContext& context, uint64_t key, std::shared_ptr<HttpExchange> exchange,
                               GenerationRequest request, ResponseMeta meta, std::string echo_prefix)
    : context_(context),
      key_(key),
      exchange_(std::move(exchange)),
      request_(std::move(request)),
      meta_(std::move(meta)),
      echo_prefix_(std::move(echo_prefix)) {}

uint64_t GenerationCall::start(std::vector<int32_t> prompt, const GenerateOptions& options) {
  std::lock_guard lock(mutex_);
  RequestCallbacks callbacks;
  auto self = shared_from_this();
  if (request_.stream) callbacks.on_text = [self](std::string_view text) { self->on_text(text); };
  callbacks.on_done = [self](const RequestResult& result) { self->on_done(result); };
  id_ = context_.scheduler.submit(std::move(prompt), options, std::move(callbacks));
  BatchScheduler& scheduler = context_.scheduler;
  const uint64_t id = id_;
  exchange_->on_disconnect([&scheduler, id] { scheduler.cancel(id); });
  if (request_.stream) {
    exchange_->begin_stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}});
    // Chat streams open with the assistant role; echoed completions with the prompt.
    if (request_.endpoint == Endpoint::kChatCompletions || !echo_prefix_.empty()) {
      send_event(stream_chunk(request_, meta_, echo_prefix_, true, std::nullopt));
    }
  }
  return id_;
}

void GenerationCall::abort(const std::string& reason) {
  std::lock_guard lock(mutex_);  // waits for start() to have an id
  if (abort_reason_.empty()) abort_reason_ = reason;
  if (id_ != 0) context_.scheduler.cancel(id_);
}

void GenerationCall::send_event(const nlohmann::json& payload) { exchange_->write(sse_event(payload)); }

void GenerationCall::on_text(std::string_view text) {
  std::lock_guard lock(mutex_);
  send_event(stream_chunk(request_, meta_, std::string(text), false, std::nullopt));
}

void GenerationCall::on_done(const RequestResult& result) {
  std::string abort_reason;
  {
    std::lock_guard lock(mutex_);
    abort_reason = abort_reason_;
    if (abort_reason.empty() && !result.error.empty()) abort_reason = result.error;
  }
  const bool client_gone = result.cancelled && abort_reason.empty();
  context_.metrics.finished(request_.endpoint, result, client_gone);
  if (!abort_reason.empty()) {
    const auto error = error_body(abort_reason, "server_error", "", "server_unavailable");
    if (request_.stream) {
      send_event(error);
      exchange_->write(sse_done());
      exchange_->end_stream();
    } else {
      exchange_->respond(503, "application/json", error.dump(), {{"Retry-After", "5"}});
    }
  } else if (!client_gone) {
    if (request_.stream) {
      send_event(stream_chunk(request_, meta_, "", false, result.finish));
      if (request_.include_usage) send_event(usage_chunk(request_, meta_, result));
      exchange_->write(sse_done());
      exchange_->end_stream();
    } else {
      const auto body = full_response(request_, meta_, result, echo_prefix_ + result.text, context_.tokenizer);
      exchange_->respond(200, "application/json", body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
  }
  if (context_.on_finished) context_.on_finished(key_);
  exchange_.reset();  // the reply is queued; release the connection
}

}  // namespace mixserve::serve

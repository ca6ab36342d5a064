// OpenAI-compatible response bodies: completions and chat completions (whole and as streamed
// chunks), Server-Sent Events framing and error objects, built from engine results.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/batch_scheduler.h"
#include "model/tokenizer.h"
#include "serve/openai_request.h"

namespace mixserve::serve {

/// Identity of one response: its id ("cmpl-…"/"chatcmpl-…"), creation time and model id.
struct ResponseMeta {
  std::string id;        ///< unique per request
  int64_t created = 0;   ///< Unix seconds
  std::string model;     ///< model id echoed to the client
};

/// "stop" or "length".
const char* finish_reason_name(FinishReason reason);

/// The whole (non-streamed) response to a request. `text` is what is returned as the completion
/// (with the prompt in front when echo was asked).
nlohmann::json full_response(const GenerationRequest& request, const ResponseMeta& meta, const RequestResult& result,
                             const std::string& text, const Tokenizer& tokenizer);

/// One streamed chunk: a text delta (chat: the first chunk carries the role) and, on the last one,
/// the finish reason.
nlohmann::json stream_chunk(const GenerationRequest& request, const ResponseMeta& meta, const std::string& delta,
                            bool first, std::optional<FinishReason> finish);

/// The usage-only chunk sent last when stream_options.include_usage is true.
nlohmann::json usage_chunk(const GenerationRequest& request, const ResponseMeta& meta, const RequestResult& result);

/// {"prompt_tokens", "completion_tokens", "total_tokens"} (plus cached prompt tokens).
nlohmann::json usage_of(const RequestResult& result);

/// OpenAI's error object {"error": {"message", "type", "param", "code"}}.
nlohmann::json error_body(const std::string& message, const std::string& type, const std::string& param = "",
                          const std::string& code = "");

/// One Server-Sent Event carrying `payload` ("data: …\n\n").
std::string sse_event(const nlohmann::json& payload);
/// The event that ends a stream ("data: [DONE]\n\n").
std::string sse_done();

}  // namespace mixserve::serve

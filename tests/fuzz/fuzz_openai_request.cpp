// libFuzzer target: arbitrary bytes as the body of /v1/completions and /v1/chat/completions. Parsing
// must end with a validated request or one mixserve::Error (kInvalidArgument, which the server turns
// into a 400 naming the field); a parsed chat request is rendered with the ChatML template, as the
// server does. Anything else (a crash, another exception, a sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "common/log.h"
#include "model/chat_template.h"
#include "serve/openai_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mixserve::set_log_level(mixserve::LogLevel::kOff);
  static const mixserve::ChatTemplate chatml(mixserve::ChatTemplate::kChatMlSource, "<s>", "</s>");
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (auto endpoint : {mixserve::serve::Endpoint::kCompletions, mixserve::serve::Endpoint::kChatCompletions}) {
    try {
      const auto r = mixserve::serve::parse_generation_request(endpoint, body);
      if (r.max_tokens && (*r.max_tokens < 0 || *r.max_tokens > (1 << 24))) std::abort();
      if (r.generate.stop.size() > 4) std::abort();
      if (endpoint == mixserve::serve::Endpoint::kChatCompletions) {
        if (!r.messages.is_array() || r.messages.empty()) std::abort();
        (void)chatml.apply(r.messages, true);
      } else if (r.prompt.empty() && r.prompt_tokens.empty() && !body.empty() && r.model.empty()) {
        std::abort();
      }
    } catch (const mixserve::Error& e) {
      if (e.code() != mixserve::ErrorCode::kInvalidArgument && e.code() != mixserve::ErrorCode::kResourceExhausted) {
        std::abort();
      }
    }
  }
  return 0;
}

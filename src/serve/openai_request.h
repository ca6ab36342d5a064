// OpenAI-compatible request bodies (/v1/completions, /v1/chat/completions) parsed and validated
// into engine settings. Every problem is a kInvalidArgument naming the field, which the HTTP layer
// turns into a 400 with OpenAI's error JSON (`param` = the field).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/completion.h"

namespace mixserve::serve {

/// Which endpoint a request came to.
enum class Endpoint { kCompletions, kChatCompletions };

/// A validated generation request.
struct GenerationRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;                     ///< requested model id
  std::string prompt;                    ///< completions: prompt text (empty when prompt_tokens is used)
  std::vector<int32_t> prompt_tokens;    ///< completions: prompt given as token ids
  nlohmann::json messages;               ///< chat: the messages array, validated
  std::optional<int64_t> max_tokens;     ///< absent = up to the context limit (chat) or 16 (completions)
  GenerateOptions generate;              ///< sampling, stop strings (max_tokens resolved by the server)
  bool stream = false;                   ///< Server-Sent Events
  bool include_usage = false;            ///< stream_options.include_usage: a last chunk with usage
  int logprobs = -1;                     ///< top alternatives per token to return; -1 = no logprobs
  bool echo = false;                     ///< completions: prefix the prompt to the text
  std::string user;                      ///< end-user id (logged, not used)
};

/// Parses and validates a request body. Throws Error(kInvalidArgument) with the field name in
/// `param_of(error)` form "field: message".
GenerationRequest parse_generation_request(Endpoint endpoint, const std::string& body);

/// Field a validation message is about ("max_tokens" from "max_tokens: must be ..."), or "".
std::string param_of(const std::string& message);

}  // namespace mixserve::serve

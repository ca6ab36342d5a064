#include "serve/openai_response.h"

namespace mixserve::serve {
namespace {

using nlohmann::json;

bool chat(const GenerationRequest& r) { return r.endpoint == Endpoint::kChatCompletions; }

json header(const GenerationRequest& r, const ResponseMeta& meta, bool chunk) {
  const char* object = chat(r) ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return {{"id", meta.id}, {"object", object}, {"created", meta.created}, {"model", meta.model}};
}

// A token's text with invalid UTF-8 (a token holding part of a character) replaced by U+FFFD, so
// that it can be a JSON string.
std::string piece_text(const Tokenizer& tokenizer, int32_t id) {
  const std::string quoted = json(tokenizer.token_to_piece(id)).dump(-1, ' ', false, json::error_handler_t::replace);
  return json::parse(quoted).get<std::string>();
}

json completions_logprobs(const RequestResult& result, const Tokenizer& tokenizer) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(), offsets = json::array();
  size_t offset = 0;
  for (const TokenLogprob& lp : result.logprobs) {
    const std::string piece = piece_text(tokenizer, lp.token);
    tokens.push_back(piece);
    token_logprobs.push_back(lp.logprob);
    json alternatives = json::object();
    for (const auto& [id, logprob] : lp.top) alternatives[piece_text(tokenizer, id)] = logprob;
    top.push_back(alternatives);
    offsets.push_back(offset);
    offset += piece.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

json chat_logprobs(const RequestResult& result, const Tokenizer& tokenizer) {
  json content = json::array();
  auto entry = [&](int32_t id, float logprob) {
    const std::string raw = tokenizer.token_to_piece(id);
    json bytes = json::array();
    for (unsigned char c : raw) bytes.push_back(c);
    return json{{"token", piece_text(tokenizer, id)}, {"logprob", logprob}, {"bytes", bytes}};
  };
  for (const TokenLogprob& lp : result.logprobs) {
    json e = entry(lp.token, lp.logprob);
    json top = json::array();
    for (const auto& [id, logprob] : lp.top) top.push_back(entry(id, logprob));
    e["top_logprobs"] = top;
    content.push_back(e);
  }
  return {{"content", content}};
}

}  // namespace

const char* finish_reason_name(FinishReason reason) { return reason == FinishReason::kStop ? "stop" : "length"; }

json usage_of(const RequestResult& result) {
  const auto completion = static_cast<int64_t>(result.tokens.size());
  return {{"prompt_tokens", result.prompt_tokens},
          {"completion_tokens", completion},
          {"total_tokens", result.prompt_tokens + completion},
          {"prompt_tokens_details", {{"cached_tokens", result.cached_tokens}}}};
}

json full_response(const GenerationRequest& request, const ResponseMeta& meta, const RequestResult& result,
                   const std::string& text, const Tokenizer& tokenizer) {
  json body = header(request, meta, false);
  json choice = {{"index", 0}, {"finish_reason", finish_reason_name(result.finish)}};
  const bool want_logprobs = request.logprobs >= 0;
  if (chat(request)) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
    choice["logprobs"] = want_logprobs ? chat_logprobs(result, tokenizer) : json(nullptr);
  } else {
    choice["text"] = text;
    choice["logprobs"] = want_logprobs ? completions_logprobs(result, tokenizer) : json(nullptr);
  }
  body["choices"] = json::array({choice});
  body["usage"] = usage_of(result);
  return body;
}

json stream_chunk(const GenerationRequest& request, const ResponseMeta& meta, const std::string& delta, bool first,
                  std::optional<FinishReason> finish) {
  json body = header(request, meta, true);
  json choice = {{"index", 0}, {"logprobs", nullptr},
                 {"finish_reason", finish ? json(finish_reason_name(*finish)) : json(nullptr)}};
  if (chat(request)) {
    json d = json::object();
    if (first) d["role"] = "assistant";
    if (!delta.empty() || (!first && !finish)) d["content"] = delta;
    choice["delta"] = d;
  } else {
    choice["text"] = delta;
  }
  body["choices"] = json::array({choice});
  if (request.include_usage) body["usage"] = nullptr;
  return body;
}

json usage_chunk(const GenerationRequest& request, const ResponseMeta& meta, const RequestResult& result) {
  json body = header(request, meta, true);
  body["choices"] = json::array();
  body["usage"] = usage_of(result);
  return body;
}

json error_body(const std::string& message, const std::string& type, const std::string& param, const std::string& code) {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

std::string sse_event(const json& payload) {
  return "data: " + payload.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace mixserve::serve

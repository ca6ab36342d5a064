#include "serve/openai_request.h"

#include <cmath>
#include <limits>

#include "common/error.h"

namespace mixserve::serve {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& field, const std::string& message) {
  fail(ErrorCode::kInvalidArgument, field, ": ", message);
}

double number(const json& body, const char* field, double lo, double hi) {
  const json& v = body.at(field);
  if (!v.is_number()) bad(field, str_cat("must be a number, got ", v.type_name()));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) bad(field, str_cat("must be in [", lo, ", ", hi, "], got ", v.dump()));
  return x;
}

int64_t integer(const json& body, const char* field, int64_t lo, int64_t hi) {
  const json& v = body.at(field);
  if (!v.is_number_integer()) bad(field, str_cat("must be an integer, got ", v.dump()));
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) {
    bad(field, str_cat("must be in [", lo, ", ", hi, "], got ", v.dump()));
  }
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) bad(field, str_cat("must be in [", lo, ", ", hi, "], got ", x));
  return x;
}

bool boolean(const json& body, const char* field) {
  const json& v = body.at(field);
  if (!v.is_boolean()) bad(field, str_cat("must be true or false, got ", v.dump()));
  return v.get<bool>();
}

bool present(const json& body, const char* field) { return body.contains(field) && !body.at(field).is_null(); }

void parse_prompt(const json& body, GenerationRequest& r) {
  if (!present(body, "prompt")) bad("prompt", "is required");
  const json& p = body.at("prompt");
  if (p.is_string()) {
    r.prompt = p.get<std::string>();
    return;
  }
  if (p.is_array() && !p.empty() && p.front().is_number_integer()) {
    for (const json& t : p) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
        bad("prompt", "token arrays must hold non-negative integers");
      }
      r.prompt_tokens.push_back(t.get<int32_t>());
    }
    return;
  }
  if (p.is_array() && p.size() == 1 && p.front().is_string()) {
    r.prompt = p.front().get<std::string>();
    return;
  }
  if (p.is_array() && p.size() > 1) bad("prompt", "one prompt per request is supported; send several requests");
  bad("prompt", "must be a string or an array of token ids");
}

void parse_messages(const json& body, GenerationRequest& r) {
  if (!present(body, "messages")) bad("messages", "is required");
  const json& m = body.at("messages");
  if (!m.is_array() || m.empty()) bad("messages", "must be a non-empty array");
  for (size_t i = 0; i < m.size(); ++i) {
    const json& msg = m[i];
    const std::string where = str_cat("messages[", i, "]");
    if (!msg.is_object()) bad(where, "must be an object with role and content");
    if (!msg.contains("role") || !msg.at("role").is_string()) bad(where + ".role", "must be a string");
    const std::string role = msg.at("role").get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "developer" && role != "tool") {
      bad(where + ".role", "must be system, developer, user, assistant or tool, got '" + role + "'");
    }
    if (!msg.contains("content")) bad(where + ".content", "is required");
    const json& content = msg.at("content");
    if (content.is_array()) {
      // Content parts: only text parts can be rendered by a text-only model.
      for (const json& part : content) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part.at("text").is_string()) {
          bad(where + ".content", "only text content parts ({\"type\":\"text\",\"text\":...}) are supported");
        }
      }
    } else if (!content.is_string() && !(content.is_null() && role == "assistant")) {
      bad(where + ".content", "must be a string or an array of text parts");
    }
  }
  // Flatten text parts so that templates see plain strings.
  r.messages = json::array();
  for (const json& msg : m) {
    json copy = msg;
    if (msg.at("content").is_array()) {
      std::string text;
      for (const json& part : msg.at("content")) text += part.at("text").get<std::string>();
      copy["content"] = text;
    } else if (msg.at("content").is_null()) {
      copy["content"] = "";
    }
    r.messages.push_back(std::move(copy));
  }
}

}  // namespace

std::string param_of(const std::string& message) {
  const size_t colon = message.find(": ");
  if (colon == std::string::npos || message.find(' ') < colon) return "";
  return message.substr(0, colon);
}

GenerationRequest parse_generation_request(Endpoint endpoint, const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) fail(ErrorCode::kInvalidArgument, "body: is not valid JSON");
  if (!j.is_object()) bad("body", "must be a JSON object");
  GenerationRequest r;
  r.endpoint = endpoint;
  if (!present(j, "model") || !j.at("model").is_string()) bad("model", "is required and must be a string");
  r.model = j.at("model").get<std::string>();
  if (endpoint == Endpoint::kCompletions) {
    parse_prompt(j, r);
  } else {
    parse_messages(j, r);
  }
  // OpenAI's defaults: temperature 1, top_p 1, no top-k / min-p cut.
  SamplingParams& s = r.generate.sampling;
  s.temperature = 1.0f;
  s.top_p = 1.0f;
  s.top_k = 0;
  s.min_p = 0.0f;
  s.seed = std::random_device{}();
  if (present(j, "temperature")) s.temperature = static_cast<float>(number(j, "temperature", 0.0, 2.0));
  if (present(j, "top_p")) s.top_p = static_cast<float>(number(j, "top_p", 0.0, 1.0));
  if (present(j, "top_k")) s.top_k = static_cast<int32_t>(integer(j, "top_k", 0, 1 << 20));
  if (present(j, "min_p")) s.min_p = static_cast<float>(number(j, "min_p", 0.0, 1.0));
  if (present(j, "repetition_penalty")) s.repeat_penalty = static_cast<float>(number(j, "repetition_penalty", 0.01, 10.0));
  if (present(j, "seed")) s.seed = static_cast<uint64_t>(integer(j, "seed", std::numeric_limits<int64_t>::min(),
                                                                  std::numeric_limits<int64_t>::max()));
  if (s.top_p <= 0.0f) bad("top_p", "must be greater than 0");
  const char* max_field = present(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (present(j, max_field)) r.max_tokens = integer(j, max_field, 0, 1 << 24);
  if (present(j, "n") && integer(j, "n", 1, 128) != 1) bad("n", "only n = 1 is supported");
  if (present(j, "best_of") && integer(j, "best_of", 1, 128) != 1) bad("best_of", "only best_of = 1 is supported");
  if (present(j, "stream")) r.stream = boolean(j, "stream");
  if (present(j, "stream_options")) {
    const json& so = j.at("stream_options");
    if (!so.is_object()) bad("stream_options", "must be an object");
    if (!r.stream) bad("stream_options", "is only allowed with stream: true");
    if (present(so, "include_usage")) r.include_usage = boolean(so, "include_usage");
  }
  if (present(j, "stop")) {
    const json& st = j.at("stop");
    if (st.is_string()) {
      r.generate.stop.push_back(st.get<std::string>());
    } else if (st.is_array() && st.size() <= 4) {
      for (const json& x : st) {
        if (!x.is_string()) bad("stop", "must be a string or an array of up to 4 strings");
        r.generate.stop.push_back(x.get<std::string>());
      }
    } else {
      bad("stop", "must be a string or an array of up to 4 strings");
    }
    for (const std::string& x : r.generate.stop) {
      if (x.empty()) bad("stop", "stop strings must not be empty");
    }
  }
  if (endpoint == Endpoint::kCompletions) {
    if (present(j, "logprobs")) r.logprobs = static_cast<int>(integer(j, "logprobs", 0, 20));
    if (present(j, "echo")) r.echo = boolean(j, "echo");
  } else {
    const bool want = present(j, "logprobs") && boolean(j, "logprobs");
    if (present(j, "top_logprobs")) {
      const auto top = static_cast<int>(integer(j, "top_logprobs", 0, 20));
      if (!want) bad("top_logprobs", "needs logprobs: true");
      r.logprobs = top;
    } else if (want) {
      r.logprobs = 0;
    }
  }
  // Extension shared with vLLM and llama.cpp: keep generating past EOS (benchmarks, fixed lengths).
  if (present(j, "ignore_eos")) r.generate.stop_at_eos = !boolean(j, "ignore_eos");
  if (present(j, "user")) {
    if (!j.at("user").is_string()) bad("user", "must be a string");
    r.user = j.at("user").get<std::string>();
  }
  validate(s);
  return r;
}

}  // namespace mixserve::serve

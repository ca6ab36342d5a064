#include "serve/openai_service.h"

#include <chrono>
#include <random>

#include "common/error.h"
#include "common/log.h"
#include "serve/openai_response.h"

namespace mixserve::serve {
namespace {

using nlohmann::json;

constexpr const char* kJson = "application/json";

// Route label of a path: the known ones, else "other" (unbounded label values would flood Prometheus).
std::string route_of(const std::string& path) {
  static const char* kRoutes[] = {"/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/node", "/health",
                                  "/metrics"};
  for (const char* r : kRoutes) {
    if (path == r) return r;
  }
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models";
  return "other";
}

std::string random_id(const char* prefix) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* kAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kAlphabet[rng() % 62];
  return id;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

OpenAiService::OpenAiService(const Model& model, const ChatTemplate& chat, BatchScheduler& scheduler,
                             ServeMetrics& metrics, ServiceOptions options)
    : model_(model),
      chat_(chat),
      scheduler_(scheduler),
      metrics_(metrics),
      options_(std::move(options)),
      calls_{model.tokenizer(), scheduler, metrics, nullptr},
      created_(unix_now()) {
  calls_.on_finished = [this](uint64_t key) {
    std::lock_guard lock(mutex_);
    active_.erase(key);
  };
}

size_t OpenAiService::active() const {
  std::lock_guard lock(mutex_);
  return active_.size();
}

void OpenAiService::abort_all(const std::string& reason) {
  std::vector<std::shared_ptr<GenerationCall>> calls;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, call] : active_) calls.push_back(call);
  }
  for (const auto& call : calls) call->abort(reason);
}

void OpenAiService::reply_json(HttpExchange& exchange, const std::string& route, int status, const json& body,
                               HttpHeaders headers) {
  metrics_.request(route, status);
  exchange.respond(status, kJson, body.dump(-1, ' ', false, json::error_handler_t::replace), std::move(headers));
}

void OpenAiService::reply_error(HttpExchange& exchange, const std::string& route, int status, const std::string& message,
                                const std::string& type, const std::string& param, const std::string& code,
                                HttpHeaders headers) {
  reply_json(exchange, route, status, error_body(message, type, param, code), std::move(headers));
}

json OpenAiService::models() const {
  return {{"id", options_.node.model_id},
          {"object", "model"},
          {"created", created_},
          {"owned_by", "mixserve"},
          {"max_model_len", scheduler_.options().batch.max_seq_len}};
}

void OpenAiService::handle(const std::shared_ptr<HttpExchange>& exchange) {
  const HttpRequest& req = exchange->request();
  const std::string route = route_of(req.path);
  if (req.path.rfind("/v1/", 0) == 0 && !options_.keys.allows(req.header("authorization"))) {
    return reply_error(*exchange, route, 401, "Incorrect or missing API key: send 'Authorization: Bearer <key>'",
                       "invalid_request_error", "", "invalid_api_key", {{"WWW-Authenticate", "Bearer"}});
  }
  auto allow = [&](const char* method) {
    if (req.method == method || (std::string_view(method) == "GET" && req.method == "HEAD")) return true;
    reply_error(*exchange, route, 405, str_cat("method ", req.method, " is not allowed on ", req.path, "; use ", method),
                "invalid_request_error", "", "method_not_allowed", {{"Allow", method}});
    return false;
  };
  if (route == "/v1/completions" || route == "/v1/chat/completions") {
    if (!allow("POST")) return;
    return generate(exchange, route == "/v1/completions" ? Endpoint::kCompletions : Endpoint::kChatCompletions, route);
  }
  if (route == "/v1/models") {
    if (!allow("GET")) return;
    if (req.path == "/v1/models" || req.path == "/v1/models/") {
      return reply_json(*exchange, route, 200, {{"object", "list"}, {"data", json::array({models()})}});
    }
    const std::string id = req.path.substr(std::string_view("/v1/models/").size());
    if (id == options_.node.model_id) return reply_json(*exchange, route, 200, models());
    return reply_error(*exchange, route, 404, str_cat("The model '", id, "' does not exist"), "invalid_request_error",
                       "model", "model_not_found");
  }
  if (route == "/v1/node") {
    if (!allow("GET")) return;
    return reply_json(*exchange, route, 200, describe_node(options_.node, model_, scheduler_, uptime_.seconds(), draining()));
  }
  if (route == "/health") {
    if (!allow("GET")) return;
    if (draining()) return reply_json(*exchange, route, 503, {{"status", "draining"}}, {{"Retry-After", "5"}});
    return reply_json(*exchange, route, 200, {{"status", "ok"}});
  }
  if (route == "/metrics") {
    if (!allow("GET")) return;
    metrics_.request(route, 200);
    return exchange->respond(200, MetricsRegistry::kContentType, metrics_.render());
  }
  reply_error(*exchange, route, 404, str_cat("no route for ", req.method, " ", req.path), "invalid_request_error", "",
              "not_found");
}

std::vector<int32_t> OpenAiService::prompt_of(const GenerationRequest& request, std::string* echo) const {
  const Tokenizer& tokenizer = model_.tokenizer();
  if (request.endpoint == Endpoint::kChatCompletions) {
    const std::string text = chat_.apply(request.messages, /*add_generation_prompt=*/true);
    // Templates such as Llama 3's print the BOS text themselves: do not add a second one.
    const bool bos_in_text = !chat_.bos_token().empty() && text.starts_with(chat_.bos_token());
    return tokenizer.encode(text, !bos_in_text, /*parse_special=*/true);
  }
  if (!request.prompt_tokens.empty()) {
    if (request.echo) *echo = tokenizer.decode(request.prompt_tokens);
    return request.prompt_tokens;
  }
  if (request.echo) *echo = request.prompt;
  return tokenizer.encode(request.prompt, true, /*parse_special=*/true);
}

void OpenAiService::generate(const std::shared_ptr<HttpExchange>& exchange, Endpoint endpoint, const std::string& route) {
  const char* prompt_field = endpoint == Endpoint::kChatCompletions ? "messages" : "prompt";
  try {
    if (draining()) {
      return reply_error(*exchange, route, 503, "the server is shutting down; send the request to another node",
                         "server_error", "", "server_shutting_down", {{"Retry-After", "5"}});
    }
    GenerationRequest request = parse_generation_request(endpoint, exchange->request().body);
    if (request.model != options_.node.model_id) {
      return reply_error(*exchange, route, 404,
                         str_cat("The model '", request.model, "' does not exist; this server serves '",
                                 options_.node.model_id, "'"),
                         "invalid_request_error", "model", "model_not_found");
    }
    std::string echo;
    std::vector<int32_t> prompt = prompt_of(request, &echo);
    const int64_t limit = scheduler_.options().batch.max_seq_len;
    const auto n_prompt = static_cast<int64_t>(prompt.size());
    if (n_prompt == 0) {
      return reply_error(*exchange, route, 400, "the prompt is empty", "invalid_request_error", prompt_field);
    }
    if (n_prompt >= limit) {
      return reply_error(*exchange, route, 400,
                         str_cat("This model's maximum context length is ", limit, " tokens. However, your ",
                                 prompt_field, " resulted in ", n_prompt,
                                 " tokens, which leaves no room for the completion. Please reduce the length."),
                         "invalid_request_error", prompt_field, "context_length_exceeded");
    }
    if (request.max_tokens && n_prompt + *request.max_tokens > limit) {
      return reply_error(*exchange, route, 400,
                         str_cat("This model's maximum context length is ", limit, " tokens. However, you requested ",
                                 n_prompt + *request.max_tokens, " tokens (", n_prompt, " in the ", prompt_field, ", ",
                                 *request.max_tokens,
                                 " in the completion). Please reduce the length of the prompt or completion."),
                         "invalid_request_error", "max_tokens", "context_length_exceeded");
    }
    GenerateOptions options = request.generate;
    options.max_tokens = request.max_tokens.value_or(endpoint == Endpoint::kCompletions
                                                         ? std::min(options_.default_completion_tokens, limit - n_prompt)
                                                         : limit - n_prompt);
    options.top_logprobs = request.logprobs;
    ResponseMeta meta{random_id(endpoint == Endpoint::kChatCompletions ? "chatcmpl-" : "cmpl-"), unix_now(),
                      options_.node.model_id};
    const uint64_t key = next_id_++;
    auto call = std::make_shared<GenerationCall>(calls_, key, exchange, std::move(request), std::move(meta), echo);
    {
      std::lock_guard lock(mutex_);
      active_.emplace(key, call);
    }
    try {
      call->start(std::move(prompt), options);
    } catch (...) {
      std::lock_guard lock(mutex_);
      active_.erase(key);
      throw;
    }
    metrics_.request(route, 200);
  } catch (const Error& e) {
    const std::string message = e.what();
    switch (e.code()) {
      case ErrorCode::kInvalidArgument:
        return reply_error(*exchange, route, 400, message, "invalid_request_error", param_of(message));
      case ErrorCode::kResourceExhausted:
        return reply_error(*exchange, route, 429, message + "; retry later", "rate_limit_error", "",
                           "server_overloaded", {{"Retry-After", std::to_string(options_.retry_after_s)}});
      case ErrorCode::kNotFound:
        return reply_error(*exchange, route, 404, message, "invalid_request_error", "", "not_found");
      case ErrorCode::kUnimplemented:
        return reply_error(*exchange, route, 400, message, "invalid_request_error", "", "unsupported");
      default:
        log_error("request failed: ", message);
        return reply_error(*exchange, route, 500, message, "server_error");
    }
  }
}

}  // namespace mixserve::serve

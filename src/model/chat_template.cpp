#include "model/chat_template.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/log.h"
#include "model/gguf.h"
#include "model/vocab.h"

namespace mixserve {
namespace {

// Requests nest a few levels (message -> tool_calls -> function -> arguments); far deeper input is
// refused before it can reach the interpreter's own depth limit.
constexpr int kMaxJsonDepth = 64;

jinja::Template parse_template(std::string_view source) {
  try {
    return jinja::Template(source);
  } catch (const Error& e) {
    throw Error(e.code(), std::string("chat template: ") + e.what());
  }
}

template <typename Json>
jinja::Value to_value(const Json& j, int depth) {
  if (depth > kMaxJsonDepth)
    fail(ErrorCode::kInvalidArgument, "chat messages nested deeper than ", kMaxJsonDepth, " levels");
  switch (j.type()) {
    case Json::value_t::null: return jinja::Value::none();
    case Json::value_t::boolean: return j.template get<bool>();
    case Json::value_t::number_integer: return j.template get<int64_t>();
    case Json::value_t::number_unsigned: {
      const auto u = j.template get<uint64_t>();
      return u <= static_cast<uint64_t>(INT64_MAX) ? jinja::Value(static_cast<int64_t>(u))
                                                   : jinja::Value(static_cast<double>(u));
    }
    case Json::value_t::number_float: return j.template get<double>();
    case Json::value_t::string: return j.template get_ref<const std::string&>();
    case Json::value_t::array: {
      std::vector<jinja::Value> items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(to_value(item, depth + 1));
      return jinja::Value::list(std::move(items));
    }
    case Json::value_t::object: {
      jinja::Dict d;
      for (const auto& [key, value] : j.items()) d.set(key, to_value(value, depth + 1));
      return jinja::Value::dict(std::move(d));
    }
    default: fail(ErrorCode::kInvalidArgument, "chat messages hold a JSON value of unsupported type ", j.type_name());
  }
}

template <typename Json>
void validate_messages(const Json& messages) {
  if (!messages.is_array()) {
    fail(ErrorCode::kInvalidArgument, "chat messages must be a JSON array of {\"role\", \"content\"} objects, got ",
         messages.type_name());
  }
  if (messages.empty()) fail(ErrorCode::kInvalidArgument, "chat messages are empty");
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    if (!m.is_object()) fail(ErrorCode::kInvalidArgument, "messages[", i, "] must be an object, got ", m.type_name());
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      fail(ErrorCode::kInvalidArgument, "messages[", i, "].role must be a string");
    }
    const auto content = m.find("content");
    const bool has_tool_calls = m.find("tool_calls") != m.end();
    if (content != m.end() && content->is_string()) continue;
    if (has_tool_calls && (content == m.end() || content->is_null())) continue;
    if (content != m.end() && content->is_array()) {
      fail(ErrorCode::kInvalidArgument, "messages[", i,
           "].content must be a string (content-part arrays are not supported)");
    }
    fail(ErrorCode::kInvalidArgument, "messages[", i, "].content must be a string", has_tool_calls ? " or null" : "");
  }
}

std::string token_text(const Vocab& vocab, int32_t id) {
  return (id >= 0 && id < vocab.size()) ? vocab.tokens[static_cast<size_t>(id)] : std::string();
}

}  // namespace

// transformers' ChatML default, as a Jinja template.
const std::string ChatTemplate::kChatMlSource =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

ChatTemplate::ChatTemplate(std::string source, std::string bos_token, std::string eos_token)
    : source_(std::move(source)),
      bos_(std::move(bos_token)),
      eos_(std::move(eos_token)),
      template_(parse_template(source_)) {}

ChatTemplate ChatTemplate::with_vocab(std::string source, const Vocab& vocab) {
  return ChatTemplate(std::move(source), token_text(vocab, vocab.bos_id), token_text(vocab, vocab.eos_id));
}

ChatTemplate ChatTemplate::from_gguf(const gguf::File& file, const Vocab& vocab) {
  std::optional<std::string> source = file.get_string(kGgufKey);
  const bool fallback = !source;
  if (fallback) {
    log_warn("model file ", file.path(), " has no ", kGgufKey,
             "; using the ChatML template (--chat-template FILE overrides)");
    source = kChatMlSource;
  }
  ChatTemplate t = with_vocab(std::move(*source), vocab);
  t.fallback_ = fallback;
  return t;
}

bool ChatTemplate::has_template(const gguf::File& file) {
  return file.find(kGgufKey) != nullptr;
}

template <typename Json>
std::string ChatTemplate::render(const Json& messages, bool add_generation_prompt, const Json* extra) const {
  validate_messages(messages);
  jinja::Dict context;
  context.set("bos_token", bos_);
  context.set("eos_token", eos_);
  context.set("tools", jinja::Value::none());  // transformers passes tools=None, documents=None
  context.set("documents", jinja::Value::none());
  if (extra && !extra->is_null()) {
    if (!extra->is_object()) fail(ErrorCode::kInvalidArgument, "chat template variables must be a JSON object");
    for (const auto& [key, value] : extra->items()) {
      if (key == "messages" || key == "add_generation_prompt") {
        fail(ErrorCode::kInvalidArgument, "chat template variable '", key, "' cannot be overridden");
      }
      context.set(key, to_value(value, 1));
    }
  }
  context.set("messages", to_value(messages, 0));
  context.set("add_generation_prompt", add_generation_prompt);
  try {
    return template_.render(context, options_);
  } catch (const Error& e) {
    throw Error(e.code(), std::string("chat template: ") + e.what());
  }
}

std::string ChatTemplate::apply(const nlohmann::json& messages, bool add_generation_prompt) const {
  return render<nlohmann::json>(messages, add_generation_prompt, nullptr);
}

std::string ChatTemplate::apply(const nlohmann::json& messages, bool add_generation_prompt,
                                const nlohmann::json& extra) const {
  return render(messages, add_generation_prompt, &extra);
}

std::string ChatTemplate::apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                const nlohmann::ordered_json& extra) const {
  return render(messages, add_generation_prompt, &extra);
}

}  // namespace mixserve

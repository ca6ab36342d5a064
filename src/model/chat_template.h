// Chat templates: renders an OpenAI-style message list into the prompt text a model was trained on,
// with the Jinja template stored in its GGUF metadata (tokenizer.chat_template), the way
// transformers' apply_chat_template does (same Jinja settings, globals and tojson).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "model/jinja/jinja_template.h"

namespace mixserve {
namespace gguf {
class File;
}
struct Vocab;

/// A parsed chat template plus the BOS/EOS texts it may print; immutable after construction apart
/// from set_render_options(), and safe to apply() from several threads at once.
class ChatTemplate {
 public:
  /// GGUF metadata key holding the template.
  static constexpr std::string_view kGgufKey = "tokenizer.chat_template";
  /// ChatML (<|im_start|>role\ncontent<|im_end|>\n), used when a model file has no template.
  static const std::string kChatMlSource;

  /// Parses `source`. Throws Error "chat template: template:L:C: ..." (kInvalidArgument for syntax
  /// errors, kUnimplemented for Jinja features outside the supported subset).
  ChatTemplate(std::string source, std::string bos_token, std::string eos_token);

  /// `source` with the BOS/EOS texts of `vocab` ("" when the vocabulary has none).
  static ChatTemplate with_vocab(std::string source, const Vocab& vocab);
  /// The template of a model file, with BOS/EOS texts from `vocab` ("" when the vocabulary has none).
  /// Without tokenizer.chat_template this falls back to ChatML and logs a warning.
  static ChatTemplate from_gguf(const gguf::File& file, const Vocab& vocab);
  /// Whether `file` carries tokenizer.chat_template.
  static bool has_template(const gguf::File& file);

  /// Renders `messages` (a JSON array of objects with string "role" and "content"; "content" may be
  /// null when "tool_calls" is present; other keys pass through). Template variables: messages,
  /// add_generation_prompt, bos_token, eos_token, tools = none, documents = none. Throws
  /// kInvalidArgument for malformed messages and template errors (raise_exception included),
  /// kResourceExhausted past the render limits. Dict key order is nlohmann::json's (sorted); pass an
  /// ordered_json to keep request order in tojson output.
  std::string apply(const nlohmann::json& messages, bool add_generation_prompt) const;
  /// Same with `extra`: a JSON object whose keys become further template variables (tools, documents,
  /// date_string, ...); messages and add_generation_prompt cannot be overridden.
  std::string apply(const nlohmann::json& messages, bool add_generation_prompt, const nlohmann::json& extra) const;
  /// Same for insertion-ordered JSON (tojson then prints keys in request order, like Python).
  std::string apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                    const nlohmann::ordered_json& extra) const;

  /// Limits and clock (strftime_now) of later apply() calls.
  void set_render_options(jinja::RenderOptions options) { options_ = std::move(options); }
  /// The template text.
  const std::string& source() const { return source_; }
  /// Text of the BOS token ("" when none).
  const std::string& bos_token() const { return bos_; }
  /// Text of the EOS token ("" when none).
  const std::string& eos_token() const { return eos_; }
  /// True when the model had no template and ChatML is used instead.
  bool is_fallback() const { return fallback_; }

 private:
  template <typename Json>
  std::string render(const Json& messages, bool add_generation_prompt, const Json* extra) const;

  std::string source_;
  std::string bos_;
  std::string eos_;
  jinja::Template template_;
  jinja::RenderOptions options_;
  bool fallback_ = false;
};

}  // namespace mixserve

// Chat templates of real models (../shared/data/chat-templates) rendered to the prompt formats their
// model cards document. Every expected string below is written by hand from that documentation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "model/chat_template.h"
#include "model/gguf.h"
#include "model/vocab.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The conversation every template renders: system, user, assistant, user.
json conversation(bool with_system = true) {
  json m = json::array();
  if (with_system) m.push_back({{"role", "system"}, {"content", "You are a helpful assistant."}});
  m.push_back({{"role", "user"}, {"content", "Hello!"}});
  m.push_back({{"role", "assistant"}, {"content", "Hi there! How can I help?"}});
  m.push_back({{"role", "user"}, {"content", "What is 2+2?"}});
  return m;
}

#define LOAD_TEMPLATE(var, file, bos, eos)                     \
  MIXSERVE_SHARED_OR_SKIP(var##_path, "chat-templates/" file); \
  const ChatTemplate var(slurp(var##_path), bos, eos)

Error apply_error(const ChatTemplate& t, const json& messages) {
  try {
    const std::string out = t.apply(messages, true);
    ADD_FAILURE() << "expected an error, got: " << out;
  } catch (const Error& e) {
    return e;
  }
  return Error(ErrorCode::kInternal, "no error");
}

// Qwen2.5 model card: ChatML, "<|im_start|>{role}\n{content}<|im_end|>\n", and a default system prompt.
TEST(ChatTemplate, Qwen25) {
  LOAD_TEMPLATE(t, "Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>");
  EXPECT_EQ(t.apply(conversation(), true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there! How can I help?<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(t.apply(conversation(false), false),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there! How can I help?<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n");
}

// Qwen2.5 function calling (Qwen docs, "Function Calling"): tools listed as JSON lines in <tools>.
TEST(ChatTemplate, Qwen25ToolsKeepRequestKeyOrder) {
  LOAD_TEMPLATE(t, "Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>");
  const auto messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "Weather in Paris?"}])");
  const auto extra = nlohmann::ordered_json::parse(
      R"({"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]})");
  EXPECT_EQ(t.apply(messages, true, extra),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n"
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            R"({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}})"
            "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n"
            R"({"name": <function-name>, "arguments": <args-json-object>})"
            "\n</tool_call><|im_end|>\n"
            "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
            "<|im_start|>assistant\n");
}

// DeepSeek-R1 distills: "<｜begin▁of▁sentence｜>{system}<｜User｜>{user}<｜Assistant｜>{reply}"
// "<｜end▁of▁sentence｜>"; the generation prompt opens a <think> block, and earlier replies lose their reasoning.
TEST(ChatTemplate, DeepSeekR1DistillQwen) {
  LOAD_TEMPLATE(t, "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "<｜begin▁of▁sentence｜>",
                "<｜end▁of▁sentence｜>");
  EXPECT_EQ(t.apply(conversation(), true),
            "<｜begin▁of▁sentence｜>You are a helpful assistant."
            "<｜User｜>Hello!<｜Assistant｜>Hi there! How can I help?<｜end▁of▁sentence｜>"
            "<｜User｜>What is 2+2?<｜Assistant｜><think>\n");
  json m = conversation(false);
  m[1]["content"] = "<think>\nThe user greets me.\n</think>\n\nHi there!";
  EXPECT_EQ(t.apply(m, false),
            "<｜begin▁of▁sentence｜><｜User｜>Hello!<｜Assistant｜>\n\nHi there!<｜end▁of▁sentence｜>"
            "<｜User｜>What is 2+2?");
}

// Gemma 2: "<bos><start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n...", no system role.
TEST(ChatTemplate, Gemma2) {
  LOAD_TEMPLATE(t, "google-gemma-2-2b-it.jinja", "<bos>", "<eos>");
  EXPECT_EQ(t.apply(conversation(false), true),
            "<bos><start_of_turn>user\nHello!<end_of_turn>\n"
            "<start_of_turn>model\nHi there! How can I help?<end_of_turn>\n"
            "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
  const Error system = apply_error(t, conversation());
  EXPECT_EQ(system.code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(system.what(), HasSubstr("System role not supported"));
  const Error order =
      apply_error(t, json::parse(R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])"));
  EXPECT_THAT(order.what(), HasSubstr("Conversation roles must alternate"));
}

// Llama 3.1 model card: header tokens, the system block with the knowledge cut-off and date.
TEST(ChatTemplate, Llama31) {
  LOAD_TEMPLATE(t, "meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>");
  EXPECT_EQ(t.apply(conversation(), true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
            "You are a helpful assistant.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there! How can I help?<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(
      t.apply(json::parse(R"([{"role": "user", "content": "  Hi  "}])"), false, json{{"date_string", "01 Jan 2025"}}),
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
      "Cutting Knowledge Date: December 2023\nToday Date: 01 Jan 2025\n\n<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

// Phi-3.5-mini model card: "<|system|>\n...<|end|>\n<|user|>\n...<|end|>\n<|assistant|>\n".
TEST(ChatTemplate, Phi35) {
  LOAD_TEMPLATE(t, "microsoft-Phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>");
  EXPECT_EQ(t.apply(conversation(), true),
            "<|system|>\nYou are a helpful assistant.<|end|>\n"
            "<|user|>\nHello!<|end|>\n"
            "<|assistant|>\nHi there! How can I help?<|end|>\n"
            "<|user|>\nWhat is 2+2?<|end|>\n"
            "<|assistant|>\n");
  EXPECT_EQ(t.apply(json::parse(R"([{"role": "user", "content": "Hi"}])"), false),
            "<|user|>\nHi<|end|>\n<|endoftext|>");
}

// Mistral Nemo: "<s>[INST]user[/INST]reply</s>[INST]...", the system prompt joins the last user turn.
TEST(ChatTemplate, MistralNemo) {
  LOAD_TEMPLATE(t, "mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>");
  EXPECT_EQ(t.apply(conversation(), true),
            "<s>[INST]Hello![/INST]Hi there! How can I help?</s>"
            "[INST]You are a helpful assistant.\n\nWhat is 2+2?[/INST]");
  EXPECT_EQ(t.apply(conversation(false), true),
            "<s>[INST]Hello![/INST]Hi there! How can I help?</s>[INST]What is 2+2?[/INST]");
  const Error e = apply_error(t, json::parse(R"([{"role": "assistant", "content": "first"}])"));
  EXPECT_THAT(e.what(), HasSubstr("conversation roles must alternate"));
}

TEST(ChatTemplate, MessagesAreValidated) {
  const ChatTemplate t(ChatTemplate::kChatMlSource, "", "");
  struct Case {
    json messages;
    const char* message;
  };
  const Case cases[] = {
      {json::object(), "must be a JSON array"},
      {json::array(), "are empty"},
      {json::parse(R"([1])"), "messages[0] must be an object"},
      {json::parse(R"([{"content": "x"}])"), "messages[0].role must be a string"},
      {json::parse(R"([{"role": "user", "content": "a"}, {"role": 3, "content": "x"}])"), "messages[1].role"},
      {json::parse(R"([{"role": "user"}])"), "messages[0].content must be a string"},
      {json::parse(R"([{"role": "user", "content": null}])"), "messages[0].content must be a string"},
      {json::parse(R"([{"role": "user", "content": [{"type": "text", "text": "x"}]}])"), "content-part arrays"},
  };
  for (const Case& c : cases) {
    const Error e = apply_error(t, c.messages);
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << c.messages.dump();
    EXPECT_THAT(e.what(), HasSubstr(c.message)) << c.messages.dump();
  }
  // An assistant turn with tool calls may have null content.
  const ChatTemplate roles("{% for m in messages %}{{ m.role }}:{{ m.content }}{% endfor %}", "", "");
  EXPECT_EQ(
      roles.apply(json::parse(R"([{"role": "assistant", "content": null, "tool_calls": []}])"), false, json::object()),
      "assistant:None");
  EXPECT_THROW(t.apply(json::parse(R"([{"role": "user", "content": "x"}])"), true, json{{"messages", 1}}), Error);
  EXPECT_THROW(t.apply(json::parse(R"([{"role": "user", "content": "x"}])"), true, json::array()), Error);
}

TEST(ChatTemplate, BadTemplatesFailClearly) {
  try {
    ChatTemplate t("{% for m in messages %}{{ m.content }}", "", "");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(e.what(), HasSubstr("chat template: template:1:4: 'for' block is never closed"));
  }
  try {
    ChatTemplate t("{% include 'other.jinja' %}", "", "");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnimplemented);
  }
}

Vocab tiny_vocab() {
  Vocab v;
  v.tokens = {"<unk>", "<s>", "</s>", "a"};
  v.scores = {0, 0, 0, 0};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl, TokenType::kNormal};
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  return v;
}

TEST(ChatTemplate, FromGgufUsesTheStoredTemplateOrChatMl) {
  const json messages = json::parse(R"([{"role": "user", "content": "Hi"}])");
  gguf::Writer with;
  with.set(std::string(ChatTemplate::kGgufKey),
           gguf::make_string("{{ bos_token }}[{{ messages[0].content }}]{{ eos_token }}"));
  const std::vector<uint8_t> with_bytes = with.to_bytes();
  const gguf::File with_file = gguf::File::parse(with_bytes);
  EXPECT_TRUE(ChatTemplate::has_template(with_file));
  const ChatTemplate stored = ChatTemplate::from_gguf(with_file, tiny_vocab());
  EXPECT_FALSE(stored.is_fallback());
  EXPECT_EQ(stored.apply(messages, true), "<s>[Hi]</s>");

  const gguf::Writer without;
  const std::vector<uint8_t> without_bytes = without.to_bytes();
  const gguf::File without_file = gguf::File::parse(without_bytes);
  EXPECT_FALSE(ChatTemplate::has_template(without_file));
  const ChatTemplate chatml = ChatTemplate::from_gguf(without_file, tiny_vocab());
  EXPECT_TRUE(chatml.is_fallback());
  EXPECT_EQ(chatml.apply(messages, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, StrftimeNowFollowsTheConfiguredClock) {
  ChatTemplate t("{{ strftime_now('%d %b %Y') }}", "", "");
  jinja::RenderOptions options;
  options.now = [] {
    std::tm tm{};
    tm.tm_year = 125;
    tm.tm_mon = 0;
    tm.tm_mday = 2;
    return tm;
  };
  t.set_render_options(options);
  EXPECT_EQ(t.apply(json::parse(R"([{"role": "user", "content": "x"}])"), true), "02 Jan 2025");
}

}  // namespace
}  // namespace mixserve

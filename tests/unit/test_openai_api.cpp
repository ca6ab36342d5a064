// OpenAI request parsing (every field, defaults, and a table of bad bodies with the field each error
// names) and response shapes (completions, chat, streamed chunks, usage, errors, SSE framing).
#include <gtest/gtest.h>

#include "common/error.h"
#include "model/vocab.h"
#include "serve/openai_request.h"
#include "serve/openai_response.h"

namespace mixserve::serve {
namespace {

using nlohmann::json;

TEST(OpenAiRequest, CompletionFieldsAndOpenAiDefaults) {
  const auto r = parse_generation_request(Endpoint::kCompletions, R"({"model":"m","prompt":"hi"})");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt, "hi");
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_FLOAT_EQ(r.generate.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.generate.sampling.top_p, 1.0f);
  EXPECT_EQ(r.generate.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(r.generate.sampling.min_p, 0.0f);
  EXPECT_FALSE(r.stream);
  EXPECT_EQ(r.logprobs, -1);

  const auto full = parse_generation_request(Endpoint::kCompletions, R"({"model":"m","prompt":[1,2,3],
      "max_tokens":7,"temperature":0,"top_p":0.5,"top_k":3,"min_p":0.1,"seed":42,"stop":["a","b"],"n":1,
      "stream":true,"stream_options":{"include_usage":true},"logprobs":2,"echo":true,"user":"u1",
      "unknown_field":{"ignored":true}})");
  EXPECT_EQ(full.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(full.max_tokens, 7);
  EXPECT_FLOAT_EQ(full.generate.sampling.temperature, 0.0f);
  EXPECT_EQ(full.generate.sampling.top_k, 3);
  EXPECT_EQ(full.generate.sampling.seed, 42u);
  EXPECT_EQ(full.generate.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(full.stream);
  EXPECT_TRUE(full.include_usage);
  EXPECT_EQ(full.logprobs, 2);
  EXPECT_TRUE(full.echo);
  EXPECT_EQ(full.user, "u1");
}

TEST(OpenAiRequest, ChatMessagesAndLogprobs) {
  const auto r = parse_generation_request(Endpoint::kChatCompletions, R"({"model":"m","messages":[
      {"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
      {"role":"assistant","content":null}],"logprobs":true,"top_logprobs":3,"max_completion_tokens":5})");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[1]["content"], "ab");
  EXPECT_EQ(r.messages[2]["content"], "");
  EXPECT_EQ(r.logprobs, 3);
  EXPECT_EQ(r.max_tokens, 5);
}

struct BadCase {
  Endpoint endpoint;
  const char* body;
  const char* param;  // field the error must name
};

TEST(OpenAiRequest, BadBodiesNameTheField) {
  const Endpoint C = Endpoint::kCompletions, H = Endpoint::kChatCompletions;
  const BadCase cases[] = {
      {C, "{not json", "body"},
      {C, "[1,2]", "body"},
      {C, R"({"prompt":"x"})", "model"},
      {C, R"({"model":3,"prompt":"x"})", "model"},
      {C, R"({"model":"m"})", "prompt"},
      {C, R"({"model":"m","prompt":["a","b"]})", "prompt"},
      {C, R"({"model":"m","prompt":[1,-2]})", "prompt"},
      {C, R"({"model":"m","prompt":{}})", "prompt"},
      {C, R"({"model":"m","prompt":"x","max_tokens":-1})", "max_tokens"},
      {C, R"({"model":"m","prompt":"x","max_tokens":1e12})", "max_tokens"},
      {C, R"({"model":"m","prompt":"x","max_tokens":"5"})", "max_tokens"},
      {C, R"({"model":"m","prompt":"x","max_tokens":99999999999999999999})", "max_tokens"},
      {C, R"({"model":"m","prompt":"x","temperature":3})", "temperature"},
      {C, R"({"model":"m","prompt":"x","temperature":"hot"})", "temperature"},
      {C, R"({"model":"m","prompt":"x","top_p":0})", "top_p"},
      {C, R"({"model":"m","prompt":"x","top_k":-1})", "top_k"},
      {C, R"({"model":"m","prompt":"x","n":2})", "n"},
      {C, R"({"model":"m","prompt":"x","stop":[1]})", "stop"},
      {C, R"({"model":"m","prompt":"x","stop":["a","b","c","d","e"]})", "stop"},
      {C, R"({"model":"m","prompt":"x","stop":""})", "stop"},
      {C, R"({"model":"m","prompt":"x","stream":"yes"})", "stream"},
      {C, R"({"model":"m","prompt":"x","stream_options":{"include_usage":true}})", "stream_options"},
      {C, R"({"model":"m","prompt":"x","logprobs":21})", "logprobs"},
      {C, R"({"model":"m","prompt":"x","seed":1.5})", "seed"},
      {H, R"({"model":"m"})", "messages"},
      {H, R"({"model":"m","messages":[]})", "messages"},
      {H, R"({"model":"m","messages":["hi"]})", "messages[0]"},
      {H, R"({"model":"m","messages":[{"content":"hi"}]})", "messages[0].role"},
      {H, R"({"model":"m","messages":[{"role":"wizard","content":"hi"}]})", "messages[0].role"},
      {H, R"({"model":"m","messages":[{"role":"user"}]})", "messages[0].content"},
      {H, R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})", "messages[0].content"},
      {H, R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2})", "top_logprobs"},
  };
  for (const BadCase& c : cases) {
    try {
      parse_generation_request(c.endpoint, c.body);
      ADD_FAILURE() << "accepted: " << c.body;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << c.body;
      EXPECT_EQ(param_of(e.what()), c.param) << c.body << " -> " << e.what();
    }
  }
}

TEST(OpenAiResponse, ShapesOfCompletionChatChunksAndErrors) {
  const auto tokenizer = Tokenizer::create(builtin_vocab());
  RequestResult result;
  result.tokens = {tokenizer->encode("hello", false, false)};
  result.text = "hello";
  result.prompt_tokens = 4;
  result.cached_tokens = 2;
  result.finish = FinishReason::kLength;
  const ResponseMeta meta{"cmpl-1", 1700000000, "tiny"};

  const auto comp = parse_generation_request(Endpoint::kCompletions, R"({"model":"tiny","prompt":"x"})");
  const json c = full_response(comp, meta, result, result.text, *tokenizer);
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(c["id"], "cmpl-1");
  EXPECT_EQ(c["created"], 1700000000);
  EXPECT_EQ(c["choices"][0]["text"], "hello");
  EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(c["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(c["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(c["usage"]["completion_tokens"], static_cast<int64_t>(result.tokens.size()));
  EXPECT_EQ(c["usage"]["total_tokens"], 4 + static_cast<int64_t>(result.tokens.size()));
  EXPECT_EQ(c["usage"]["prompt_tokens_details"]["cached_tokens"], 2);

  const auto chat = parse_generation_request(
      Endpoint::kChatCompletions, R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"stream":true,
      "stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":2})");
  result.logprobs = {{result.tokens[0], -0.5f, {{result.tokens[0], -0.5f}, {7, -1.5f}}}};
  const json h = full_response(chat, meta, result, "hello", *tokenizer);
  EXPECT_EQ(h["object"], "chat.completion");
  EXPECT_EQ(h["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(h["choices"][0]["message"]["content"], "hello");
  ASSERT_EQ(h["choices"][0]["logprobs"]["content"].size(), 1u);
  EXPECT_EQ(h["choices"][0]["logprobs"]["content"][0]["logprob"], -0.5f);
  EXPECT_EQ(h["choices"][0]["logprobs"]["content"][0]["top_logprobs"].size(), 2u);

  const json first = stream_chunk(chat, meta, "", true, std::nullopt);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(first.contains("usage") && first["usage"].is_null());
  const json mid = stream_chunk(chat, meta, "he", false, std::nullopt);
  EXPECT_EQ(mid["choices"][0]["delta"]["content"], "he");
  EXPECT_FALSE(mid["choices"][0]["delta"].contains("role"));
  const json last = stream_chunk(chat, meta, "", false, FinishReason::kStop);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  const json usage = usage_chunk(chat, meta, result);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["prompt_tokens"], 4);

  const json err = error_body("max_tokens: too big", "invalid_request_error", "max_tokens");
  EXPECT_EQ(err["error"]["param"], "max_tokens");
  EXPECT_TRUE(err["error"]["code"].is_null());
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
  const std::string ev = sse_event(json{{"a", "\xff"}});  // invalid UTF-8 is replaced, never thrown
  EXPECT_EQ(ev.rfind("data: {", 0), 0u);
  EXPECT_EQ(ev.substr(ev.size() - 2), "\n\n");
  EXPECT_FALSE(json::parse(ev.substr(6), nullptr, false).is_discarded());
}

}  // namespace
}  // namespace mixserve::serve

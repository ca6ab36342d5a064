// End-to-end tests of `mixserve run --chat`: the prompt is rendered with a chat template (given with
// --chat-template, since synthetic models carry none), special tokens are parsed, and BOS is not doubled.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "support/test_support.h"

namespace mixserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::run_command;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;

std::string synth_tiny(const TempDir& dir) {
  const std::string path = dir.file("m.gguf");
  const auto r = run_command(kBin + " model synth --shape tiny --type f32 -o " + path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return path;
}

std::string write_file(const TempDir& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir.file(name), std::ios::binary) << text;
  return dir.file(name);
}

// Number of prompt tokens from the "prefill: N tokens" line, or -1.
long prefill_tokens(const std::string& err) {
  std::smatch m;
  return std::regex_search(err, m, std::regex("prefill: ([0-9]+) tokens")) ? std::stol(m[1]) : -1;
}

const char* kTemplateBody =
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% "
    "endif %}";

TEST(ChatCli, RendersTheTemplateAndPrintsOnlyTheReply) {
  TempDir dir;
  const std::string model = synth_tiny(dir);
  const std::string tmpl = write_file(dir, "t.jinja", std::string("{{ bos_token }}") + kTemplateBody);
  const auto r = run_command(kBin + " --log debug run -m " + model + " --chat --system 'Be brief.' -p 'Hello there' " +
                             "--chat-template " + tmpl + " -n 4 --temp 0 --ignore-eos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("<s><|system|>Be brief.<|user|>Hello there<|assistant|>")) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("<|user|>")));  // the rendered prompt is not echoed
  EXPECT_THAT(r.err, HasSubstr("decode:  4 tokens"));
}

TEST(ChatCli, BosFromTheTemplateIsNotAddedTwice) {
  TempDir dir;
  const std::string model = synth_tiny(dir);
  const std::string with_bos = write_file(dir, "a.jinja", std::string("{{ bos_token }}") + kTemplateBody);
  const std::string without_bos = write_file(dir, "b.jinja", kTemplateBody);
  const std::string base = kBin + " run -m " + model + " --chat -p 'Hello' -n 1 --temp 0 --ignore-eos --chat-template ";
  const auto a = run_command(base + with_bos);
  const auto b = run_command(base + without_bos);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  // One BOS either way: parsed from the text in (a), added by the tokenizer in (b).
  EXPECT_GT(prefill_tokens(a.err), 1);
  EXPECT_EQ(prefill_tokens(a.err), prefill_tokens(b.err)) << a.err << "\n" << b.err;
  EXPECT_EQ(a.out, b.out);
}

TEST(ChatCli, ModelWithoutTemplateFallsBackToChatMl) {
  TempDir dir;
  const std::string model = synth_tiny(dir);
  const auto info = run_command(kBin + " model info -m " + model);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_THAT(info.out, HasSubstr("chat template: none"));
  const auto r = run_command(kBin + " --log debug run -m " + model + " --chat -p 'Hi' -n 2 --temp 0 --ignore-eos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("using the ChatML template"));
  EXPECT_THAT(r.err, HasSubstr("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
}

TEST(ChatCli, TemplateErrorsAndBadFlagsFailClearly) {
  TempDir dir;
  const std::string model = synth_tiny(dir);
  const std::string raising = write_file(dir, "r.jinja", "{{ raise_exception('System role not supported') }}");
  const auto r = run_command(kBin + " run -m " + model + " --chat -p 'x' --chat-template " + raising);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("error: chat template: template:1:19: System role not supported"));
  const std::string broken = write_file(dir, "b.jinja", "{% for m in messages %}");
  const auto b = run_command(kBin + " run -m " + model + " --chat -p 'x' --chat-template " + broken);
  EXPECT_EQ(b.exit_code, 2);
  EXPECT_THAT(b.err, HasSubstr("'for' block is never closed"));
  const auto missing =
      run_command(kBin + " run -m " + model + " --chat -p 'x' --chat-template " + dir.file("none.jinja"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("cannot open file"));
  const auto no_chat = run_command(kBin + " run -m " + model + " -p 'x' --system 'y'");
  EXPECT_EQ(no_chat.exit_code, 2);
}

}  // namespace
}  // namespace mixserve

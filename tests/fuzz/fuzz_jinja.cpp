// libFuzzer target: arbitrary bytes as a chat template, rendered against a fixed conversation. Parsing
// and rendering must end (no hang) with output or one mixserve::Error; anything else (a crash, another
// exception, a leak, a sanitizer report) is a bug. Limits are small so slow inputs fail fast.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/error.h"
#include "common/log.h"
#include "model/chat_template.h"

namespace {

const nlohmann::json& conversation() {
  static const nlohmann::json messages = nlohmann::json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello \u00e9\u65e5 <b>"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "abcdefghi", "type": "function",
      "function": {"name": "f", "arguments": {"x": [1, 2.5, true, null]}}}]},
    {"role": "tool", "content": "42", "tool_call_id": "abcdefghi"},
    {"role": "user", "content": "  and now?  "}
  ])");
  return messages;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mixserve::set_log_level(mixserve::LogLevel::kOff);
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  try {
    mixserve::ChatTemplate t(std::string(source), "<s>", "</s>");
    mixserve::jinja::RenderOptions options;
    options.max_work = 200000;
    options.max_output_bytes = 1 << 20;
    options.now = [] { return std::tm{}; };
    t.set_render_options(options);
    const std::string out = t.apply(conversation(), true);
    if (out.size() > options.max_output_bytes) std::abort();
  } catch (const mixserve::Error&) {
    // Expected for most inputs.
  }
  return 0;
}

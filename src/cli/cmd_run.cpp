#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "cli/commands.h"
#include "cli/format.h"
#include "cli/model_flags.h"
#include "common/error.h"
#include "common/log.h"
#include "engine/generator.h"
#include "model/chat_template.h"
#include "model/gguf.h"

namespace mixserve::cli {
namespace {

struct RunFlags {
  ModelFlags model;
  std::string prompt;
  std::string prompt_file;
  int64_t n_predict = 64;
  int64_t n_ctx = 0;
  SamplingParams sampling;
  int64_t seed = -1;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool no_bos = false;
  bool parse_special = false;
  bool chat = false;               ///< -p text is a user message rendered with the chat template
  std::string system;              ///< optional system message (with --chat)
  std::string chat_template_file;  ///< template overriding the model's (with --chat)
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kNotFound, "cannot open file '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The prompt text of a one-turn chat: [system,] user, rendered with the model's (or the given) template.
std::string render_chat(const RunFlags& f, const Vocab& vocab, const std::string& template_text,
                        const std::string& user_text) {
  const ChatTemplate chat = f.chat_template_file.empty()
                                ? ChatTemplate::from_gguf(gguf::File::open(f.model.path), vocab)
                                : ChatTemplate::with_vocab(template_text, vocab);
  nlohmann::json messages = nlohmann::json::array();
  if (!f.system.empty()) messages.push_back({{"role", "system"}, {"content", f.system}});
  messages.push_back({{"role", "user"}, {"content", user_text}});
  std::string rendered = chat.apply(messages, /*add_generation_prompt=*/true);
  log_debug("chat prompt rendered with ", f.chat_template_file.empty() ? "the model's template" : f.chat_template_file,
            ":\n", rendered);
  return rendered;
}

void run(const RunFlags& f) {
  SamplingParams sampling = f.sampling;
  sampling.seed = f.seed >= 0 ? static_cast<uint64_t>(f.seed) : std::random_device{}();
  validate(sampling);
  std::string prompt = f.prompt_file.empty() ? f.prompt : read_file(f.prompt_file);
  const std::string template_text = f.chat_template_file.empty() ? std::string() : read_file(f.chat_template_file);
  auto model = f.model.load();
  if (!model) return;
  const Tokenizer& tokenizer = model->tokenizer();
  bool add_bos = !f.no_bos;
  if (f.chat) {
    prompt = render_chat(f, tokenizer.vocab(), template_text, prompt);
    // Templates such as Llama 3's print bos_token themselves; the tokenizer must not add a second one.
    const Vocab& vocab = tokenizer.vocab();
    if (vocab.bos_id >= 0 && vocab.bos_id < vocab.size() && prompt.starts_with(vocab.tokens[vocab.bos_id])) {
      add_bos = false;
    }
  }
  std::vector<int32_t> tokens = tokenizer.encode(prompt, add_bos, f.parse_special || f.chat);
  if (tokens.empty()) fail(ErrorCode::kInvalidArgument, "the prompt is empty (give -p TEXT or -f FILE)");
  Session session(*model, {.n_ctx = f.n_ctx});
  GenerateOptions options;
  options.max_tokens = f.n_predict;
  options.sampling = sampling;
  options.stop = f.stop;
  options.stop_at_eos = !f.ignore_eos;

  if (!f.chat) {  // a chat prompt is full of template markup: print only the reply
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
  }
  const GenerateResult r = generate(session, tokenizer, tokens, options, [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  std::fputc('\n', stdout);
  const double n_gen = static_cast<double>(r.tokens.size());
  std::fprintf(stderr, "\nprefill: %lld tokens in %.3f s (%.2f tokens/s)\n", static_cast<long long>(r.prompt_tokens),
               r.prefill_seconds, static_cast<double>(r.prompt_tokens) / r.prefill_seconds);
  std::fprintf(stderr, "decode:  %lld tokens in %.3f s (%.2f tokens/s)\n", static_cast<long long>(r.tokens.size()),
               r.decode_seconds, r.decode_seconds > 0 ? n_gen / r.decode_seconds : 0.0);
  std::fprintf(stderr, "finish:  %s, seed %llu, device %s\n", r.finish == FinishReason::kStop ? "stop" : "length",
               static_cast<unsigned long long>(sampling.seed), f.model.device.c_str());
  std::fprintf(stderr, "cache:   %s KV cache of %s for %lld tokens of context\n",
               std::string(dtype_name(model->options().cache_type)).c_str(),
               human_bytes(static_cast<double>(session.cache_bytes())).c_str(),
               static_cast<long long>(session.n_ctx()));
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto flags = std::make_shared<RunFlags>();
  auto* cmd = app.add_subcommand("run", "generate text from a prompt, streaming it to stdout");
  flags->model.add_to(cmd);
  auto* prompt = cmd->add_option("-p,--prompt", flags->prompt, "prompt text");
  cmd->add_option("-f,--file", flags->prompt_file, "read the prompt from a file")->excludes(prompt);
  cmd->add_option("-n,--n-predict", flags->n_predict, "tokens to generate")->check(CLI::Range(0, 1 << 24))->capture_default_str();
  cmd->add_option("-c,--ctx", flags->n_ctx, "context length (0 = the model's)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--temp", flags->sampling.temperature, "temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-k", flags->sampling.top_k, "top-k (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", flags->sampling.top_p, "top-p (1 = off)")->capture_default_str();
  cmd->add_option("--min-p", flags->sampling.min_p, "min-p (0 = off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", flags->sampling.repeat_penalty, "repetition penalty (1 = off)")->capture_default_str();
  cmd->add_option("--repeat-last-n", flags->sampling.repeat_last_n, "window of the repetition penalty")->capture_default_str();
  cmd->add_option("-s,--seed", flags->seed, "RNG seed (-1 = random, printed at the end)")->capture_default_str();
  cmd->add_option("--stop", flags->stop, "stop string (repeatable)");
  cmd->add_flag("--ignore-eos", flags->ignore_eos, "keep generating after the end-of-sequence token");
  cmd->add_flag("--no-bos", flags->no_bos, "do not add the beginning-of-sequence token");
  cmd->add_flag("--special", flags->parse_special, "parse special-token text such as <s> in the prompt");
  auto* chat = cmd->add_flag("--chat", flags->chat,
                             "treat the prompt as a user message: render it with the model's chat template "
                             "(special tokens parsed) and print only the reply; --log debug shows the prompt");
  cmd->add_option("--system", flags->system, "system message for --chat")->needs(chat);
  cmd->add_option("--chat-template", flags->chat_template_file, "Jinja chat template file overriding the model's")
      ->needs(chat);
  cmd->callback([flags] { run(*flags); });
}

}  // namespace mixserve::cli

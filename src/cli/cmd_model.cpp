#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "cli/format.h"
#include "common/error.h"
#include "common/progress_bar.h"
#include "model/architecture.h"
#include "model/chat_template.h"
#include "model/gguf.h"
#include "model/model_config.h"
#include "model/synth.h"
#include "model/vocab.h"

namespace mixserve::cli {
namespace {

struct SynthFlags {
  std::string arch = "llama";
  std::string shape = "small";
  std::string type = "q8_0";
  std::string vocab;
  std::string output;
  bool tied = false;
  uint64_t seed = 42;
};

void synth(const SynthFlags& f) {
  SynthOptions options;
  options.arch = std::string(find_architecture(f.arch).name);
  options.shape = parse_synth_shape(f.shape);
  const auto type = dtype_from_name(f.type);
  if (!type || !dtype_info(*type).computable) {
    fail(ErrorCode::kInvalidArgument, "unknown or unsupported --type '", f.type, "' (use f32, f16, bf16, q8_0, q4_0)");
  }
  options.type = *type;
  options.vocab = f.vocab.empty() ? builtin_vocab() : Vocab::from_gguf(gguf::File::open(f.vocab));
  options.tied_output = f.tied;
  options.seed = f.seed;
  ProgressBar bar("writing " + f.output);
  write_synth_model(options, f.output, [&bar](double fraction) { bar.update(fraction); });
  bar.finish();
  std::printf("wrote %s: %s, %s, %lld layers, vocabulary of %d tokens\n", f.output.c_str(), options.arch.c_str(),
              f.type.c_str(), static_cast<long long>(options.shape.n_layer), options.vocab.size());
}

void info(const std::string& path) {
  const gguf::File file = gguf::File::open(path);
  const ModelConfig c = read_model_config(file);
  std::map<std::string, std::pair<int, uint64_t>> by_type;
  uint64_t total = 0;
  for (const auto& t : file.tensors()) {
    auto& entry = by_type[std::string(dtype_name(t.type))];
    entry.first += 1;
    entry.second += t.bytes;
    total += t.bytes;
  }
  std::printf("file:          %s (GGUF v%u, %zu tensors, %s)\n", path.c_str(), file.version(), file.tensors().size(),
              human_bytes(static_cast<double>(total)).c_str());
  std::printf("name:          %s\n", c.name.c_str());
  std::printf("architecture:  %s\n", c.arch.c_str());
  std::printf("layers:        %lld\n", static_cast<long long>(c.n_layer));
  std::printf("embedding:     %lld (heads %lld, kv heads %lld, head dim %lld)\n", static_cast<long long>(c.n_embd),
              static_cast<long long>(c.n_head), static_cast<long long>(c.n_head_kv), static_cast<long long>(c.head_dim));
  std::printf("feed-forward:  %lld\n", static_cast<long long>(c.n_ff));
  std::printf("context:       %lld\n", static_cast<long long>(c.n_ctx_train));
  std::printf("vocabulary:    %lld (%s)\n", static_cast<long long>(c.n_vocab),
              file.get_string("tokenizer.ggml.model").value_or("none").c_str());
  const auto chat_template = file.get_string(ChatTemplate::kGgufKey);
  std::printf("chat template: %s\n", chat_template ? ("yes (" + std::to_string(chat_template->size()) + " bytes)").c_str()
                                                    : "none (run --chat falls back to ChatML)");
  std::printf("rope:          %s, base %g, %lld dims\n", c.rope_neox ? "neox" : "normal", c.rope_freq_base,
              static_cast<long long>(c.n_rot));
  std::printf("output:        %s\n", c.tied_output ? "tied to token_embd" : "separate");
  for (const auto& [name, entry] : by_type) {
    std::printf("tensors %-6s %4d  %s\n", name.c_str(), entry.first,
                human_bytes(static_cast<double>(entry.second)).c_str());
  }
}

}  // namespace

void add_model_command(CLI::App& app) {
  auto* model = app.add_subcommand("model", "create and inspect model files");
  model->require_subcommand(1);

  auto flags = std::make_shared<SynthFlags>();
  auto* synth_cmd = model->add_subcommand("synth", "write a model with synthetic weights and a real tokenizer");
  synth_cmd->add_option("--arch", flags->arch, "architecture (llama, qwen2)")->capture_default_str();
  synth_cmd->add_option("--shape", flags->shape,
                        "preset (tinyllama-1.1b, small, tiny) or embd=N,layers=N,heads=N,kv_heads=N,ff=N[,ctx=N]")
      ->capture_default_str();
  synth_cmd->add_option("--type", flags->type, "weight type: f32, f16, bf16, q8_0, q4_0")->capture_default_str();
  synth_cmd->add_option("--vocab", flags->vocab, "GGUF file to take the tokenizer from (default: built-in)");
  synth_cmd->add_option("-o,--output", flags->output, "output file")->required();
  synth_cmd->add_flag("--tied", flags->tied, "tie the output matrix to the token embeddings");
  synth_cmd->add_option("--seed", flags->seed, "weight seed")->capture_default_str();
  synth_cmd->callback([flags] { synth(*flags); });

  auto path = std::make_shared<std::string>();
  auto* info_cmd = model->add_subcommand("info", "describe a model file");
  info_cmd->add_option("-m,--model", *path, "model file (GGUF)")->required();
  info_cmd->callback([path] { info(*path); });
}

}  // namespace mixserve::cli

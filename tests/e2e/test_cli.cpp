// End-to-end tests of the `mixserve` binary: real processes, real files, exit codes and messages.
#include <gtest/gtest.h>

#include <fstream>

#include "support/test_support.h"

namespace mixserve {
namespace {

using testing::run_command;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;

std::string synth(const TempDir& dir, const std::string& name, const std::string& extra) {
  const std::string path = dir.file(name);
  const auto r = run_command(kBin + " model synth --shape tiny -o " + path + " " + extra);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return path;
}

TEST(Cli, SynthRunProducesTextAndSpeeds) {
  TempDir dir;
  const std::string model = synth(dir, "m.gguf", "--type q8_0");
  const auto r = run_command(kBin + " run -m " + model + " -p 'Hello world' -n 16 --temp 0 --ignore-eos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Hello world", 0), 0u) << r.out;  // prompt echoed, then the generation
  EXPECT_GT(r.out.size(), std::string("Hello world\n").size());
  EXPECT_NE(r.err.find("prefill:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("decode:  16 tokens"), std::string::npos) << r.err;
}

TEST(Cli, MmapAndCopiedWeightsGiveTheSameText) {
  TempDir dir;
  const std::string model = synth(dir, "m.gguf", "--type q4_0");
  const std::string base = kBin + " run -m " + model + " -p 'The cat' -n 16 --temp 0 --ignore-eos ";
  const auto copied = run_command(base);
  const auto mapped = run_command(base + "--mmap");
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  ASSERT_EQ(mapped.exit_code, 0) << mapped.err;
  EXPECT_EQ(copied.out, mapped.out);
}

TEST(Cli, GreedyRunIsDeterministicAndSeedsReproduce) {
  TempDir dir;
  const std::string model = synth(dir, "m.gguf", "--type f16");
  const std::string base = kBin + " run -m " + model + " -p 'The cat' -n 24 --ignore-eos ";
  const auto a = run_command(base + "--temp 0 -t 1");
  const auto b = run_command(base + "--temp 0 -t 2");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  const auto s1 = run_command(base + "--temp 1.0 --seed 5");
  const auto s2 = run_command(base + "--temp 1.0 --seed 5");
  EXPECT_EQ(s1.out, s2.out);
}

TEST(Cli, StopStringEndsGeneration) {
  TempDir dir;
  const std::string model = synth(dir, "m.gguf", "--type f32");
  const auto full = run_command(kBin + " run -m " + model + " -p 'a b c' -n 32 --temp 0 --ignore-eos");
  ASSERT_EQ(full.exit_code, 0) << full.err;
  const std::string generated = full.out.substr(5, full.out.size() - 6);
  ASSERT_GE(generated.size(), 6u);
  const std::string stop = generated.substr(3, 2);
  const auto cut = run_command(kBin + " run -m " + model + " -p 'a b c' -n 32 --temp 0 --ignore-eos --stop '" +
                               stop + "'");
  ASSERT_EQ(cut.exit_code, 0) << cut.err;
  EXPECT_EQ(cut.out, "a b c" + generated.substr(0, generated.find(stop)) + "\n");
  EXPECT_NE(cut.err.find("finish:  stop"), std::string::npos) << cut.err;
}

TEST(Cli, BenchReportsThroughputAndRoofline) {
  TempDir dir;
  const std::string model = synth(dir, "m.gguf", "--type q4_0");
  const auto r = run_command(kBin + " bench -m " + model + " -p 32 -n 8 -r 2 --probe-bytes 16777216");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("pp32"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tg8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("roofline"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("memory read bandwidth"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("each run against the probes just before and after it"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" next to the decode runs)"), std::string::npos) << r.out;
  const auto prefill = run_command(kBin + " bench -m " + model + " -p 16 -n 0 -r 1 --probe-bytes 16777216");
  ASSERT_EQ(prefill.exit_code, 0) << prefill.err;
  EXPECT_NE(prefill.out.find("pp16"), std::string::npos) << prefill.out;
  EXPECT_EQ(prefill.out.find("next to the decode runs"), std::string::npos) << "no decode runs: " << prefill.out;
  const auto handoff = run_command(kBin + " bench -m " + model + " -p 0 -n 4 -r 1 -t 2 --probe-bytes 16777216");
  EXPECT_NE(handoff.out.find("machine: thread handoff "), std::string::npos) << handoff.out;
  const auto one_thread = run_command(kBin + " bench -m " + model + " -p 0 -n 4 -r 1 -t 1 --probe-bytes 16777216");
  EXPECT_EQ(one_thread.out.find("thread handoff"), std::string::npos) << "nothing to hand off: " << one_thread.out;
  EXPECT_EQ(r.out.find("per sequence"), std::string::npos) << "no batched test unless asked: " << r.out;
  const auto b = run_command(kBin + " bench -m " + model + " -p 0 -n 8 -r 1 --batch 3 --probe-bytes 16777216");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_NE(b.out.find("tg8     x3"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("per sequence"), std::string::npos) << b.out;
  EXPECT_EQ(b.out.find("profile"), std::string::npos) << "no profile unless asked: " << b.out;
}

TEST(Cli, BenchProfileSplitsATokensTimeByOp) {
  TempDir dir;
  const std::string model = synth(dir, "m.gguf", "--type q8_0");
  const auto r = run_command(kBin + " bench -m " + model + " -p 8 -n 8 -r 1 --profile --probe-bytes 16777216");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("profile of the prefill runs, per token"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("profile of the decode runs, per token"), std::string::npos) << r.out;
  for (const char* op : {"\n  mat_mul ", "\n  attention ", "\n  rms_norm ", "\n  between ops "}) {
    EXPECT_NE(r.out.find(op), std::string::npos) << op << " in " << r.out;
  }
  EXPECT_NE(r.out.find("matrix products by weights, per token"), std::string::npos) << r.out;
  for (const char* weights :
       {"\n  attn_q+attn_k+attn_v ", "\n  attn_output ", "\n  ffn_gate+ffn_up ", "\n  ffn_down ", "\n  output "}) {
    EXPECT_NE(r.out.find(weights), std::string::npos) << weights << " in " << r.out;
  }
}

TEST(Cli, BenchAtDepthNamesItsTestsAsLlamaBenchDoes) {
  TempDir dir;
  const std::string model = synth(dir, "m.gguf", "--type q8_0");
  const auto r = run_command(kBin + " bench -m " + model + " -p 8 -n 4 -d 16 -r 1 --probe-bytes 16777216");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\npp8 @ d16 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\ntg4 @ d16 "), std::string::npos) << r.out;
  const auto deep = run_command(kBin + " bench -m " + model + " -p 0 -n 4 -d 100000 -r 1 --probe-bytes 16777216");
  EXPECT_NE(deep.exit_code, 0);
  EXPECT_NE(deep.err.find("depth included"), std::string::npos) << deep.err;
}

// --cache-type f16: the run works and the bench names the cache and counts half the KV bytes per
// decoded token (the difference from the f32 cache's roofline bytes is the halved cache rows).
TEST(Cli, F16CacheRunsAndHalvesTheCacheBytesTheRooflineCounts) {
  TempDir dir;
  const std::string model = synth(dir, "m.gguf", "--type q8_0");
  const auto run = run_command(kBin + " run -m " + model + " -p 'The cat' -n 8 --temp 0 --cache-type f16");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // tiny: 2 layers x (K and V) x 128 tokens x 32 KV dims x 2 bytes.
  EXPECT_NE(run.err.find("cache:   f16 KV cache of 32.77 KB for 128 tokens of context"), std::string::npos) << run.err;
  const auto kb_per_token = [&](const std::string& type) {
    const auto r =
        run_command(kBin + " bench -m " + model + " -p 0 -n 8 -d 112 -r 1 --probe-bytes 16777216 --cache-type " + type);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find(type + " KV cache"), std::string::npos) << r.out;
    const size_t at = r.out.find(" KB read per token");
    EXPECT_NE(at, std::string::npos) << r.out;
    const size_t open = r.out.rfind('(', at);
    return std::stod(r.out.substr(open + 1, at - open - 1));
  };
  // tiny: 2 layers x 32 KV dims x (112 + 8/2 mean rows) x (K and V) = 14848 elements, 2 bytes less each.
  EXPECT_NEAR(kb_per_token("f32") - kb_per_token("f16"), 14848 * 2 / 1e3, 0.011);
}

TEST(Cli, DevicesListsCpu) {
  const auto r = run_command(kBin + " devices");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\ncpu "), std::string::npos) << r.out;
}

TEST(Cli, ModelInfoDescribesShape) {
  TempDir dir;
  const std::string model = synth(dir, "m.gguf", "--arch qwen2 --type bf16 --tied");
  const auto r = run_command(kBin + " model info -m " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("qwen2"), std::string::npos);
  EXPECT_NE(r.out.find("tied"), std::string::npos);
  EXPECT_NE(r.out.find("neox"), std::string::npos);
}

struct BadCase {
  std::string args;       // after the binary
  int exit_code;          // expected
  std::string message;    // expected substring of stderr
};

class CliBadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(CliBadInput, FailsCleanlyWithOneLine) {
  TempDir dir;
  {
    std::ofstream(dir.file("garbage.gguf")) << "this is not a model file at all";
    std::ofstream(dir.file("empty.gguf"));
    std::ofstream trunc(dir.file("truncated.gguf"), std::ios::binary);
    trunc.write("GGUF\3\0\0\0\1\0\0\0", 12);
  }
  std::string args = GetParam().args;
  for (size_t pos; (pos = args.find("DIR/")) != std::string::npos;) args.replace(pos, 4, dir.path().string() + "/");
  const auto r = run_command(kBin + " " + args);
  EXPECT_EQ(r.exit_code, GetParam().exit_code) << r.err;
  EXPECT_NE(r.err.find(GetParam().message), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("terminate called"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("Sanitizer"), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CliBadInput,
    ::testing::Values(BadCase{"run -m DIR/missing.gguf -p hi", 1, "missing.gguf"},
                      BadCase{"run -m DIR/garbage.gguf -p hi", 1, "magic"},
                      BadCase{"run -m DIR/empty.gguf -p hi", 1, "error:"},
                      BadCase{"run -m DIR/truncated.gguf -p hi", 1, "error:"}, BadCase{"run -p hi", 2, "--model"},
                      BadCase{"run -m DIR/x.gguf -p hi -n -5", 2, "n-predict"},
                      BadCase{"run -m DIR/x.gguf -p hi --temp -1", 2, "temperature"},
                      BadCase{"run -m DIR/x.gguf -p hi --top-p 1.5", 2, "top_p"},
                      BadCase{"bench -m DIR/x.gguf -r 0", 2, "repetitions"},
                      BadCase{"run -m DIR/x.gguf -p hi --cache-type q4_0", 2, "--cache-type"},
                      BadCase{"model synth --shape nonsense -o DIR/o.gguf", 2, "nonsense"},
                      BadCase{"model synth --type q4_k -o DIR/o.gguf", 2, "q4_k"},
                      BadCase{"model synth --arch gpt-j -o DIR/o.gguf", 1, "unsupported model architecture"},
                      BadCase{"model synth -o /nonexistent-dir/o.gguf --shape tiny", 1, "/nonexistent-dir/o.gguf"},
                      BadCase{"frobnicate", 2, "subcommand"},
                      BadCase{"run -m DIR/missing.gguf -p hi --device tpu:7", 1, "error:"}));

TEST(Cli, UnknownDeviceIsNamed) {
  TempDir dir;
  const std::string model = synth(dir, "m.gguf", "--type q8_0");
  const auto r = run_command(kBin + " run -m " + model + " -p hi --device tpu:7");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("tpu:7"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cpu"), std::string::npos) << r.err;
}

TEST(Cli, PromptLongerThanContextIsRejected) {
  TempDir dir;
  const std::string model = synth(dir, "m.gguf", "--type q8_0");
  std::string prompt;
  for (int i = 0; i < 200; ++i) prompt += "word ";
  const auto r = run_command(kBin + " run -m " + model + " -c 16 -p '" + prompt + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("context"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mixserve

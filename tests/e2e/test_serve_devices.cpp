// `mixserve serve` across devices (OpenCL on PoCL + CPU): the op table decided at load is exposed in
// /v1/node and /metrics, with the ops that fell back to the CPU; --no-fallback refuses to start.
// Skips when `mixserve devices` lists no OpenCL device.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/serve_client.h"
#include "support/server_process.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::run_command;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;

bool have_opencl() { return run_command(kBin + " devices").out.find("opencl:0") != std::string::npos; }

TEST(ServeDevices, OpTableAndFallbacksAreExposed) {
  if (!have_opencl()) GTEST_SKIP() << "no OpenCL device listed by `mixserve devices`: test skipped";
  TempDir dir;
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(run_command(kBin + " model synth --shape tiny --type f16 -o " + model).exit_code, 0);
  const json request = {{"model", "m"}, {"prompt", "The cat"}, {"max_tokens", 8}, {"temperature", 0}, {"ignore_eos", true}};

  testing::ServerProcess cpu({kBin, "serve", "-m", model, "--port", "0", "--device", "cpu"}, dir.file("cpu.log"));
  const auto expected = testing::post_json(cpu.port(), "/v1/completions", request);
  ASSERT_EQ(expected.status, 200);

  testing::ServerProcess split({kBin, "serve", "-m", model, "--port", "0", "--device", "opencl:0,cpu"},
                               dir.file("split.log"));
  EXPECT_THAT(split.log(), HasSubstr("opencl:0 cannot run rope"));  // the table printed at load
  const auto node = testing::get_json(split.port(), "/v1/node");
  ASSERT_EQ(node.status, 200);
  const json& placement = node.body["placement"];
  EXPECT_GT(placement["fallbacks_per_step"].get<int>(), 0);
  bool opencl_matmul = false, rope_on_cpu = false;
  for (const json& row : placement["op_table"]) {
    if (row["op"] == "mat_mul" && row["device"] == "opencl:0") opencl_matmul = true;
    if (row["op"] == "rope" && row["device"] == "cpu" && row["preferred"] == "opencl:0") rope_on_cpu = true;
  }
  EXPECT_TRUE(opencl_matmul) << placement.dump();
  EXPECT_TRUE(rope_on_cpu) << placement.dump();
  ASSERT_EQ(node.body["devices"].size(), 2u);
  EXPECT_EQ(node.body["devices"][0]["id"], "opencl:0");

  const auto got = testing::post_json(split.port(), "/v1/completions", request);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.body["choices"][0]["text"], expected.body["choices"][0]["text"]);  // same greedy text

  serve::HttpClient client("127.0.0.1", split.port());
  const std::string metrics = client.request("GET", "/metrics").body;
  EXPECT_GT(testing::metric(metrics, "mixserve_op_table_fallbacks", {"op=\"rope\"", "preferred=\"opencl:0\""}).value_or(0), 0);
  EXPECT_GT(testing::metric(metrics, "mixserve_device_ops_total", {"op_device=\"opencl:0\""}).value_or(0), 0);
  EXPECT_GT(testing::metric(metrics, "mixserve_op_fallbacks_total").value_or(0), 0);
  EXPECT_THAT(metrics, HasSubstr("device=\"opencl:0\""));
}

TEST(ServeDevices, NoFallbackRefusesToStart) {
  if (!have_opencl()) GTEST_SKIP() << "no OpenCL device listed by `mixserve devices`: test skipped";
  TempDir dir;
  const std::string model = dir.file("m.gguf");
  ASSERT_EQ(run_command(kBin + " model synth --shape tiny --type f16 -o " + model).exit_code, 0);
  const auto r = run_command(kBin + " serve -m " + model + " --port 0 --device opencl:0,cpu --no-fallback");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("opencl:0"));
}

}  // namespace
}  // namespace mixserve

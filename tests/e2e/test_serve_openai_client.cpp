// End-to-end test with an independently written OpenAI client: installs the official `openai` npm
// package (pinned in tests/e2e/openai_client/package-lock.json) under the build tree and runs
// tests/e2e/openai_client/client_test.mjs against a live `mixserve serve` with an API key: models,
// completions and chat (stream and non-stream), logprobs and the client's error classes.
// Without node/npm or the npm registry the test skips loudly; with CI set in the environment it fails.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "support/server_process.h"
#include "support/test_support.h"

namespace mixserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::ServerProcess;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;
const fs::path kClientSource = MIXSERVE_OPENAI_CLIENT_DIR;
constexpr int kMinNodeMajor = 18;  // openai 4.x needs the global fetch of Node 18+

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && *ci != '\0' && std::string(ci) != "0" && std::string(ci) != "false";
}

// `name` found on PATH as an executable file, or nothing.
std::optional<fs::path> find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const fs::path candidate = fs::path(dir) / name;
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// `s` quoted for /bin/sh.
std::string quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The `openai` version pinned in package.json at `dir`, or "" when unreadable.
std::string pinned_version(const fs::path& dir) {
  const json pkg = json::parse(slurp(dir / "package.json"), nullptr, false);
  if (!pkg.is_object() || !pkg.contains("dependencies") || !pkg["dependencies"].contains("openai")) return "";
  return pkg["dependencies"]["openai"].get<std::string>();
}

// The version of node_modules/openai installed at `dir`, or "" when absent.
std::string installed_version(const fs::path& dir) {
  const json pkg = json::parse(slurp(dir / "node_modules" / "openai" / "package.json"), nullptr, false);
  return pkg.is_object() && pkg.contains("version") ? pkg["version"].get<std::string>() : "";
}

// Where the client was installed, or why it could not be.
struct Install {
  fs::path dir;        ///< where client_test.mjs and node_modules live
  std::string error;   ///< why the install failed (empty on success)
};

// Copies the client beside the build's bin/ and runs `npm ci` there unless the pinned lock file is
// already installed.
Install install_client(const fs::path& npm) {
  Install result;
  result.dir = fs::path(kBin).parent_path().parent_path() / "openai-client";
  const std::string want = pinned_version(kClientSource);
  if (want.empty()) {
    result.error = "cannot read the pinned openai version from " + (kClientSource / "package.json").string();
    return result;
  }
  std::error_code ec;
  fs::create_directories(result.dir, ec);
  const bool lock_unchanged = slurp(kClientSource / "package-lock.json") == slurp(result.dir / "package-lock.json");
  for (const char* name : {"package.json", "package-lock.json", "client_test.mjs"}) {
    fs::copy_file(kClientSource / name, result.dir / name, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      result.error = "cannot copy " + (kClientSource / name).string() + ": " + ec.message();
      return result;
    }
  }
  if (lock_unchanged && installed_version(result.dir) == want) return result;
  const auto r = testing::run_command("cd " + quote(result.dir.string()) + " && timeout 600 " + quote(npm.string()) +
                                      " ci --no-audit --no-fund --fetch-retries=1");
  if (r.exit_code != 0) {
    result.error = "`npm ci` in " + result.dir.string() + " failed (exit " + std::to_string(r.exit_code) +
                   "; is the npm registry reachable?):\n" + r.out + r.err;
  } else if (installed_version(result.dir) != want) {
    result.error = "`npm ci` installed openai '" + installed_version(result.dir) + "', expected '" + want + "'";
  }
  return result;
}

// Why node and npm are unusable, or "" when they are fine.
std::string check_node(const std::optional<fs::path>& node, const std::optional<fs::path>& npm) {
  if (!node) return "`node` not found on PATH (install Node.js >= 18)";
  if (!npm) return "`npm` not found on PATH (install npm)";
  const auto r = testing::run_command(quote(node->string()) + " --version");
  int major = 0;
  if (r.exit_code != 0 || std::sscanf(r.out.c_str(), "v%d", &major) != 1) return "`node --version` failed: " + r.err;
  if (major < kMinNodeMajor) return "node " + r.out + " is too old: the openai client needs Node.js >= 18";
  return "";
}

TEST(ServeOpenAiClient, OfficialNpmClientTalksToTheServer) {
  const auto node = find_on_path("node");
  const auto npm = find_on_path("npm");
  std::string problem = check_node(node, npm);
  Install install;
  if (problem.empty()) {
    install = install_client(*npm);
    problem = install.error;
  }
  if (!problem.empty()) {
    if (in_ci()) FAIL() << "OpenAI client test cannot run and CI is set: " << problem;
    GTEST_SKIP() << "*** OpenAI npm client test SKIPPED: " << problem << " ***";
  }

  TempDir dir;
  const std::string model = dir.file("tiny.gguf");
  const auto synth = testing::run_command(
      kBin + " model synth --shape embd=256,layers=4,heads=8,kv_heads=2,ff=704,ctx=2048 --type f32 -o " + model);
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  const std::string key = "sk-openai-client-0123456789";
  std::ofstream(dir.file("keys")) << key << "\n";
  ServerProcess server({kBin, "serve", "-m", model, "--port", "0", "--api-key-file", dir.file("keys")},
                       dir.file("server.log"));

  const std::string base_url = "http://127.0.0.1:" + std::to_string(server.port());
  const auto r = testing::run_command("cd " + quote(install.dir.string()) + " && MIXSERVE_BASE_URL=" + quote(base_url) +
                                      " MIXSERVE_API_KEY=" + quote(key) + " timeout 300 " +
                                      quote(node->string()) + " client_test.mjs");
  EXPECT_EQ(r.exit_code, 0) << "client_test.mjs failed.\nstdout:\n"
                            << r.out << "\nstderr:\n"
                            << r.err << "\nserver log:\n"
                            << server.log();
  EXPECT_NE(r.out.find("checks passed"), std::string::npos) << r.out;
  EXPECT_TRUE(server.running()) << server.log();
}

}  // namespace
}  // namespace mixserve

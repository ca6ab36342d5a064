// End-to-end tests of `mixserve ledger`: writers killed with SIGKILL at random moments never leave a
// partial record or lose an acknowledged one; verify/append/show exit codes and messages.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "policy/ledger.h"
#include "support/ledger_edit.h"
#include "support/test_support.h"

extern char** environ;

namespace mixserve {
namespace {

using testing::run_command;
using testing::TempDir;

const std::string kBin = MIXSERVE_BIN;

// A `mixserve ledger append --count N` process whose stdout (one committed seq per line) we read.
struct Writer {
  pid_t pid = -1;
  int out_fd = -1;
  std::string buffer;
};

Writer start_writer(const std::string& ledger, int id) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  const std::string json = "{\"writer\":" + std::to_string(id) + ",\"tokens\":12345}";
  std::vector<std::string> args = {kBin, "ledger", "append", "--ledger", ledger, "--kind", "usage_sample",
                                   "--json", json, "--count", "1000000"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Writer w;
  EXPECT_EQ(posix_spawn(&w.pid, kBin.c_str(), &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  w.out_fd = fds[0];
  return w;
}

// Moves complete lines ("<seq>\n") from the writer's buffer into `acked`.
void take_lines(Writer& w, std::vector<int64_t>& acked) {
  size_t start = 0, nl;
  while ((nl = w.buffer.find('\n', start)) != std::string::npos) {
    acked.push_back(std::stoll(w.buffer.substr(start, nl - start)));
    start = nl + 1;
  }
  w.buffer.erase(0, start);  // a partial line was not acknowledged
}

void read_available(Writer& w, int timeout_ms) {
  pollfd p{w.out_fd, POLLIN, 0};
  char buf[4096];
  while (poll(&p, 1, timeout_ms) > 0) {
    const ssize_t n = read(w.out_fd, buf, sizeof buf);
    if (n <= 0) break;
    w.buffer.append(buf, static_cast<size_t>(n));
    timeout_ms = 0;
  }
}

TEST(LedgerCrash, KilledWritersLoseNoAcknowledgedRecord) {
  TempDir dir;
  const std::string path = dir.file("crash.db");
  policy::Ledger::open(path);  // created up front so writers race only on appends
  std::mt19937 rng(20261125);  // deterministic kill schedule
  std::uniform_int_distribution<int> delay_ms(30, 600);
  std::vector<int64_t> acked;
  const auto start = std::chrono::steady_clock::now();
  int rounds = 0;
  for (; rounds < 24 && std::chrono::steady_clock::now() - start < std::chrono::seconds(12); ++rounds) {
    std::vector<Writer> writers = {start_writer(path, 2 * rounds), start_writer(path, 2 * rounds + 1)};
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms(rng));
    while (std::chrono::steady_clock::now() < deadline) {
      for (auto& w : writers) read_available(w, 5);
    }
    for (auto& w : writers) kill(w.pid, SIGKILL);
    for (auto& w : writers) {
      int status = 0;
      waitpid(w.pid, &status, 0);
      EXPECT_TRUE(WIFSIGNALED(status)) << "writer exited on its own with status " << status;
      read_available(w, 0);  // lines written before the kill are still in the pipe
      close(w.out_fd);
      take_lines(w, acked);
    }
  }
  const auto ledger = policy::Ledger::open(path, policy::LedgerOpenMode::kExisting);
  const auto v = ledger.verify();
  ASSERT_TRUE(v.ok) << "record " << v.first_bad_seq.value_or(0) << ": " << v.problem;
  std::set<int64_t> stored;
  for (const auto& r : ledger.records()) stored.insert(r.seq);
  std::set<int64_t> unique(acked.begin(), acked.end());
  EXPECT_EQ(unique.size(), acked.size()) << "two writers were acknowledged the same seq";
  for (int64_t seq : acked) EXPECT_TRUE(stored.count(seq)) << "acknowledged record " << seq << " lost";
  EXPECT_GT(acked.size(), 0u);
  EXPECT_GE(static_cast<size_t>(v.records), acked.size());
  std::printf("[ledger crash] %d rounds, %zu acknowledged appends, %lld records stored\n", rounds, acked.size(),
              static_cast<long long>(v.records));
  const auto cli = run_command(kBin + " ledger verify --ledger " + path);
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("intact"), std::string::npos) << cli.out;
}

TEST(LedgerCli, AppendShowVerifyAndTamper) {
  TempDir dir;
  const std::string path = dir.file("l.db");
  const auto a = run_command(kBin + " ledger append --ledger " + path +
                             " --kind placement --json '{\"model\":\"m\",\"device\":\"npu0\"}' --count 3");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, "1\n2\n3\n");
  const auto show = run_command(kBin + " ledger show --ledger " + path + " --json");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  const auto records = nlohmann::json::parse(show.out);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[1]["seq"], 2);
  EXPECT_EQ(records[1]["kind"], "placement");
  EXPECT_EQ(records[1]["payload"]["device"], "npu0");
  EXPECT_EQ(records[1]["prev_hash"], records[0]["hash"]);
  EXPECT_EQ(run_command(kBin + " ledger verify --ledger " + path).exit_code, 0);

  // Drop the append-only trigger, edit, and put the trigger back, as a careful editor would.
  testing::edit_ledger_behind_triggers(path,
                                       "UPDATE records SET payload = '{\"device\":\"gpu0\",\"model\":\"m\"}' WHERE seq = 2");
  const auto bad = run_command(kBin + " ledger verify --ledger " + path);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("not intact: record 2: "), std::string::npos) << bad.err;
}

TEST(LedgerCli, BadInputExitsTwoAndMissingFileOne) {
  TempDir dir;
  const std::string path = dir.file("l.db");
  EXPECT_EQ(run_command(kBin + " ledger append --ledger " + path + " --kind bogus --json '{}'").exit_code, 2);
  EXPECT_EQ(run_command(kBin + " ledger append --ledger " + path + " --json '{not json'").exit_code, 2);
  const auto missing = run_command(kBin + " ledger verify --ledger " + dir.file("none.db"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace mixserve

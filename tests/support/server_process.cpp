#include "support/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace mixserve::testing {

ServerProcess::ServerProcess(const std::vector<std::string>& args, const std::string& log_path, double timeout_s)
    : log_path_(log_path) {
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      ::close(fd);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  const std::regex ready("on http://[^:]+:([0-9]+)");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    const std::string text = log();
    if (std::regex_search(text, m, ready)) {
      port_ = static_cast<uint16_t>(std::stoi(m[1]));
      return;
    }
    if (!running()) throw std::runtime_error("server exited before it was ready:\n" + text);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  signal(SIGKILL);
  wait(5);
  throw std::runtime_error("server not ready within the timeout:\n" + log());
}

ServerProcess::~ServerProcess() {
  if (reaped_ || pid_ <= 0) return;
  signal(SIGTERM);
  if (wait(20) == -1 && !reaped_) {
    signal(SIGKILL);
    wait(5);
  }
}

void ServerProcess::signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}

int ServerProcess::wait(double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    if (r < 0 || std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool ServerProcess::running() {
  if (reaped_) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    return false;
  }
  return r == 0;
}

std::string ServerProcess::log() const {
  std::ifstream in(log_path_);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace mixserve::testing

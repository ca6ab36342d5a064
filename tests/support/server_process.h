// Runs `mixserve serve` (or any command that prints "on http://HOST:PORT" when ready) as a child
// process for end-to-end tests: waits for the listening line, knows the port, and always stops the
// process (SIGTERM, then SIGKILL) when destroyed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mixserve::testing {

/// A server child process.
class ServerProcess {
 public:
  /// Starts `args` (argv[0] first) with stdout and stderr to `log_path`, and waits up to `timeout_s`
  /// for "on http://…:PORT" in the log. Throws std::runtime_error (with the log) when it exits or
  /// does not get ready.
  ServerProcess(const std::vector<std::string>& args, const std::string& log_path, double timeout_s = 60);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  /// The port it listens on.
  uint16_t port() const { return port_; }
  /// Sends a signal.
  void signal(int sig) const;
  /// Waits up to `timeout_s` for the process to exit; returns its exit status (-1 on timeout or when
  /// it did not exit normally).
  int wait(double timeout_s);
  /// Whether the process is still running.
  bool running();
  /// The log so far.
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  uint16_t port_ = 0;
  bool reaped_ = false;
};

}  // namespace mixserve::testing

// Long-running commands (serve, gateway) stop on SIGINT/SIGTERM taken by sigwait.
#pragma once

#include <pthread.h>

#include <csignal>

namespace mixserve::cli {

/// Blocks SIGINT and SIGTERM in the calling thread (call before any thread starts, so every thread
/// inherits the mask) and returns the set to pass to sigwait.
inline sigset_t block_termination_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

}  // namespace mixserve::cli

// Fork-join thread pool for compute kernels: low-latency dispatch (spin, then sleep) of one task
// to every thread, with the caller taking part as thread 0.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace mixserve {

/// A fixed set of worker threads that run one function at a time on all threads.
class ThreadPool {
 public:
  /// Creates a pool of `n_threads` (1..1024) threads in total, the caller included; 0 = hardware.
  /// Throws kInvalidArgument for other sizes, kResourceExhausted if threads cannot be started.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Number of threads that run a task, caller included.
  int size() const { return n_threads_; }

  /// Runs fn(ith, nth) once on each thread (ith in [0, nth)) and returns when all have finished;
  /// then rethrows the first exception fn threw, if any. Not re-entrant: a run() from inside fn
  /// or from another thread while one is in progress throws kInternal (pools of size 1 run inline).
  void run(const std::function<void(int ith, int nth)>& fn);

  /// Splits [0, n) into chunks of at most `grain` items handed out dynamically; calls
  /// fn(begin, end, ith) for each chunk. Returns when all chunks are done; an exception from fn
  /// stops further chunks and is rethrown.
  void parallel_for(int64_t n, int64_t grain,
                    const std::function<void(int64_t begin, int64_t end, int ith)>& fn);

  /// Like parallel_for, but each chunk is a share of the items left (OpenMP's guided schedule):
  /// 1/(2 * size()) of them, rounded up to a multiple of `grain`, so the first chunks are large and
  /// the last ones `grain` items. Threads then finish within about one small chunk of each other
  /// without paying for many chunks. Chunks start at multiples of `grain`; only the one ending at
  /// n may be shorter than a multiple of it. Exceptions as in parallel_for.
  /// first_share in [0, 1): the first size() chunks are first_share / size() of the items each
  /// (rounded down to whole grains; none when that is no grain or all the items), and the guided
  /// schedule shares out the rest: one long run of items per thread, then small chunks to even out
  /// the end.
  void parallel_for_guided(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end, int ith)>& fn,
                           double first_share = 0.0);

  /// Number of hardware threads usable by this process (at least 1).
  static int hardware_threads();

 private:
  void worker_loop(int ith);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* task_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace mixserve

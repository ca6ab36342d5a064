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

/// A barrier for a fixed set of threads, such as those of one ThreadPool::run: arrive_and_wait
/// returns true once all of them have arrived, or false as soon as one of them has called abort()
/// (a thread that failed must not leave the others waiting forever). Reusable: the next call starts
/// the next round. Waits as the pool's threads do: spin with pause, then yield.
class SpinBarrier {
 public:
  /// A barrier for n_threads threads (at least 1).
  explicit SpinBarrier(int n_threads);
  /// Arrives and waits for the others (or an abort); false when the barrier was aborted.
  bool arrive_and_wait() {
    return arrive_and_wait([] { return false; });
  }
  /// The same, calling idle() while it waits, as long as idle() returns true (it has more to do):
  /// short steps of useful work for a thread that would otherwise spin.
  template <class Idle>
  bool arrive_and_wait(Idle&& idle) {
    const uint32_t round = round_.load(std::memory_order_acquire);
    if (!arrive(round)) {
      bool busy = true;
      for (int wait = 0; round_.load(std::memory_order_acquire) == round;) {
        if (aborted_.load(std::memory_order_acquire)) return false;
        if (busy) {
          busy = idle();
        } else {
          pause(wait);
        }
      }
    }
    return !aborted_.load(std::memory_order_acquire);
  }
  /// Releases every waiting thread and every later arrival with false.
  void abort() { aborted_.store(true, std::memory_order_release); }

 private:
  // Counts this thread in; true for the last arrival, which ends `round`.
  bool arrive(uint32_t round);
  // One round of waiting, as the pool's threads wait.
  static void pause(int& wait);

  // One line for all: the last arrival's increment and its release of the round cost one transfer.
  alignas(64) std::atomic<int> arrived_{0};
  std::atomic<uint32_t> round_{0};
  std::atomic<bool> aborted_{false};
  int n_threads_;
};

}  // namespace mixserve

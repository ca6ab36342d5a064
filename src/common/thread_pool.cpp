#include "common/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <exception>
#include <system_error>
#include <utility>

#include "common/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MIXSERVE_PAUSE() _mm_pause()
#else
#define MIXSERVE_PAUSE() std::this_thread::yield()
#endif

namespace mixserve {
namespace {

// Waiting policy: spin with pause first (ops of a decode step arrive microseconds apart), then
// yield the core for a while (with more threads than cores, a thread that only spins starves
// the very threads it waits for), then workers sleep in atomic::wait.
constexpr int kPauseRounds = 4096;
constexpr int kYieldRounds = 256;
// More threads than this is a configuration mistake, not a machine.
constexpr int kMaxThreads = 1024;

// One round of waiting: pause for the first kPauseRounds rounds, yield afterwards.
void backoff(int round) {
  if (round < kPauseRounds) {
    MIXSERVE_PAUSE();
  } else {
    std::this_thread::yield();
  }
}

// What run() hands to the threads: the caller's function plus the first exception it threw.
struct GuardedTask {
  explicit GuardedTask(const std::function<void(int, int)>* f) : fn(f) {}

  const std::function<void(int, int)>* fn;
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // written once, by the thread that set `failed`

  void operator()(int ith, int nth) {
    try {
      (*fn)(ith, nth);
    } catch (...) {
      if (!failed.exchange(true, std::memory_order_relaxed)) error = std::current_exception();
    }
  }
};

}  // namespace

int ThreadPool::hardware_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads == 0 ? std::min(hardware_threads(), kMaxThreads) : n_threads) {
  if (n_threads_ < 1 || n_threads_ > kMaxThreads) {
    fail(ErrorCode::kInvalidArgument, "thread pool size ", n_threads, " is out of range: use 1 to ", kMaxThreads,
         " threads, or 0 for all hardware threads");
  }
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  try {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  } catch (const std::system_error& e) {
    // Joinable threads must not be destroyed: stop and join the ones already started.
    stop_.store(true);
    generation_.fetch_add(1);
    generation_.notify_all();
    for (auto& worker : workers_) worker.join();
    fail(ErrorCode::kResourceExhausted, "cannot start thread ", workers_.size() + 1, " of ", n_threads_,
         " for the thread pool: ", e.what());
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::worker_loop(int ith) {
  uint64_t seen = 0;
  for (;;) {
    int round = 0;
    uint64_t now = generation_.load(std::memory_order_acquire);
    while (now == seen) {
      if (round < kPauseRounds + kYieldRounds) {
        backoff(round++);
      } else {
        generation_.wait(seen, std::memory_order_acquire);  // returns once the value differs
      }
      now = generation_.load(std::memory_order_acquire);
    }
    seen = now;
    if (stop_.load()) return;
    // The acquire load of generation_ above makes task_ (written before the release increment)
    // visible; the release decrement below publishes this thread's writes to the caller.
    (*task_)(ith, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (n_threads_ == 1) {
    fn(0, 1);
    return;
  }
  // pending_ counts the threads still inside this run, the caller included, so it is non-zero
  // exactly while a run is in progress: a nested or concurrent run() is refused, not deadlocked.
  int idle = 0;
  if (!pending_.compare_exchange_strong(idle, n_threads_, std::memory_order_acquire)) {
    fail(ErrorCode::kInternal, "ThreadPool::run called while the pool is busy (from inside a task or another thread)");
  }
  GuardedTask guarded(&fn);
  const std::function<void(int, int)> task = [&guarded](int ith, int nth) { guarded(ith, nth); };
  task_ = &task;
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  guarded(0, n_threads_);
  pending_.fetch_sub(1, std::memory_order_acq_rel);
  for (int round = 0; pending_.load(std::memory_order_acquire) != 0;) {
    backoff(round);
    if (round <= kPauseRounds) ++round;  // saturates: a long task must not overflow it
  }
  // task_ is left dangling on purpose: it is only read after the next increment, which rewrites
  // it first, and clearing it here could clobber a run another thread has started meanwhile.
  if (guarded.error) std::rethrow_exception(guarded.error);
}

SpinBarrier::SpinBarrier(int n_threads) : n_threads_(n_threads) {
  if (n_threads < 1) fail(ErrorCode::kInvalidArgument, "a barrier needs at least one thread, not ", n_threads);
}

bool SpinBarrier::arrive(uint32_t round) {
  // The round cannot end before this thread arrives, so the caller's read of it is the one it waits on.
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) != n_threads_ - 1) return false;
  arrived_.store(0, std::memory_order_relaxed);  // before the release below: the next round starts at 0
  round_.store(round + 1, std::memory_order_release);
  return true;
}

void SpinBarrier::pause(int& wait) {
  backoff(wait);
  if (wait <= kPauseRounds) ++wait;  // saturates: a long wait must not overflow it
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  // Chunks are numbered so that no position past n is ever computed (no overflow near INT64_MAX).
  struct Chunks {
    int64_t n, grain, count;
    const std::function<void(int64_t, int64_t, int)>* fn;
    std::atomic<int64_t> next{0};
    void call(int64_t c, int ith) const {
      const int64_t begin = c * grain;
      (*fn)(begin, n - begin <= grain ? n : begin + grain, ith);
    }
  };
  grain = std::max<int64_t>(1, grain);
  Chunks chunks{n, grain, (n - 1) / grain + 1, &fn};
  if (n_threads_ == 1 || chunks.count == 1) {
    for (int64_t c = 0; c < chunks.count; ++c) chunks.call(c, 0);
    return;
  }
  // Capturing one pointer keeps the std::function small enough to need no allocation.
  run([shared = &chunks](int ith, int) {
    for (;;) {
      const int64_t c = shared->next.fetch_add(1, std::memory_order_relaxed);
      if (c >= shared->count) break;
      try {
        shared->call(c, ith);
      } catch (...) {
        shared->next.store(shared->count, std::memory_order_relaxed);  // others stop taking chunks
        throw;
      }
    }
  });
}

void ThreadPool::parallel_for_guided(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn,
                                     double first_share) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (n_threads_ == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  struct Claims {
    int64_t n, grain, divisor;
    int64_t first_size, first_end;  // the first chunks: first_size items each, up to first_end
    const std::function<void(int64_t, int64_t, int)>* fn;
    std::atomic<int64_t> next{0};
    // The next chunk [begin, end), whole grains but for the end of the range; begin == n when
    // none is left.
    std::pair<int64_t, int64_t> claim() {
      int64_t begin = next.load(std::memory_order_relaxed);
      for (;;) {
        if (begin >= n) return {n, n};
        const int64_t left = n - begin;
        const int64_t size =
            begin < first_end ? first_size : std::max(grain, (left / divisor + grain - 1) / grain * grain);
        const int64_t end = size >= left ? n : begin + size;
        if (next.compare_exchange_weak(begin, end, std::memory_order_relaxed)) return {begin, end};
      }
    }
  };
  // The first chunks: whole grains, rounded down, and only when they leave something to share out.
  // (Rounded up, a 896-row product's 392 rows a thread made 448, the whole range, so small products
  // went without first chunks; rounded down they get 384 - Zen 5 VM, Qwen2-0.5B-shape decode, steps
  // alternating in one process: products 0.943-1.021 of the time, mean 0.977, 9 of 11 runs below 1;
  // TinyLlama's larger products 0.965-1.046, no direction.)
  int64_t first_size = 0;
  if (first_share > 0.0 && first_share < 1.0) {
    const auto per_thread = static_cast<int64_t>(first_share * static_cast<long double>(n) / n_threads_);
    first_size = per_thread / grain * grain;
    if (first_size > (n - 1) / n_threads_) first_size = 0;
  }
  const int64_t first_end = first_size * n_threads_;
  Claims claims{n, grain, 2 * static_cast<int64_t>(n_threads_), first_size, first_end, &fn};
  run([shared = &claims](int ith, int) {
    for (;;) {
      const auto [begin, end] = shared->claim();
      if (begin >= shared->n) break;
      try {
        (*shared->fn)(begin, end, ith);
      } catch (...) {
        shared->next.store(shared->n, std::memory_order_relaxed);  // others stop claiming
        throw;
      }
    }
  });
}

}  // namespace mixserve

// ThreadPool: coverage of run() and parallel_for(), long run sequences (spin and sleep paths),
// exceptions, misuse, sizes 1 and oversubscribed, construction and destruction.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/thread_pool.h"
#include "support/watchdog.h"

namespace mixserve {
namespace {

using std::chrono::milliseconds;
using testing::Watchdog;

const std::vector<int> kPoolSizes = {1, 2, 3, 4, 8};

TEST(ThreadPool, RunCallsEveryThreadIndexExactlyOnce) {
  Watchdog dog("run coverage", std::chrono::seconds(60));
  for (int size : kPoolSizes) {
    ThreadPool pool(size);
    ASSERT_EQ(pool.size(), size);
    for (int rep = 0; rep < 50; ++rep) {
      std::vector<std::atomic<int>> calls(static_cast<size_t>(size));
      std::atomic<int> bad_nth{0};
      pool.run([&](int ith, int nth) {
        if (nth != size || ith < 0 || ith >= nth) {
          bad_nth.fetch_add(1);
          return;
        }
        calls[static_cast<size_t>(ith)].fetch_add(1);
      });
      ASSERT_EQ(bad_nth.load(), 0);
      for (int i = 0; i < size; ++i) ASSERT_EQ(calls[static_cast<size_t>(i)].load(), 1) << "ith " << i;
    }
  }
}

TEST(ThreadPool, RunMakesWorkerWritesVisibleToTheCaller) {
  ThreadPool pool(4);
  std::vector<int64_t> slots(4, 0);  // plain memory: run() must order it
  for (int64_t rep = 1; rep <= 1000; ++rep) {
    pool.run([&](int ith, int) { slots[static_cast<size_t>(ith)] = rep * 10 + ith; });
    for (int i = 0; i < 4; ++i) ASSERT_EQ(slots[static_cast<size_t>(i)], rep * 10 + i);
  }
}

TEST(ThreadPool, ParallelForCoversTheRangeExactlyOnce) {
  Watchdog dog("parallel_for coverage", std::chrono::seconds(60));
  const std::vector<int64_t> sizes = {0, 1, 2, 3, 7, 64, 65, 1000, 4097};
  const std::vector<int64_t> grains = {-5, 0, 1, 3, 64, 1000, 5000};
  for (int size : kPoolSizes) {
    ThreadPool pool(size);
    for (int64_t n : sizes) {
      for (int64_t grain : grains) {
        SCOPED_TRACE("threads=" + std::to_string(size) + " n=" + std::to_string(n) + " grain=" + std::to_string(grain));
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<int> bad{0};
        const int64_t max_chunk = grain < 1 ? 1 : grain;
        pool.parallel_for(n, grain, [&](int64_t begin, int64_t end, int ith) {
          if (begin < 0 || end > n || begin >= end || end - begin > max_chunk || ith < 0 || ith >= size) {
            bad.fetch_add(1);
            return;
          }
          for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
        });
        ASSERT_EQ(bad.load(), 0);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << i;
      }
    }
  }
}

// Chunks of a guided loop: [begin, end) in claim order (= order of begin).
std::vector<std::pair<int64_t, int64_t>> guided_chunks(ThreadPool& pool, int64_t n, int64_t grain,
                                                       double first_share = 0.0) {
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  pool.parallel_for_guided(
      n, grain,
      [&](int64_t begin, int64_t end, int ith) {
        EXPECT_TRUE(ith >= 0 && ith < pool.size()) << ith;
        const std::lock_guard<std::mutex> lock(mu);
        chunks.emplace_back(begin, end);
      },
      first_share);
  std::sort(chunks.begin(), chunks.end());
  return chunks;
}

TEST(ThreadPool, GuidedParallelForCoversTheRangeExactlyOnceInWholeGrains) {
  Watchdog dog("guided coverage", std::chrono::seconds(60));
  const std::vector<int64_t> sizes = {0, 1, 2, 3, 7, 16, 64, 65, 1000, 4097, 11264};
  const std::vector<int64_t> grains = {-5, 0, 1, 3, 16, 1000, 5000};
  for (int size : kPoolSizes) {
    ThreadPool pool(size);
    for (int64_t n : sizes) {
      for (int64_t grain : grains) {
        for (double first_share : {0.0, 0.5, 0.875, 1.0}) {
          SCOPED_TRACE("threads=" + std::to_string(size) + " n=" + std::to_string(n) +
                       " grain=" + std::to_string(grain) + " first_share=" + std::to_string(first_share));
          const int64_t g = std::max<int64_t>(1, grain);
          const auto chunks = guided_chunks(pool, n, grain, first_share);
          int64_t covered = 0;
          for (const auto& [begin, end] : chunks) {
            ASSERT_EQ(begin, covered) << "a gap or an overlap";
            ASSERT_LT(begin, end);
            ASSERT_EQ(begin % g, 0) << "a chunk starts inside a grain";
            if (end != n) {
              ASSERT_EQ((end - begin) % g, 0) << "a chunk before the last is not whole grains";
            }
            covered = end;
          }
          ASSERT_EQ(covered, n);
        }
      }
    }
  }
}

TEST(ThreadPool, GuidedFirstShareGivesEachThreadOneLongRunFirst) {
  Watchdog dog("guided first share", std::chrono::seconds(60));
  ThreadPool pool(2);
  constexpr int64_t kN = 11264, kGrain = 64;
  const auto chunks = guided_chunks(pool, kN, kGrain, 7.0 / 8.0);
  // 7/8 of the rows over 2 threads: 4928 each, already whole grains; then 1/4 of what is left.
  ASSERT_GE(chunks.size(), 4u);
  EXPECT_EQ(chunks[0], std::make_pair(int64_t{0}, int64_t{4928}));
  EXPECT_EQ(chunks[1], std::make_pair(int64_t{4928}, int64_t{9856}));
  EXPECT_EQ(chunks[2].second - chunks[2].first, (kN - 9856) / 4 / kGrain * kGrain + kGrain);
  EXPECT_EQ(chunks.back().second - chunks.back().first, kGrain);
  // Rounded down to whole grains: 7/8 of 1000 rows over 2 threads is 437 each, so 384.
  const auto small = guided_chunks(pool, 1000, kGrain, 7.0 / 8.0);
  ASSERT_GE(small.size(), 3u);
  EXPECT_EQ(small[0], std::make_pair(int64_t{0}, int64_t{384}));
  EXPECT_EQ(small[1], std::make_pair(int64_t{384}, int64_t{768}));
  // Less than a grain a thread: no first chunks, the guided schedule alone (1/4 of 100, at least a
  // grain).
  const auto tiny = guided_chunks(pool, 100, kGrain, 7.0 / 8.0);
  EXPECT_EQ(tiny.front(), std::make_pair(int64_t{0}, int64_t{64}));
}

TEST(ThreadPool, GuidedChunksShrinkToOneGrain) {
  Watchdog dog("guided chunk sizes", std::chrono::seconds(60));
  ThreadPool pool(4);
  constexpr int64_t kN = 1 << 16, kGrain = 16;
  const auto chunks = guided_chunks(pool, kN, kGrain);
  ASSERT_GE(chunks.size(), 3u);
  // The first chunk takes 1/8 of the range (4 threads), each later one 1/8 of what is left.
  EXPECT_EQ(chunks.front().second - chunks.front().first, kN / 8);
  int64_t left = kN;
  for (const auto& [begin, end] : chunks) {
    const int64_t want = std::max(kGrain, (left / 8 + kGrain - 1) / kGrain * kGrain);
    EXPECT_EQ(end - begin, std::min(want, left)) << "chunk at " << begin;
    left -= end - begin;
  }
  EXPECT_EQ(chunks.back().second - chunks.back().first, kGrain);
  // Far fewer chunks than grains: about 8 ln(kN / (8 kGrain)) + 8.
  EXPECT_LT(chunks.size(), 80u);
}

TEST(ThreadPool, GuidedParallelForPassesExceptionsOn) {
  Watchdog dog("guided exceptions", std::chrono::seconds(60));
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for_guided(5000, 10,
                                        [](int64_t begin, int64_t end, int) {
                                          if (begin <= 4000 && 4000 < end) fail(ErrorCode::kDataLoss, "item 4000");
                                        }),
               Error);
  std::atomic<int64_t> sum{0};
  pool.parallel_for_guided(100, 9, [&](int64_t b, int64_t e, int) { sum.fetch_add(e - b); });
  EXPECT_EQ(sum.load(), 100);
}

TEST(ThreadPool, ManyBackToBackRunsDoNotHang) {
  Watchdog dog("100k back-to-back runs", std::chrono::seconds(300));
  ThreadPool pool(0);
  std::atomic<int64_t> total{0};
  constexpr int kRuns = 100000;
  for (int r = 0; r < kRuns; ++r) pool.run([&](int, int) { total.fetch_add(1, std::memory_order_relaxed); });
  EXPECT_EQ(total.load(), static_cast<int64_t>(kRuns) * pool.size());
}

TEST(ThreadPool, OversubscribedPoolKeepsGoing) {
  // More threads than cores: a worker that spins without yielding would starve the others.
  Watchdog dog("oversubscribed runs", std::chrono::seconds(120));
  ThreadPool pool(3 * ThreadPool::hardware_threads() + 1);
  std::atomic<int64_t> total{0};
  constexpr int kRuns = 1000;
  for (int r = 0; r < kRuns; ++r) pool.run([&](int, int) { total.fetch_add(1, std::memory_order_relaxed); });
  EXPECT_EQ(total.load(), static_cast<int64_t>(kRuns) * pool.size());
}

TEST(ThreadPool, WakesWorkersThatFellAsleep) {
  // Gaps longer than the spin phase make the workers block in atomic::wait; each run must
  // still wake all of them (a lost wake-up would hang here).
  Watchdog dog("runs after sleeping", std::chrono::seconds(60));
  ThreadPool pool(3);
  for (int r = 0; r < 12; ++r) {
    std::this_thread::sleep_for(milliseconds(r % 3 == 0 ? 60 : 1));
    std::atomic<int> calls{0};
    pool.run([&](int, int) { calls.fetch_add(1); });
    ASSERT_EQ(calls.load(), 3) << "run " << r;
  }
}

TEST(ThreadPool, PoolOfOneRunsInlineOnTheCaller) {
  ThreadPool pool(1);
  EXPECT_EQ(pool.size(), 1);
  const auto caller = std::this_thread::get_id();
  std::thread::id seen;
  pool.run([&](int ith, int nth) {
    EXPECT_EQ(ith, 0);
    EXPECT_EQ(nth, 1);
    seen = std::this_thread::get_id();
  });
  EXPECT_EQ(seen, caller);
  int chunks = 0;
  pool.parallel_for(100, 7, [&](int64_t begin, int64_t end, int ith) {
    EXPECT_EQ(ith, 0);
    EXPECT_LE(end - begin, 100);
    ++chunks;
  });
  EXPECT_GE(chunks, 1);
}

TEST(ThreadPool, DestructionWhileIdle) {
  Watchdog dog("construct/destroy", std::chrono::seconds(60));
  for (int i = 0; i < 50; ++i) {
    ThreadPool never_used(4);  // destroyed before its workers may even have started
  }
  for (int i = 0; i < 20; ++i) {
    ThreadPool pool(3);
    pool.run([](int, int) {});
  }
  ThreadPool sleeping(3);
  sleeping.run([](int, int) {});
  std::this_thread::sleep_for(milliseconds(100));  // workers now blocked in atomic::wait
}

TEST(ThreadPool, ExceptionsReachTheCallerAndThePoolStaysUsable) {
  Watchdog dog("exceptions", std::chrono::seconds(60));
  ThreadPool pool(4);
  for (int thrower : {0, 1, 3}) {
    SCOPED_TRACE("thrower " + std::to_string(thrower));
    std::atomic<int> finished{0};
    EXPECT_THROW(pool.run([&](int ith, int) {
      if (ith == thrower) throw std::runtime_error("task failed");
      finished.fetch_add(1);
    }),
                 std::runtime_error);
    EXPECT_EQ(finished.load(), 3) << "run() returned before the other threads finished";
    std::atomic<int> calls{0};
    pool.run([&](int, int) { calls.fetch_add(1); });
    EXPECT_EQ(calls.load(), 4);
  }
  EXPECT_THROW(pool.parallel_for(1000, 10,
                                 [](int64_t begin, int64_t, int) {
                                   if (begin == 500) fail(ErrorCode::kDataLoss, "chunk 500");
                                 }),
               Error);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(100, 9, [&](int64_t b, int64_t e, int) { sum.fetch_add(e - b); });
  EXPECT_EQ(sum.load(), 100);
}

TEST(ThreadPool, NestedRunIsAnErrorNotADeadlock) {
  Watchdog dog("nested run", std::chrono::seconds(60));
  ThreadPool pool(3);
  try {
    pool.run([&](int, int) { pool.run([](int, int) {}); });
    ADD_FAILURE() << "nested run() did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInternal) << e.what();
  }
  std::atomic<int> calls{0};
  pool.run([&](int, int) { calls.fetch_add(1); });
  EXPECT_EQ(calls.load(), 3);
}

TEST(SpinBarrier, NoThreadStartsARoundBeforeEveryThreadHasArrived) {
  Watchdog dog("barrier rounds", std::chrono::seconds(60));
  for (int n : kPoolSizes) {
    SCOPED_TRACE(std::to_string(n) + " threads");
    ThreadPool pool(n);
    SpinBarrier barrier(n);
    constexpr int kRounds = 2000;
    std::vector<std::atomic<int>> arrived(kRounds);
    std::atomic<int> early{0};
    pool.run([&](int, int nth) {
      for (int r = 0; r < kRounds; ++r) {
        arrived[static_cast<size_t>(r)].fetch_add(1);
        ASSERT_TRUE(barrier.arrive_and_wait());
        if (arrived[static_cast<size_t>(r)].load() != nth) early.fetch_add(1);
      }
    });
    EXPECT_EQ(early.load(), 0);
  }
  EXPECT_THROW(SpinBarrier(0), Error);
}

TEST(SpinBarrier, AbortReleasesTheWaitersAndLaterArrivals) {
  Watchdog dog("barrier abort", std::chrono::seconds(60));
  ThreadPool pool(3);
  SpinBarrier barrier(3);
  std::atomic<int> released{0};
  pool.run([&](int ith, int) {
    if (ith == 0) {
      std::this_thread::sleep_for(milliseconds(20));  // the others are waiting by now
      barrier.abort();
      return;
    }
    if (!barrier.arrive_and_wait()) released.fetch_add(1);
    if (!barrier.arrive_and_wait()) released.fetch_add(1);
  });
  EXPECT_EQ(released.load(), 4);
}

TEST(SpinBarrier, IdleWorkRunsWhileWaitingUntilItIsDone) {
  Watchdog dog("barrier idle work", std::chrono::seconds(60));
  ThreadPool pool(2);
  SpinBarrier barrier(2);
  int steps = 0;  // thread 1's alone
  pool.run([&](int ith, int) {
    if (ith == 0) {
      std::this_thread::sleep_for(milliseconds(20));
      EXPECT_TRUE(barrier.arrive_and_wait([] { return true; }));  // the last arrival waits for nothing
      return;
    }
    EXPECT_TRUE(barrier.arrive_and_wait([&] { return ++steps < 5; }));
  });
  EXPECT_EQ(steps, 5);  // called until it said it was done, not again
}

TEST(ThreadPool, RejectsBadSizes) {
  EXPECT_THROW(ThreadPool(-1), Error);
  EXPECT_THROW(ThreadPool(1 << 20), Error);
  ThreadPool automatic(0);
  EXPECT_EQ(automatic.size(), ThreadPool::hardware_threads());
  EXPECT_GE(ThreadPool::hardware_threads(), 1);
}

}  // namespace
}  // namespace mixserve

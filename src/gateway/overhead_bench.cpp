#include "gateway/overhead_bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "serve/http_client.h"
#include "serve/load_test.h"

namespace mixserve::gateway {

namespace {

using Clock = std::chrono::steady_clock;

PathLatency summarize(std::vector<double> latencies, int64_t failed) {
  PathLatency p;
  p.requests = static_cast<int64_t>(latencies.size());
  p.failed = failed;
  p.p50 = serve::quantile(latencies, 0.50);
  p.p90 = serve::quantile(latencies, 0.90);
  p.p99 = serve::quantile(latencies, 0.99);
  return p;
}

}  // namespace

OverheadResult run_overhead(const OverheadOptions& o) {
  const auto total = static_cast<int64_t>(o.rate * o.seconds);
  const auto t0 = Clock::now() + std::chrono::milliseconds(50);
  std::atomic<int64_t> next{0};
  std::mutex mutex;
  std::vector<double> direct, via;
  int64_t direct_failed = 0, via_failed = 0, late = 0;
  std::vector<std::thread> threads;
  for (int s = 0; s < o.senders; ++s) {
    threads.emplace_back([&] {
      serve::HttpClient to_node("127.0.0.1", o.direct_port, 30);
      serve::HttpClient to_gateway("127.0.0.1", o.gateway_port, 30);
      std::vector<double> my_direct, my_via;
      int64_t my_direct_failed = 0, my_via_failed = 0, my_late = 0;
      for (;;) {
        const int64_t i = next.fetch_add(1);
        if (i >= total) break;
        const auto due = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(i / o.rate));
        std::this_thread::sleep_until(due);
        const auto sent = Clock::now();
        if (sent - due > std::chrono::milliseconds(1)) ++my_late;
        const bool via_gw = i % 2 == 1;  // interleaved: both paths see the same moments
        int status = 0;
        try {
          status = (via_gw ? to_gateway : to_node).request("POST", "/v1/completions", o.body).status;
        } catch (const std::exception&) {
          status = 0;
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - sent).count();
        if (status == 200) {
          (via_gw ? my_via : my_direct).push_back(seconds);
        } else {
          ++(via_gw ? my_via_failed : my_direct_failed);
        }
      }
      std::lock_guard lock(mutex);
      direct.insert(direct.end(), my_direct.begin(), my_direct.end());
      via.insert(via.end(), my_via.begin(), my_via.end());
      direct_failed += my_direct_failed;
      via_failed += my_via_failed;
      late += my_late;
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  OverheadResult r;
  r.offered_rate = o.rate;
  r.achieved_rate = static_cast<double>(direct.size() + via.size()) / std::max(1e-9, wall);
  r.late_fraction = total > 0 ? static_cast<double>(late) / static_cast<double>(total) : 0;
  r.direct = summarize(std::move(direct), direct_failed);
  r.via_gateway = summarize(std::move(via), via_failed);
  return r;
}

double run_closed_loop(uint16_t port, const std::string& body, int clients, double seconds, int64_t* failed) {
  std::atomic<int64_t> ok{0}, bad{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      serve::HttpClient client("127.0.0.1", port, 30);
      while (!stop) {
        try {
          (client.request("POST", "/v1/completions", body).status == 200 ? ok : bad)++;
        } catch (const std::exception&) {
          ++bad;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  if (failed) *failed = bad;
  return static_cast<double>(ok) / std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace mixserve::gateway

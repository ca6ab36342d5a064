#include "gateway/usage_recorder.h"

#include <chrono>

#include "common/log.h"

namespace mixserve::gateway {

UsageRecorder::UsageRecorder(const std::string& path, double interval_s) : path_(path), interval_s_(interval_s) {
  policy::Ledger::open(path_);  // fail at start, not later, when the ledger cannot be opened
  period_start_ = policy::utc_now_iso8601();
  thread_ = std::thread([this] { loop(); });
}

UsageRecorder::~UsageRecorder() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

UsageRecorder::Tally& UsageRecorder::tally_of(const UpstreamSnapshot& upstream) {
  Tally& t = tallies_[upstream.name];
  t.node = upstream.node.empty() ? upstream.name : upstream.node;
  t.chip = upstream.chip;
  t.domestic = upstream.domestic;
  return t;
}

void UsageRecorder::add_tokens(const UpstreamSnapshot& upstream, double tokens) {
  std::lock_guard lock(mutex_);
  Tally& t = tally_of(upstream);
  t.tokens += tokens;
  ++t.requests;
}

void UsageRecorder::add_device_seconds(const UpstreamSnapshot& upstream, double device_seconds) {
  std::lock_guard lock(mutex_);
  tally_of(upstream).device_seconds += device_seconds;
}

void UsageRecorder::record(policy::RecordKind kind, nlohmann::json payload) {
  payload["source"] = "gateway";
  std::lock_guard lock(mutex_);
  events_.emplace_back(kind, std::move(payload));
  wake_.notify_all();
}

void UsageRecorder::flush() {
  std::unique_lock lock(mutex_);
  const uint64_t target = flushes_done_ + 1;
  flush_asked_ = true;
  wake_.notify_all();
  written_.wait(lock, [&] { return flushes_done_ >= target || stop_; });
}

void UsageRecorder::loop() {
  std::optional<policy::Ledger> ledger;
  std::unique_lock lock(mutex_);
  auto next = std::chrono::steady_clock::now() + std::chrono::duration<double>(interval_s_);
  for (;;) {
    wake_.wait_until(lock, next, [&] { return stop_ || flush_asked_ || !events_.empty(); });
    const bool due = std::chrono::steady_clock::now() >= next || stop_ || flush_asked_;
    auto events = std::move(events_);
    events_.clear();
    std::map<std::string, Tally> tallies;
    std::string from = period_start_, to;
    if (due) {
      tallies.swap(tallies_);
      to = policy::utc_now_iso8601();
      period_start_ = to;
      next = std::chrono::steady_clock::now() + std::chrono::duration<double>(interval_s_);
    }
    const bool stopping = stop_;
    const bool flushing = flush_asked_;
    flush_asked_ = false;
    lock.unlock();
    try {
      if (!ledger) ledger.emplace(policy::Ledger::open(path_));
      for (const auto& [name, t] : tallies) {
        if (t.tokens <= 0 && t.device_seconds <= 0) continue;
        ledger->append(policy::RecordKind::kUsageSample,
                       {{"source", "gateway"}, {"node", t.node}, {"upstream", name}, {"chip", t.chip},
                        {"domestic", t.domestic},
                        {"from", from}, {"to", to}, {"served_tokens", t.tokens},
                        {"device_hours", t.device_seconds / 3600.0}, {"requests", t.requests}});
      }
      for (auto& [kind, payload] : events) ledger->append(kind, payload);
    } catch (const std::exception& e) {
      log_error("gateway: cannot write to the ledger ", path_, ": ", e.what());
    }
    lock.lock();
    if (flushing) {
      ++flushes_done_;
      written_.notify_all();
    }
    if (stopping) return;
  }
}

}  // namespace mixserve::gateway

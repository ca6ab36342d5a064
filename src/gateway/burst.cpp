#include "gateway/burst.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/http_client.h"

namespace mixserve::gateway {

BurstResult run_burst(const BurstOptions& o) {
  BurstResult result;
  std::mutex mutex;
  std::atomic<int> next{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < std::max(1, o.concurrency); ++c) {
    threads.emplace_back([&] {
      serve::HttpClient client(o.host, o.port, 120);
      serve::HttpHeaders headers;
      if (!o.api_key.empty()) headers.emplace_back("authorization", "Bearer " + o.api_key);
      for (int i = next++; i < o.requests; i = next++) {
        const bool stream = o.stream && i % 2 == 1;
        nlohmann::json body = {{"model", o.model},
                               {"messages", {{{"role", "user"}, {"content", "Request " + std::to_string(i) + ": tell me about the fleet."}}}},
                               {"max_tokens", o.max_tokens}};
        if (stream) {
          body["stream"] = true;
          body["stream_options"] = {{"include_usage", true}};
        }
        serve::HttpResponse r;
        double tokens = 0;
        try {
          if (stream) {
            serve::SseParser sse;
            r = client.request_streamed("POST", "/v1/chat/completions", body.dump(), headers, [&](std::string_view d) {
              sse.feed(d, [&](const std::string& event) {
                const auto j = nlohmann::json::parse(event, nullptr, false);
                if (j.is_object() && j.contains("usage") && j["usage"].is_object()) {
                  tokens = j["usage"].value("total_tokens", 0.0);
                }
              });
              return true;
            });
          } else {
            r = client.request("POST", "/v1/chat/completions", body.dump(), headers);
            const auto j = nlohmann::json::parse(r.body, nullptr, false);
            if (j.is_object() && j.contains("usage") && j["usage"].is_object()) tokens = j["usage"].value("total_tokens", 0.0);
          }
        } catch (const std::exception& e) {
          r.status = 0;
          r.body = e.what();
        }
        std::lock_guard lock(mutex);
        ++result.statuses[r.status];
        if (r.status != 200) {
          if (result.first_error.empty()) result.first_error = r.body.substr(0, 300);
          continue;
        }
        BurstTally& t = result.upstreams[r.header("x-mixserve-upstream")];
        t.chip = r.header("x-mixserve-chip");
        t.domestic = r.header("x-mixserve-origin") == "domestic";
        ++t.requests;
        t.tokens += tokens;
        (t.domestic ? result.domestic_tokens : result.foreign_tokens) += tokens;
      }
    });
  }
  for (auto& t : threads) t.join();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace mixserve::gateway

#include "gateway/router.h"

#include <algorithm>
#include <cstdio>

namespace mixserve::gateway {

namespace {

// 64-bit FNV-1a, then a final avalanche (splitmix64) so similar names spread out.
uint64_t hash64(std::string_view a, std::string_view b) {
  uint64_t h = 1469598103934665603ull;
  for (char c : a) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  h = (h ^ 0xffu) * 1099511628211ull;
  for (char c : b) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  h += 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

std::string fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

}  // namespace

std::string affinity_key(const nlohmann::json& body, size_t chars) {
  std::string key;
  if (const auto p = body.find("prompt"); p != body.end()) {
    if (p->is_string()) key = p->get<std::string>();
    else key = p->dump();
  } else if (const auto m = body.find("messages"); m != body.end() && m->is_array()) {
    for (const auto& msg : *m) {
      if (!msg.is_object()) continue;
      const auto role = msg.find("role");
      const auto content = msg.find("content");
      if (role != msg.end() && role->is_string()) key += role->get<std::string>() + ":";
      if (content != msg.end()) key += content->is_string() ? content->get<std::string>() : content->dump();
      key += '\n';
      if (key.size() >= chars) break;
    }
  }
  if (key.size() > chars) key.resize(chars);
  return key;
}

RouteRanking rank_upstreams(const std::vector<std::shared_ptr<Upstream>>& all, const std::string& model,
                            const std::string& key, const RoutingWeights& weights, const QuotaDecision& quota,
                            Clock::time_point now) {
  RouteRanking r;
  r.quota = quota;
  double fastest = 0;
  uint64_t best_hash = 0;
  size_t home = SIZE_MAX;
  for (const auto& u : all) {
    if (!u->serves(model)) continue;
    r.any_serves = true;
    ScoredUpstream s;
    s.upstream = u;
    s.available = u->available(now);
    s.state = u->snapshot();
    if (s.state.circuit != Circuit::kOpen && s.state.healthy && !s.state.draining) r.any_healthy = true;
    s.allowed = quota.foreign_allowed || s.state.domestic;
    if (s.state.speed) fastest = std::max(fastest, *s.state.speed);
    if (!key.empty()) {
      const uint64_t h = hash64(key, s.state.name);
      if (home == SIZE_MAX || h > best_hash) {
        best_hash = h;
        home = r.ranked.size();
      }
    }
    r.ranked.push_back(std::move(s));
  }
  for (size_t i = 0; i < r.ranked.size(); ++i) {
    auto& s = r.ranked[i];
    const double capacity = s.state.capacity > 0 ? s.state.capacity : static_cast<double>(s.state.max_in_flight);
    s.speed_term = s.state.speed && fastest > 0 ? *s.state.speed / fastest : 1.0;
    s.load_term = static_cast<double>(s.state.in_flight) / std::max(1.0, capacity);
    s.kv_term = s.state.kv_use;
    s.affinity = i == home;
    s.score = weights.speed * s.speed_term - weights.queue * s.load_term - weights.kv * s.kv_term +
              (s.affinity ? weights.affinity : 0.0);
  }
  std::stable_sort(r.ranked.begin(), r.ranked.end(), [](const ScoredUpstream& a, const ScoredUpstream& b) {
    const bool ua = a.allowed && a.available;
    const bool ub = b.allowed && b.available;
    if (ua != ub) return ua;
    if (a.score != b.score) return a.score > b.score;
    return a.state.name < b.state.name;
  });
  return r;
}

const ScoredUpstream* RouteRanking::best() const {
  if (ranked.empty() || !ranked.front().allowed || !ranked.front().available) return nullptr;
  return &ranked.front();
}

std::string RouteRanking::summary() const {
  const ScoredUpstream* b = best();
  if (!b) return "no usable upstream";
  std::string s = b->state.name + " score=" + fixed(b->score) + " (speed " + fixed(b->speed_term) + ", load " +
                  fixed(b->load_term) + ", kv " + fixed(b->kv_term) + (b->affinity ? ", prefix home" : "") + ")";
  s += quota.foreign_allowed ? "; quota: any origin" : "; quota: domestic only";
  if (quota.audit_violation) s += "; audit: foreign breaks a rule";
  return s;
}

nlohmann::json RouteRanking::to_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : ranked) {
    list.push_back({{"upstream", s.state.name},
                    {"chip", s.state.chip},
                    {"origin", s.state.domestic ? "domestic" : "foreign"},
                    {"score", s.score},
                    {"speed", s.speed_term},
                    {"load", s.load_term},
                    {"kv", s.kv_term},
                    {"prefix_home", s.affinity},
                    {"allowed_by_quota", s.allowed},
                    {"available", s.available},
                    {"circuit", circuit_name(s.state.circuit)},
                    {"draining", s.state.draining}});
  }
  const ScoredUpstream* b = best();
  return {{"chosen", b ? nlohmann::json(b->state.name) : nlohmann::json(nullptr)},
          {"summary", summary()},
          {"quota", {{"foreign_allowed", quota.foreign_allowed},
                     {"audit_violation", quota.audit_violation},
                     {"reason", quota.reason}}},
          {"candidates", list}};
}

}  // namespace mixserve::gateway

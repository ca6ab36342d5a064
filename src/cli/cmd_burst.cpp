#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/error.h"
#include "gateway/burst.h"
#include "gateway/cluster_config.h"
#include "serve/api_keys.h"
#include "serve/http_client.h"

namespace mixserve::cli {
namespace {

struct BurstFlags {
  std::string url = "http://127.0.0.1:9000";
  std::string key_file;
  gateway::BurstOptions burst;
};

void print_fleet_verdict(const gateway::BurstOptions& o) {
  serve::HttpClient client(o.host, o.port, 10);
  serve::HttpHeaders headers;
  if (!o.api_key.empty()) headers.emplace_back("authorization", "Bearer " + o.api_key);
  const auto r = client.request("GET", "/v1/fleet", "", headers);
  const auto fleet = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status != 200 || !fleet.is_object()) {
    std::printf("(GET /v1/fleet answered %d: no quota state)\n", r.status);
    return;
  }
  const auto& quota = fleet["quota"];
  if (quota["rules"].empty()) std::printf("no usage rule at the gateway (policy: none)\n");
  for (const auto& rule : quota["rules"]) {
    const bool has_share = rule["share"].is_number();
    std::printf("rule %-16s %-14s >= %.2f (%s) over the last %.0f s: domestic share %s -> %s\n",
                rule["rule"].get<std::string>().c_str(), rule["basis"].get<std::string>().c_str(),
                rule["threshold"].get<double>(), rule["mode"].get<std::string>().c_str(), quota["window_s"].get<double>(),
                has_share ? str_cat(rule["share"].get<double>()).c_str() : "n/a",
                rule["compliant"].get<bool>() ? "COMPLIANT" : "VIOLATION");
  }
  for (const auto& rule : fleet.value("capacity_rules", nlohmann::json::array())) {
    std::printf("rule %-16s %-14s >= %.2f (fleet file): %s\n", rule["rule"].get<std::string>().c_str(),
                rule["basis"].get<std::string>().c_str(), rule["threshold"].get<double>(),
                rule["explanation"].get<std::string>().c_str());
  }
}

void burst(const BurstFlags& f) {
  gateway::BurstOptions o = f.burst;
  const gateway::Endpoint ep = gateway::parse_http_url(f.url);
  o.host = ep.host;
  o.port = ep.port;
  if (!f.key_file.empty()) o.api_key = serve::read_token_file(f.key_file);
  const auto r = gateway::run_burst(o);
  std::string statuses;
  for (const auto& [status, n] : r.statuses) statuses += str_cat(statuses.empty() ? "" : ", ", n, " x ", status);
  std::printf("burst: %d requests (%d at once, %d tokens each) to %s in %.2f s: %s\n", o.requests, o.concurrency,
              o.max_tokens, f.url.c_str(), r.seconds, statuses.c_str());
  std::printf("%-12s %-22s %-9s %9s %10s %8s\n", "upstream", "chip", "origin", "requests", "tokens", "share");
  const double total = r.domestic_tokens + r.foreign_tokens;
  for (const auto& [name, t] : r.upstreams) {
    std::printf("%-12s %-22s %-9s %9lld %10.0f %7.1f%%\n", name.c_str(), t.chip.c_str(),
                t.domestic ? "domestic" : "foreign", static_cast<long long>(t.requests), t.tokens,
                total > 0 ? 100 * t.tokens / total : 0.0);
  }
  if (total > 0) std::printf("domestic share of the tokens of this burst: %.3f\n", r.domestic_tokens / total);
  print_fleet_verdict(o);
  if (!r.first_error.empty()) fail(ErrorCode::kUnavailable, "some requests failed; first: ", r.first_error);
}

}  // namespace

void add_burst_command(CLI::App& app) {
  auto flags = std::make_shared<BurstFlags>();
  auto* cmd = app.add_subcommand("burst", "send a burst of chat requests through a gateway and show where they went");
  cmd->add_option("--url", flags->url, "gateway (http://host:port)")->capture_default_str();
  cmd->add_option("--model", flags->burst.model, "model id")->required();
  cmd->add_option("--api-key-file", flags->key_file, "tenant key file");
  cmd->add_option("-n,--requests", flags->burst.requests, "requests in all")->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_option("-c,--concurrency", flags->burst.concurrency, "at once")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--max-tokens", flags->burst.max_tokens, "per request")->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_flag("--stream", flags->burst.stream, "stream every other request");
  cmd->callback([flags] { burst(*flags); });
}

}  // namespace mixserve::cli

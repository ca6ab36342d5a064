// `mixserve place`: plans model replicas onto a fleet (docs/placement.md).
// Exit codes: 0 a plan was found, 1 the hard requirements cannot be met, 2 bad input.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/format.h"
#include "common/error.h"
#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "gateway/demand.h"
#include "gateway/placement.h"
#include "policy/ledger.h"
#include "serve/http_client.h"
#include "serve/api_keys.h"
#include "gateway/cluster_config.h"
#include "policy/policy.h"

namespace mixserve::cli {
namespace {

struct PlaceFlags {
  std::string fleet;
  std::string demand;
  std::string policy;
  std::vector<std::string> catalogues;
  std::string states = "active,idle";
  std::string ledger;
  std::string apply;             // gateway URL to apply the plan through ("" = plan only)
  std::string apply_token_file;  // the gateway's admin token
  double time_limit_s = 30;
  bool json = false;
};


std::vector<fleet::NodeState> parse_states(const std::string& text) {
  std::vector<fleet::NodeState> states;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto s = fleet::parse_node_state(item);
    if (!s || *s == fleet::NodeState::kRetired) {
      fail(ErrorCode::kInvalidArgument, "--states: '", item,
           "' is not a placeable state (allowed: active, idle, drained)");
    }
    states.push_back(*s);
  }
  if (states.empty()) fail(ErrorCode::kInvalidArgument, "--states: name at least one state");
  return states;
}

// POST the plan to the gateway's /admin/placement/apply and print what each node did.
void apply_plan(const PlaceFlags& flags, const nlohmann::json& plan) {
  const gateway::Endpoint gw = as_bad_input([&] { return gateway::parse_http_url(flags.apply); });
  const std::string token = as_bad_input([&] { return serve::read_token_file(flags.apply_token_file); });
  serve::HttpClient client(gw.host, gw.port, 600);
  const auto r = client.request("POST", "/admin/placement/apply", plan.dump(), {{"authorization", "Bearer " + token}});
  const auto reply = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status != 200 || !reply.is_object()) {
    fail(ErrorCode::kUnavailable, "the gateway ", flags.apply, " refused the plan (HTTP ", r.status, "): ", r.body);
  }
  bool all = true;
  std::printf("applied through %s:\n", flags.apply.c_str());
  for (const auto& n : reply["nodes"]) {
    const std::string status = n.value("status", "?");
    all = all && status == "applied";
    std::printf("  %-16s %-11s %s\n", n.value("node", "?").c_str(), status.c_str(),
                status == "applied" ? (std::to_string(n.value("actions", nlohmann::json::array()).size()) + " changes").c_str()
                                    : n.value("error", "").c_str());
  }
  if (!all) fail(ErrorCode::kUnavailable, "the plan was not applied on every node");
}

void run_place(const PlaceFlags& flags) {
  const auto catalogue = as_bad_input([&] {
    auto c = fleet::Catalogue::builtin();
    for (const auto& path : flags.catalogues) c.apply_overrides(path);
    return c;
  });
  const auto fl = as_bad_input([&] { return fleet::load_fleet(flags.fleet, catalogue); });
  const auto demand = as_bad_input([&] { return gateway::load_demand(flags.demand, catalogue); });
  std::optional<policy::Policy> pol;
  if (!flags.policy.empty()) pol = as_bad_input([&] { return policy::load_policy(flags.policy); });
  gateway::PlacementOptions options;
  options.states = parse_states(flags.states);
  options.time_limit_s = flags.time_limit_s;
  const auto result = gateway::place(fl, catalogue, demand, pol ? &*pol : nullptr, options);
  const auto j = gateway::placement_json(result);
  if (!flags.ledger.empty() && result.feasible) {
    // Recorded before printing, so a plan whose record could not be written is never reported as done.
    auto record = j;
    record["fleet"] = flags.fleet;
    record["demand"] = flags.demand;
    record["policy"] = flags.policy;
    policy::Ledger::open(flags.ledger).append(policy::RecordKind::kPlacement, record);
  }
  if (flags.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s", gateway::placement_table(result).c_str());
  }
  if (!result.feasible) {
    std::fflush(stdout);
    for (const auto& i : result.infeasibility) {
      std::fprintf(stderr, "mixserve: placement infeasible (%s): %s\n", gateway::limit_name(i.limit).c_str(),
                   i.explanation.c_str());
    }
    std::exit(result.exit_code());
  }
  if (!flags.apply.empty()) apply_plan(flags, j);
}

}  // namespace

void add_place_command(CLI::App& app) {
  auto flags = std::make_shared<PlaceFlags>();
  auto* cmd = app.add_subcommand(
      "place", "plan model replicas onto the fleet: exit 0 plan found, 1 hard requirements infeasible, 2 bad input");
  cmd->add_option("--fleet", flags->fleet, "fleet description (fleet.yaml)")->required();
  cmd->add_option("--demand", flags->demand, "models and their traffic (demand.yaml, docs/placement.md)")->required();
  cmd->add_option("--policy", flags->policy, "domestic-share rules (policy.yaml); enforce-mode rules are constraints");
  cmd->add_option("--catalogue", flags->catalogues, "chip catalogue override file (repeatable, applied in order)");
  cmd->add_option("--states", flags->states,
                  "node states that may receive replicas, comma-separated (default active,idle)");
  cmd->add_option("--time-limit", flags->time_limit_s, "seconds per ILP solve (default 30)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", flags->json, "print the plan as JSON");
  cmd->add_option("--ledger", flags->ledger, "append the plan as a 'placement' record to this compliance ledger");
  cmd->add_option("--apply", flags->apply,
                  "apply the plan through this gateway (http://host:port): nodes load and unload replicas (docs/gateway.md)");
  cmd->add_option("--admin-token-file", flags->apply_token_file, "the gateway's admin token (with --apply)");
  cmd->callback([flags] {
    if (!flags->apply.empty() && flags->apply_token_file.empty()) {
      throw CLI::ValidationError("--apply", "needs --admin-token-file");
    }
    run_place(*flags);
  });
}

}  // namespace mixserve::cli

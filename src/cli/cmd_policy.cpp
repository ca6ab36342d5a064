// `mixserve policy check`: evaluates domestic-share rules against a fleet (docs/policy.md).
// Exit codes: 0 every enforced rule holds, 1 an enforced rule is violated, 2 bad input.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/format.h"
#include "common/error.h"
#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "policy/change.h"
#include "policy/evaluate.h"
#include "policy/ledger.h"
#include "policy/measure.h"
#include "policy/policy.h"
#include "policy/render.h"
#include "policy/report.h"
#include "policy/usage.h"

namespace mixserve::cli {
namespace {

struct CheckFlags {
  std::string fleet;
  std::string policy;
  std::string usage;
  std::string usage_ledger;
  std::string usage_from;
  std::string usage_to;
  std::vector<std::string> catalogues;
  std::vector<std::string> changes;
  std::string ledger;
  bool json = false;
  bool allow_unknown = false;
};


// Usage from a usage file or from the ledger's usage_sample records; `source` says which, for the output.
struct LoadedUsage {
  std::optional<policy::Usage> usage;
  nlohmann::json source;  // null when no usage was given
};

LoadedUsage read_usage(const CheckFlags& flags, const fleet::Fleet& fl, const fleet::Catalogue& catalogue) {
  LoadedUsage out;
  if (!flags.usage.empty() && !flags.usage_ledger.empty()) {
    fail(ErrorCode::kInvalidArgument, "give --usage or --usage-ledger, not both");
  }
  if (flags.usage_ledger.empty() && (!flags.usage_from.empty() || !flags.usage_to.empty())) {
    fail(ErrorCode::kInvalidArgument, "--usage-from and --usage-to need --usage-ledger");
  }
  if (!flags.usage.empty()) {
    out.usage = as_bad_input([&] { return policy::load_usage(flags.usage, fl, catalogue); });
    out.source = {{"source", "file"}, {"path", flags.usage}};
    return out;
  }
  if (flags.usage_ledger.empty()) return out;
  const auto from = flags.usage_from.empty() ? "" : policy::parse_report_time(flags.usage_from, "--usage-from");
  const auto to = flags.usage_to.empty() ? "" : policy::parse_report_time(flags.usage_to, "--usage-to");
  if (!from.empty() && !to.empty() && from >= to) {
    fail(ErrorCode::kInvalidArgument, "--usage-from ", flags.usage_from, " must be before --usage-to ", flags.usage_to);
  }
  // A ledger that is missing, not a ledger, fails verify or holds a malformed sample is bad input.
  auto counted = as_bad_input([&] {
    const auto ledger = policy::Ledger::open(flags.usage_ledger, policy::LedgerOpenMode::kExisting);
    return policy::usage_from_ledger(ledger, from, to, fl, catalogue);
  });
  for (const auto& w : counted.warnings) std::fprintf(stderr, "mixserve: warning: %s\n", w.c_str());
  auto text_or_null = [](const std::string& t) { return t.empty() ? nlohmann::json(nullptr) : nlohmann::json(t); };
  out.source = {{"source", "ledger"},
                {"path", flags.usage_ledger},
                {"from", text_or_null(counted.usage.from)},
                {"to", text_or_null(counted.usage.to)},
                {"samples", counted.samples},
                {"prorated", counted.prorated},
                {"warnings", counted.warnings}};
  out.usage = std::move(counted.usage);
  return out;
}

void run_check(const CheckFlags& flags) {
  const auto catalogue = as_bad_input([&] {
    auto c = fleet::Catalogue::builtin();
    for (const auto& path : flags.catalogues) c.apply_overrides(path);
    return c;
  });
  fleet::FleetOptions options;
  options.allow_unknown_chips = flags.allow_unknown;
  auto fl = as_bad_input([&] { return fleet::load_fleet(flags.fleet, catalogue, options); });
  const auto pol = as_bad_input([&] { return policy::load_policy(flags.policy); });
  const auto loaded = read_usage(flags, fl, catalogue);
  const auto& usage = loaded.usage;
  as_bad_input([&] {
    for (const auto& spec : flags.changes)
      policy::apply_change(fl, policy::parse_change(spec), catalogue, flags.allow_unknown);
    return 0;
  });
  const auto evaluation = policy::evaluate(pol, fl, catalogue, usage ? &*usage : nullptr);
  auto j = policy::evaluation_json(evaluation);
  j["changes"] = flags.changes;
  if (!loaded.source.is_null()) j["usage_source"] = loaded.source;
  if (!flags.ledger.empty()) {
    // Recorded before printing, so a check whose record could not be written is never reported as done.
    auto record = j;
    record["fleet"] = flags.fleet;
    record["policy"] = flags.policy;
    record["usage"] = flags.usage;
    // Every basis in every scope, so `mixserve report` can chart more than the rules look at.
    record["measurements"] = policy::measurements_json(policy::measure(fl, catalogue, usage ? &*usage : nullptr));
    policy::Ledger::open(flags.ledger).append(policy::RecordKind::kPolicyEvaluation, record);
  }
  if (flags.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    if (!flags.changes.empty()) std::printf("with %zu proposed change(s) applied\n", flags.changes.size());
    if (!flags.usage_ledger.empty()) {
      const auto& u = loaded.source;
      std::printf("usage from ledger %s: %lld usage_sample record(s), %s to %s (%lld prorated at the bounds)\n",
                  flags.usage_ledger.c_str(), static_cast<long long>(u["samples"].get<int64_t>()),
                  u["from"].is_null() ? "start" : u["from"].get<std::string>().c_str(),
                  u["to"].is_null() ? "end" : u["to"].get<std::string>().c_str(),
                  static_cast<long long>(u["prorated"].get<int64_t>()));
    }
    std::printf("%s", policy::evaluation_table(evaluation).c_str());
  }
  if (evaluation.exit_code() != 0) {
    std::string names;
    for (const auto& r : evaluation.results) {
      if (r.outcome == policy::Outcome::kViolation) names += (names.empty() ? "" : ", ") + r.rule.name;
    }
    std::fflush(stdout);
    std::fprintf(stderr, "mixserve: policy check failed: enforced rule(s) violated: %s\n", names.c_str());
    std::exit(evaluation.exit_code());
  }
}

}  // namespace

void add_policy_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("policy", "domestic-share policy: check a fleet against rules");
  cmd->require_subcommand(1);
  auto flags = std::make_shared<CheckFlags>();
  auto* check =
      cmd->add_subcommand("check", "evaluate every rule; exit 0 all hold, 1 an enforced rule fails, 2 bad input");
  check->add_option("--fleet", flags->fleet, "fleet description (fleet.yaml)")->required();
  check->add_option("--policy", flags->policy, "rules (policy.yaml)")->required();
  check->add_option("--usage", flags->usage, "usage data for device_hours / served_tokens rules (usage.yaml)");
  check->add_option("--usage-ledger", flags->usage_ledger,
                    "take usage from this ledger's usage_sample records instead of --usage (may be the --ledger file)");
  check->add_option("--usage-from", flags->usage_from,
                    "usage window start, inclusive (UTC: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or the ledger's form); "
                    "samples straddling a bound count in proportion; default: unbounded");
  check->add_option("--usage-to", flags->usage_to, "usage window end, exclusive; default: unbounded");
  check->add_option("--catalogue", flags->catalogues, "chip catalogue override file (repeatable, applied in order)");
  check->add_option("--change", flags->changes,
                    "proposed change checked before applying it (repeatable): add:<node>:<chip>:<count>, "
                    "remove:<node>, drain:<node>, idle:<node>, activate:<node>, retire:<node>");
  check->add_flag("--json", flags->json, "print one JSON object per rule");
  check->add_option("--ledger", flags->ledger, "append the evaluation to this compliance ledger (SQLite file)");
  check->add_flag("--allow-unknown-chips", flags->allow_unknown,
                  "keep chips missing from the catalogue (counted as foreign) instead of failing");
  check->callback([flags] { run_check(*flags); });
}

}  // namespace mixserve::cli

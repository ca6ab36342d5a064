// `mixserve ledger verify|append|show`: the compliance ledger from the command line (docs/ledger.md).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "common/error.h"
#include "policy/ledger.h"

namespace mixserve::cli {
namespace {

using policy::Ledger;
using policy::LedgerOpenMode;

struct LedgerOptions {
  std::string path;
  std::string kind = "note";
  std::string json;
  int64_t count = 1;
  bool as_json = false;
  std::string from;
  std::string to;
};

void run_verify(const LedgerOptions& o) {
  const auto result = Ledger::open(o.path, LedgerOpenMode::kExisting).verify();
  if (o.as_json) {
    nlohmann::json out = {{"ledger", o.path},           {"ok", result.ok},
                          {"records", result.records},  {"head_count", result.head.count},
                          {"head_hash", result.head.last_hash}, {"problem", result.problem}};
    out["first_bad_seq"] = result.first_bad_seq ? nlohmann::json(*result.first_bad_seq) : nlohmann::json();
    std::printf("%s\n", out.dump(2).c_str());
  } else if (result.ok) {
    std::printf("ledger %s: intact, %lld records, head %s\n", o.path.c_str(), static_cast<long long>(result.records),
                result.head.last_hash.c_str());
  }
  if (!result.ok) {
    const std::string where =
        result.first_bad_seq ? "record " + std::to_string(*result.first_bad_seq) + ": " : std::string();
    fail(ErrorCode::kDataLoss, "ledger ", o.path, " is not intact: ", where, result.problem);
  }
}

void run_append(const LedgerOptions& o) {
  const auto kind = policy::parse_record_kind(o.kind);
  if (!kind) {
    fail(ErrorCode::kInvalidArgument, "--kind '", o.kind,
         "' is not one of fleet_change, policy_evaluation, placement, usage_sample, note");
  }
  const auto payload = nlohmann::json::parse(o.json, nullptr, false);
  if (payload.is_discarded()) fail(ErrorCode::kInvalidArgument, "--json is not valid JSON: ", o.json);
  if (o.count < 1) fail(ErrorCode::kInvalidArgument, "--count must be at least 1");
  auto ledger = Ledger::open(o.path);
  for (int64_t i = 0; i < o.count; ++i) {
    // Printed only after the commit returned: every seq on stdout is durably stored.
    std::printf("%lld\n", static_cast<long long>(ledger.append(*kind, payload)));
    std::fflush(stdout);
  }
}

void run_show(const LedgerOptions& o) {
  const auto ledger = Ledger::open(o.path, LedgerOpenMode::kExisting);
  const auto records = ledger.records(o.from, o.to);
  if (o.as_json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : records) {
      out.push_back({{"seq", r.seq},
                     {"time", r.time},
                     {"kind", r.kind},
                     {"payload", nlohmann::json::parse(r.payload, nullptr, false)},
                     {"prev_hash", r.prev_hash},
                     {"hash", r.hash}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  std::printf("%-6s %-27s %-17s %-12s %s\n", "seq", "time", "kind", "hash", "payload");
  for (const auto& r : records) {
    std::printf("%-6lld %-27s %-17s %-12s %s\n", static_cast<long long>(r.seq), r.time.c_str(), r.kind.c_str(),
                r.hash.substr(0, 12).c_str(), r.payload.c_str());
  }
}

}  // namespace

void add_ledger_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("ledger", "the tamper-evident compliance ledger (docs/ledger.md)");
  cmd->require_subcommand(1);
  auto options = std::make_shared<LedgerOptions>();

  auto* verify = cmd->add_subcommand("verify", "check the hash chain; exit 1 naming the first bad record");
  verify->add_option("--ledger", options->path, "ledger file (SQLite)")->required();
  verify->add_flag("--json", options->as_json, "print the result as JSON");
  verify->callback([options] { run_verify(*options); });

  auto* append = cmd->add_subcommand("append", "append records; prints each committed seq on its own line");
  append->add_option("--ledger", options->path, "ledger file (created when missing)")->required();
  append->add_option("--kind", options->kind, "fleet_change|policy_evaluation|placement|usage_sample|note");
  append->add_option("--json", options->json, "payload (JSON text)")->required();
  append->add_option("--count", options->count, "append the payload this many times (default 1)");
  append->callback([options] { run_append(*options); });

  auto* show = cmd->add_subcommand("show", "list records");
  show->add_option("--ledger", options->path, "ledger file")->required();
  show->add_flag("--json", options->as_json, "print as a JSON array");
  show->add_option("--from", options->from, "only records at or after this UTC time (YYYY-MM-DDTHH:MM:SS.ffffffZ)");
  show->add_option("--to", options->to, "only records before this UTC time");
  show->callback([options] { run_show(*options); });
}

}  // namespace mixserve::cli

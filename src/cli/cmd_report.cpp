// `mixserve report`: compliance over time from the ledger's policy evaluations (docs/policy.md, "Reports").
// Exit codes: 0 report written, 1 the ledger is not intact (the report is still written, and says so) or
// a record is unreadable, 2 bad flags or an unreadable/missing ledger file.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "common/error.h"
#include "policy/ledger.h"
#include "policy/report.h"

namespace mixserve::cli {
namespace {

struct ReportFlags {
  std::string ledger;
  std::string from;
  std::string to;
  std::string format;
  std::string output;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// --format, else the -o file's extension (.html, .htm, .csv, .json), else json.
std::string pick_format(const ReportFlags& flags) {
  if (!flags.format.empty()) {
    if (flags.format != "json" && flags.format != "csv" && flags.format != "html") {
      fail(ErrorCode::kInvalidArgument, "--format '", flags.format, "' is not one of json, csv, html");
    }
    return flags.format;
  }
  if (ends_with(flags.output, ".html") || ends_with(flags.output, ".htm")) return "html";
  if (ends_with(flags.output, ".csv")) return "csv";
  return "json";
}

void run_report(const ReportFlags& flags) {
  const auto format = pick_format(flags);
  const auto from = flags.from.empty() ? std::string() : policy::parse_report_time(flags.from, "--from");
  const auto to = flags.to.empty() ? std::string() : policy::parse_report_time(flags.to, "--to");
  if (!from.empty() && !to.empty() && from >= to) {
    fail(ErrorCode::kInvalidArgument, "--from ", flags.from, " must be before --to ", flags.to);
  }
  auto ledger = [&] {
    try {
      return policy::Ledger::open(flags.ledger, policy::LedgerOpenMode::kExisting);
    } catch (const Error& e) {
      throw Error(ErrorCode::kInvalidArgument, e.what());  // missing or not a ledger: bad input
    }
  }();
  const auto report = policy::build_report(ledger, from, to);
  std::string text;
  if (format == "json") {
    text = policy::report_json(report).dump(2) + "\n";
  } else if (format == "csv") {
    text = policy::report_csv(report);
  } else {
    text = policy::report_html(report);
  }
  if (flags.output.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  } else {
    std::ofstream out(flags.output, std::ios::binary | std::ios::trunc);
    if (!out) fail(ErrorCode::kInvalidArgument, "-o ", flags.output, ": cannot open the file for writing");
    out << text;
    out.close();
    if (!out) fail(ErrorCode::kUnavailable, "-o ", flags.output, ": writing the report failed");
  }
  const auto& v = report.verify;
  if (!v.ok) {
    fail(ErrorCode::kDataLoss, "ledger ", flags.ledger,
         " is not intact: ", v.first_bad_seq ? "record " + std::to_string(*v.first_bad_seq) + ": " : std::string(),
         v.problem, "; the report was written but its figures cannot be trusted");
  }
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto flags = std::make_shared<ReportFlags>();
  auto* cmd = app.add_subcommand(
      "report", "domestic share over time from the ledger: per rule and basis, violations and their durations");
  cmd->add_option("--ledger", flags->ledger, "compliance ledger (SQLite file written by policy check --ledger)")
      ->required();
  cmd->add_option("--from", flags->from,
                  "window start, inclusive (UTC: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or the ledger's form); "
                  "default: the first record");
  cmd->add_option("--to", flags->to, "window end, exclusive; default: the window's last record");
  cmd->add_option("--format", flags->format, "json | csv | html (default: from the -o extension, else json)");
  cmd->add_option("-o,--output", flags->output, "write the report to this file (default: stdout)");
  cmd->callback([flags] { run_report(*flags); });
}

}  // namespace mixserve::cli

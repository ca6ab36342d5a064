// `mixserve report`: compliance over time from the ledger's policy evaluations and usage samples
// (docs/policy.md, "Reports").
// Exit codes: 0 report written, 1 the ledger is not intact (the report is still written, and says so) or
// a record is unreadable, 2 bad flags or an unreadable/missing ledger file.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"
#include "fleet/catalogue.h"
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
  std::string usage_interval;
  std::vector<std::string> catalogues;
  std::string home_country = "CN";
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

// "900", "90s", "15m", "1h", "1d" -> seconds; 0 for empty (chosen from the window).
int64_t parse_interval(const std::string& text) {
  if (text.empty()) return 0;
  std::size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  int64_t scale = 0;
  if (unit.empty() || unit == "s") {
    scale = 1;
  } else if (unit == "m" || unit == "min") {
    scale = 60;
  } else if (unit == "h") {
    scale = 3600;
  } else if (unit == "d") {
    scale = 86400;
  }
  if (used == 0 || n <= 0 || scale == 0 || n > 366LL * 86400 / scale) {
    fail(ErrorCode::kInvalidArgument, "--usage-interval '", text,
         "' is not a duration: a whole number of seconds, or with s, m, h or d (e.g. 15m), up to a year");
  }
  return n * scale;
}

void run_report(const ReportFlags& flags) {
  const auto format = pick_format(flags);
  const auto from = flags.from.empty() ? std::string() : policy::parse_report_time(flags.from, "--from");
  const auto to = flags.to.empty() ? std::string() : policy::parse_report_time(flags.to, "--to");
  if (!from.empty() && !to.empty() && from >= to) {
    fail(ErrorCode::kInvalidArgument, "--from ", flags.from, " must be before --to ", flags.to);
  }
  policy::ReportOptions options;
  options.usage_interval_s = parse_interval(flags.usage_interval);
  options.home_country = flags.home_country;
  const auto catalogue = [&] {
    try {
      auto c = fleet::Catalogue::builtin();
      for (const auto& path : flags.catalogues) c.apply_overrides(path);
      return c;
    } catch (const Error& e) {
      throw Error(ErrorCode::kInvalidArgument, e.what());  // a missing or invalid override file: bad input
    }
  }();
  options.catalogue = &catalogue;
  auto ledger = [&] {
    try {
      return policy::Ledger::open(flags.ledger, policy::LedgerOpenMode::kExisting);
    } catch (const Error& e) {
      throw Error(ErrorCode::kInvalidArgument, e.what());  // missing or not a ledger: bad input
    }
  }();
  const auto report = policy::build_report(ledger, from, to, options);
  for (const auto& w : report.warnings) std::fprintf(stderr, "mixserve: warning: %s\n", w.c_str());
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
  cmd->add_option("--usage-interval", flags->usage_interval,
                  "width of the intervals usage_sample records are summed over (e.g. 15m, 1h, 1d; default: "
                  "from the window, at most 240 intervals)");
  cmd->add_option("--catalogue", flags->catalogues,
                  "chip catalogue override file classifying usage_sample chips (repeatable, applied in order)");
  cmd->add_option("--home-country", flags->home_country,
                  "chips designed in this country are domestic in usage series (default: CN)");
  cmd->callback([flags] { run_report(*flags); });
}

}  // namespace mixserve::cli

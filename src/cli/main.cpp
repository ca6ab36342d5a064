// Entry point: parses the command line and maps errors to one line on stderr and an exit code.
#include <cstdio>

#include "cli/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "common/version.h"

namespace {

// Exit codes: 0 success, 1 runtime failure, 2 bad usage or arguments.
int exit_code_for(mixserve::ErrorCode code) {
  return code == mixserve::ErrorCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mixserve: portable LLM inference for mixed accelerator fleets"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("mixserve ") + mixserve::kVersion);
  std::string log_level;
  app.add_option("--log", log_level, "log level: debug|info|warn|error|off (default: $MIXSERVE_LOG or info)");
  mixserve::cli::add_devices_command(app);
  mixserve::cli::add_model_command(app);
  mixserve::cli::add_run_command(app);
  mixserve::cli::add_serve_command(app);
  mixserve::cli::add_bench_command(app);
  mixserve::cli::add_tokenize_commands(app);
  mixserve::cli::add_ledger_command(app);
  mixserve::cli::add_policy_command(app);
  mixserve::cli::add_report_command(app);
  mixserve::cli::add_chips_command(app);
  mixserve::cli::add_gateway_command(app);
  mixserve::cli::add_burst_command(app);
  mixserve::cli::add_place_command(app);
  try {
    app.parse_complete_callback([&] {
      if (!log_level.empty()) mixserve::set_log_level(mixserve::parse_log_level(log_level));
    });
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  } catch (const mixserve::Error& e) {
    std::fprintf(stderr, "mixserve: error: %s\n", e.what());
    return exit_code_for(e.code());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "mixserve: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mixserve: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}

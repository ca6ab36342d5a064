// Subcommands of the `mixserve` binary. Each registers its flags on the app and runs by calling
// the library layers; no logic lives here beyond argument handling and printing.
#pragma once

#include <CLI/CLI.hpp>

namespace mixserve::cli {

/// `mixserve devices`: lists compute devices.
void add_devices_command(CLI::App& app);
/// `mixserve model synth|info`: writes synthetic models, describes model files.
void add_model_command(CLI::App& app);
/// `mixserve run`: generates text from a prompt.
void add_run_command(CLI::App& app);
/// `mixserve bench`: prefill/decode throughput against the machine's limits.
void add_bench_command(CLI::App& app);

}  // namespace mixserve::cli

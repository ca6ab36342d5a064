// Subcommands of the `mixserve` binary. Each registers its flags on the app and runs by calling
// the library layers; no logic lives here beyond argument handling and printing.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace mixserve::cli {

/// `mixserve devices`: lists compute devices.
void add_devices_command(CLI::App& app);
/// `mixserve model synth|info`: writes synthetic models, describes model files.
void add_model_command(CLI::App& app);
/// `mixserve run`: generates text from a prompt.
void add_run_command(CLI::App& app);
/// `mixserve serve`: the OpenAI-compatible HTTP server.
void add_serve_command(CLI::App& app);
/// `mixserve bench`: prefill/decode throughput against the machine's limits.
void add_bench_command(CLI::App& app);
/// `mixserve tokenize` and `mixserve detokenize`: text <-> token ids with a model's vocabulary.
void add_tokenize_commands(CLI::App& app);
/// `mixserve ledger verify|append|show`: the tamper-evident compliance ledger.
void add_ledger_command(CLI::App& app);
/// `mixserve policy check`: domestic-share rules against a fleet, with what-if.
void add_policy_command(CLI::App& app);
/// `mixserve report`: domestic share over time, violations and durations, from the ledger (cmd_report.cpp).
void add_report_command(CLI::App& app);
/// `mixserve gateway`: the OpenAI-compatible front door over a mixed fleet (cmd_gateway.cpp).
void add_gateway_command(CLI::App& app);
/// `mixserve burst`: a burst of requests through a gateway, tallied by upstream (cmd_burst.cpp).
void add_burst_command(CLI::App& app);
/// `mixserve chips`: the chip catalogue as a table or JSON.
void add_chips_command(CLI::App& app);
/// `mixserve place`: replica placement of models onto the fleet (cmd_place.cpp).
void add_place_command(CLI::App& app);
/// Adds `--inventory [--json] [--catalogue F] [--home CC]` to `mixserve devices`; the returned function
/// prints the inventory and returns true when --inventory was given (cmd_inventory.cpp).
std::function<bool()> add_inventory_options(CLI::App& devices);

}  // namespace mixserve::cli

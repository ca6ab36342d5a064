#include <cstdio>

#include "cli/commands.h"
#include "cli/format.h"
#include "hal/registry.h"

namespace mixserve::cli {

void add_devices_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("devices", "list the compute devices this build can use");
  auto inventory = add_inventory_options(*cmd);
  cmd->callback([inventory] {
    if (!inventory()) print_devices(stdout);
  });
}

}  // namespace mixserve::cli

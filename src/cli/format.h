// Small printing helpers shared by the CLI commands.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace mixserve::cli {

/// "1.17 GB" style size (decimal units).
std::string human_bytes(double bytes);
/// Prints the device table (id, backend, name, memory, threads/units, capabilities).
void print_devices(std::FILE* out);

}  // namespace mixserve::cli

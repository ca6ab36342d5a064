// Small printing helpers shared by the CLI commands.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "common/error.h"

namespace mixserve::cli {

/// "1.17 GB" style size (decimal units).
std::string human_bytes(double bytes);
/// Prints the device table (id, backend, name, memory, threads/units, capabilities).
void print_devices(std::FILE* out);

/// Runs `f`, turning any mixserve::Error it throws into kInvalidArgument: for commands whose every
/// input problem (a missing file included) is bad input, exit 2 (`policy check`, `place`).
template <typename F>
auto as_bad_input(F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kInvalidArgument) throw;
    throw Error(ErrorCode::kInvalidArgument, e.what());
  }
}

}  // namespace mixserve::cli

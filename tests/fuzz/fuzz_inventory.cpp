// libFuzzer entry for the inventory parsers: any tool output must give devices or an error string,
// never a crash, an exception or an absurd result.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/error.h"
#include "fleet/inventory.h"
#include "fleet/inventory_json.h"

namespace {

using mixserve::fleet::ParseResult;

// Reads every field so the sanitizers see any bad state, and checks invariants every parser keeps.
void check(const ParseResult& r) {
  size_t n = r.error.size();
  for (const auto& d : r.devices) {
    n += d.source.size() + d.vendor.size() + d.name.size() + d.uuid_or_bus.size() + d.status.size() + d.detail.size();
    n += static_cast<size_t>(d.memory_bytes & 1) + static_cast<size_t>(d.index & 1);
    if (d.status.empty() || d.source.empty() || d.index < 0) std::abort();
  }
  if (n == static_cast<size_t>(-1)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check(mixserve::fleet::parse_nvidia_smi_csv(text));
  check(mixserve::fleet::parse_npu_smi_info(text));
  check(mixserve::fleet::parse_cnmon(text));
  check(mixserve::fleet::parse_hy_smi(text));
  check(mixserve::fleet::parse_cpuinfo(text));
  (void)mixserve::fleet::parse_meminfo_total(text);
  // The inventory's own JSON (fleet.yaml `discovered:`): devices, or a mixserve::Error naming the
  // problem; any other exception escaping (e.g. from the YAML parser) is a bug and aborts the fuzzer.
  try {
    size_t n = 0;
    for (const auto& d : mixserve::fleet::parse_inventory_text(std::string(text), "fuzz")) {
      n += d.source.size() + d.vendor.size() + d.name.size() + d.status.size() + d.detail.size();
    }
    if (n == static_cast<size_t>(-1)) std::abort();
  } catch (const mixserve::Error&) {
  }
  return 0;
}

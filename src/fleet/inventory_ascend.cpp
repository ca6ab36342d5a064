// Huawei Ascend NPUs from the `npu-smi info` table. Its device section has two rows per chip:
//   | NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|
//   | Chip  Phy-ID              | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |
// (310P cards print Chip/Device and Memory-Usage only). The last "used / total" pair of the second
// row is the device memory in MB (HBM where present). A process section follows and is ignored.
#include "fleet/inventory.h"
#include "fleet/inventory_text.h"

namespace mixserve::fleet {
namespace {

constexpr uint64_t kMiB = 1024ull * 1024;  // npu-smi's "MB" are MiB (65536 MB on a 64 GiB 910B)

}  // namespace

ParseResult parse_npu_smi_info(std::string_view input) {
  ParseResult result;
  bool in_devices = false;  // after the device header and its ==== rule
  bool saw_header = false;
  struct Pending {
    std::string npu;
    std::string name;
    std::string health;
  };
  std::optional<Pending> pending;
  int line_no = 0;
  for (auto line : text::lines(input)) {
    ++line_no;
    const auto trimmed = text::trim(line);
    if (trimmed.empty()) continue;
    if (text::is_rule(trimmed)) {
      if (saw_header && text::is_double_rule(trimmed)) in_devices = true;
      continue;
    }
    const auto cells = text::table_cells(trimmed);
    if (!cells || cells->empty()) continue;
    const auto first = text::tokens((*cells)[0]);
    if (!first.empty() && (first[0] == "NPU" || first[0] == "Chip")) {
      // A header row; "NPU Chip Process id ..." starts the process section, which ends the devices.
      if (trimmed.find("Process") != std::string_view::npos) break;
      if (first[0] == "NPU") saw_header = true;
      continue;
    }
    if (!in_devices || cells->size() < 3 || first.empty()) continue;
    if (!text::parse_uint(first[0])) continue;  // "No running processes found ..." and similar
    if (first.size() >= 2 && !text::parse_uint(first[1]) && first[1] != "-") {
      // First row of a chip: NPU id, name (may have spaces), health in the next cell.
      Pending p;
      p.npu = std::string(first[0]);
      const auto cell = (*cells)[0];
      p.name = std::string(text::trim(cell.substr(static_cast<size_t>(first[1].data() - cell.data()))));
      p.health = std::string((*cells)[1]);
      pending = std::move(p);
      continue;
    }
    // Second row: Chip id, Phy-ID (or Device id), Bus-Id, then AICore and memory figures.
    if (!pending) {
      result.error = "npu-smi line " + std::to_string(line_no) + ": chip row without an NPU row before it";
      return result;
    }
    DiscoveredDevice d;
    d.source = "npu-smi";
    d.vendor = "Huawei";
    d.name = pending->name;
    // 910B tables print only the chip id; 910C/310P add the Phy-ID or Device id.
    constexpr uint64_t kNone = ~uint64_t{0};
    const uint64_t phy = first.size() >= 2 ? text::parse_uint(first[1]).value_or(kNone) : kNone;
    const uint64_t npu = text::parse_uint(pending->npu).value_or(kNone);
    d.index = phy < (1u << 20)   ? static_cast<int>(phy)
              : npu < (1u << 20) ? static_cast<int>(npu)
                                 : static_cast<int>(result.devices.size());
    d.uuid_or_bus = std::string((*cells)[1]);
    d.detail = "npu " + pending->npu + " chip " + std::string(first[0]);
    if (const auto ratio = text::last_ratio((*cells)[2])) {
      const auto mb = text::parse_uint(ratio->second);
      if (mb && text::scale(*mb, kMiB)) d.memory_bytes = *mb * kMiB;
    }
    if (pending->health != "OK") {
      d.status = "health " + (pending->health.empty() ? std::string("not reported") : pending->health);
    } else if (d.memory_bytes == 0) {
      d.status = "memory size not reported";
    }
    result.devices.push_back(std::move(d));
  }
  if (!saw_header) result.error = "npu-smi: " + text::first_line(input);
  return result;
}

}  // namespace mixserve::fleet

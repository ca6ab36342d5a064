// Cambricon MLUs from `cnmon`. Two shapes are understood:
//  - the summary table, two rows per card:
//      | Card  VF  Name       Firmware |  Bus-Id | Util        Ecc-Error |
//      | Fan   Temp      Pwr:Usage/Cap |  Memory-Usage | Mode     Compute-Mode |
//    ("0 / MLU370-X8 v1.1.4" | "0000:4F:00.0" | ...) then (fan temp power | "0 MiB/ 23308 MiB" | ...);
//  - `cnmon info`: per-card blocks "Card N" with "Product Name : X", "UUID : ..." and, under
//    "Physical Memory Usage", "Total : N MiB".
#include "fleet/inventory.h"
#include "fleet/inventory_text.h"

namespace mixserve::fleet {
namespace {

constexpr uint64_t kMiB = 1024ull * 1024;

DiscoveredDevice mlu(int index) {
  DiscoveredDevice d;
  d.source = "cnmon";
  d.vendor = "Cambricon";
  d.index = index;
  return d;
}

int small_index(uint64_t v, size_t fallback) { return v < (1u << 20) ? static_cast<int>(v) : static_cast<int>(fallback); }

ParseResult parse_table(std::string_view input) {
  ParseResult result;
  bool in_devices = false;
  bool saw_header = false;
  for (auto line : text::lines(input)) {
    const auto trimmed = text::trim(line);
    if (trimmed.empty()) continue;
    if (text::is_rule(trimmed)) {
      if (saw_header && text::is_double_rule(trimmed)) in_devices = true;
      continue;
    }
    const auto cells = text::table_cells(trimmed);
    if (!cells || cells->size() < 2) continue;
    const auto first = text::tokens((*cells)[0]);
    if (!first.empty() && first[0] == "Card") {
      if (trimmed.find("PID") != std::string_view::npos) break;  // the process table
      saw_header = true;
      continue;
    }
    if (!in_devices || first.empty()) continue;
    if (const auto card = text::parse_uint(first[0]); card && first.size() >= 2 &&
                                                      (*cells)[1].find(':') != std::string_view::npos) {
      // "<card> [<vf>|/] <name> [<firmware>]" | bus id | ...
      size_t i = 1;
      while (i < first.size() && (first[i] == "/" || text::parse_uint(first[i]))) ++i;
      DiscoveredDevice d = mlu(small_index(*card, result.devices.size()));
      if (i < first.size()) d.name = std::string(first[i]);
      if (i + 1 < first.size()) d.detail = "firmware " + std::string(first[i + 1]);
      d.uuid_or_bus = std::string((*cells)[1]);
      if (d.name.empty()) d.status = "model name not reported";
      result.devices.push_back(std::move(d));
      continue;
    }
    // Second row of a card: the memory cell "used MiB/ total MiB".
    if (!result.devices.empty() && result.devices.back().memory_bytes == 0) {
      if (const auto ratio = text::last_ratio((*cells)[1])) {
        const auto mib = text::parse_uint(ratio->second);
        if (mib && text::scale(*mib, kMiB)) result.devices.back().memory_bytes = *mib * kMiB;
      }
    }
  }
  if (!saw_header) result.error = "cnmon: " + text::first_line(input);
  return result;
}

// "Key   : value" -> (key, value), both trimmed; nullopt without a colon.
std::optional<std::pair<std::string_view, std::string_view>> key_value(std::string_view line) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  return std::make_pair(text::trim(line.substr(0, colon)), text::trim(line.substr(colon + 1)));
}

ParseResult parse_info(std::string_view input) {
  ParseResult result;
  enum class Section { kOther, kPhysicalMemory } section = Section::kOther;
  for (auto line : text::lines(input)) {
    const auto t = text::tokens(line);
    if (t.empty()) continue;
    if (t[0] == "Card" && t.size() <= 3) {  // "Card 0" or "Card : 0"
      if (const auto id = text::parse_uint(t.back())) {
        result.devices.push_back(mlu(small_index(*id, result.devices.size())));
        section = Section::kOther;
        continue;
      }
    }
    if (result.devices.empty()) continue;
    auto& d = result.devices.back();
    const auto kv = key_value(line);
    if (!kv) continue;
    const auto& [key, value] = *kv;
    if (key == "Product Name" && d.name.empty()) {
      d.name = std::string(value);
    } else if (key == "UUID" && d.uuid_or_bus.empty()) {
      d.uuid_or_bus = std::string(value);
    } else if (key.find("Memory Usage") != std::string_view::npos) {
      section = key == "Physical Memory Usage" ? Section::kPhysicalMemory : Section::kOther;
    } else if (key == "Total" && section == Section::kPhysicalMemory && d.memory_bytes == 0) {
      const auto v = text::tokens(value);
      if (!v.empty()) {
        const auto n = text::parse_uint(v[0]);
        const uint64_t unit = v.size() > 1 && text::lower(v[1]) == "gib" ? kMiB * 1024 : kMiB;
        if (n && text::scale(*n, unit)) d.memory_bytes = *n * unit;
      }
    }
  }
  for (auto& d : result.devices) {
    if (d.name.empty()) d.status = "model name not reported";
  }
  if (result.devices.empty()) result.error = "cnmon: " + text::first_line(input);
  return result;
}

}  // namespace

ParseResult parse_cnmon(std::string_view input) {
  // The table always has box rows starting with '|'; `cnmon info` never does.
  for (auto line : text::lines(input)) {
    const auto t = text::trim(line);
    if (!t.empty() && t.front() == '|') return parse_table(input);
  }
  return parse_info(input);
}

}  // namespace mixserve::fleet

// Hygon DCUs from `hy-smi` (derived from AMD's rocm-smi). Understood shapes:
//  - `hy-smi --showproductname --showmeminfo vram`: lines "DCU[0] : Card Series: K100_AI" and
//    "DCU[0] : vram Total Memory (B): 68702699520" (rocm-smi style; "GPU[0]" accepted too);
//  - the same with --json: {"card0": {"Card Series": "...", "vram Total Memory (B)": "..."}};
//  - plain `hy-smi`: a "DCU  Temp  AvgPwr ..." table that lists indices only (model unknown).
#include <nlohmann/json.hpp>

#include "fleet/inventory.h"
#include "fleet/inventory_text.h"

namespace mixserve::fleet {
namespace {

DiscoveredDevice dcu(int index) {
  DiscoveredDevice d;
  d.source = "hy-smi";
  d.vendor = "Hygon";
  d.index = index;
  return d;
}

// Applies one "key: value" fact to a device.
void apply(DiscoveredDevice& d, std::string_view key, std::string_view value) {
  const std::string k = text::lower(text::trim(key));
  value = text::trim(value);
  if ((k == "card series" || k == "card model") && d.name.empty() && !value.empty() && value != "N/A") {
    d.name = std::string(value);
  } else if ((k == "unique id" || k == "serial number") && d.uuid_or_bus.empty() && value != "N/A") {
    d.uuid_or_bus = std::string(value);
  } else if (k == "pci bus" && !value.empty()) {
    d.uuid_or_bus = std::string(value);
  } else if (k == "vram total memory (b)") {
    if (const auto bytes = text::parse_uint(value)) d.memory_bytes = *bytes;
  }
}

// "DCU[12]" / "GPU[12]" -> 12.
std::optional<int> bracket_index(std::string_view s) {
  if (!(text::starts_with_nocase(s, "DCU[") || text::starts_with_nocase(s, "GPU[") ||
        text::starts_with_nocase(s, "HCU["))) {
    return std::nullopt;
  }
  const size_t close = s.find(']');
  if (close == std::string_view::npos) return std::nullopt;
  const auto n = text::parse_uint(s.substr(4, close - 4));
  if (!n || *n >= (1u << 20)) return std::nullopt;
  return static_cast<int>(*n);
}

DiscoveredDevice& device_for(std::vector<DiscoveredDevice>& devices, int index) {
  for (auto& d : devices) {
    if (d.index == index) return d;
  }
  devices.push_back(dcu(index));
  return devices.back();
}

ParseResult parse_json(std::string_view input) {
  ParseResult result;
  const auto doc = nlohmann::json::parse(input.begin(), input.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    result.error = "hy-smi: output is not a JSON object";
    return result;
  }
  for (const auto& [card, facts] : doc.items()) {
    if (!text::starts_with_nocase(card, "card") || !facts.is_object()) continue;
    const auto n = text::parse_uint(std::string_view(card).substr(4));
    if (!n || *n >= (1u << 20)) continue;
    auto& d = device_for(result.devices, static_cast<int>(*n));
    for (const auto& [key, value] : facts.items()) {
      if (value.is_string()) apply(d, key, value.get<std::string>());
      if (value.is_number_unsigned()) apply(d, key, std::to_string(value.get<uint64_t>()));
    }
  }
  return result;
}

}  // namespace

ParseResult parse_hy_smi(std::string_view input) {
  const auto body = text::trim(input);
  if (!body.empty() && body.front() == '{') {
    auto r = parse_json(body);
    for (auto& d : r.devices) {
      if (d.name.empty()) d.status = "model name not reported";
    }
    if (r.error.empty() && r.devices.empty()) r.error = "hy-smi: no DCU entries in the JSON output";
    return r;
  }
  ParseResult result;
  bool table = false;
  for (auto line : text::lines(input)) {
    const auto t = text::trim(line);
    if (t.empty() || t.front() == '=') continue;
    if (const auto index = bracket_index(t)) {
      // DCU[0] : key: value   (the first colon ends "DCU[0]", the next one the key)
      const size_t first = t.find(':');
      if (first == std::string_view::npos) continue;
      const auto rest = t.substr(first + 1);
      const size_t second = rest.find(':');
      auto& d = device_for(result.devices, *index);
      if (second != std::string_view::npos) apply(d, rest.substr(0, second), rest.substr(second + 1));
      continue;
    }
    const auto tok = text::tokens(t);
    if (tok.size() >= 2 && (tok[0] == "DCU" || tok[0] == "HCU") && tok[1] == "Temp") {
      table = true;
      continue;
    }
    if (table && !tok.empty()) {
      if (const auto n = text::parse_uint(tok[0]); n && *n < (1u << 20)) device_for(result.devices, static_cast<int>(*n));
    }
  }
  for (auto& d : result.devices) {
    if (d.name.empty()) d.status = "model name not reported (run hy-smi --showproductname)";
  }
  if (result.devices.empty() && !table) result.error = "hy-smi: " + text::first_line(input);
  return result;
}

}  // namespace mixserve::fleet

// The host CPU from /proc/cpuinfo (x86: vendor_id/model name/physical id/core id; Arm: CPU implementer
// and CPU part, named from the MIDR codes in Arm's and vendors' technical reference manuals).
#include <cstdio>
#include <set>

#include "fleet/inventory.h"
#include "fleet/inventory_text.h"

namespace mixserve::fleet {
namespace {

struct ArmPart {
  unsigned implementer;
  unsigned part;
  const char* name;
};

// MIDR_EL1 implementer and part numbers (Arm Cortex/Neoverse TRMs; HiSilicon, Phytium, Ampere, NVIDIA
// codes as the Linux kernel's arch/arm64/include/asm/cputype.h lists them).
constexpr ArmPart kArmParts[] = {
    {0x41, 0xd03, "Cortex-A53"},   {0x41, 0xd07, "Cortex-A57"},  {0x41, 0xd08, "Cortex-A72"},
    {0x41, 0xd0b, "Cortex-A76"},   {0x41, 0xd0c, "Neoverse-N1"}, {0x41, 0xd40, "Neoverse-V1"},
    {0x41, 0xd49, "Neoverse-N2"},  {0x41, 0xd4f, "Neoverse-V2"}, {0x48, 0xd01, "Kunpeng-920"},
    {0x70, 0x662, "FTC662"},       {0x70, 0x663, "FTC663"},      {0x70, 0x862, "FTC862"},
    {0xc0, 0xac3, "AmpereOne"},    {0x4e, 0x004, "Carmel"},
};

const char* arm_vendor(unsigned implementer) {
  switch (implementer) {
    case 0x41: return "Arm";
    case 0x42: return "Broadcom";
    case 0x43: return "Cavium";
    case 0x48: return "HiSilicon";
    case 0x4e: return "NVIDIA";
    case 0x50: return "APM";
    case 0x51: return "Qualcomm";
    case 0x61: return "Apple";
    case 0x70: return "Phytium";
    case 0xc0: return "Ampere";
    default: return nullptr;
  }
}

std::string x86_vendor(std::string_view vendor_id) {
  if (vendor_id == "GenuineIntel") return "Intel";
  if (vendor_id == "AuthenticAMD") return "AMD";
  if (vendor_id == "HygonGenuine") return "Hygon";
  if (vendor_id == "CentaurHauls" || vendor_id == "Shanghai") return "Zhaoxin";
  return std::string(vendor_id);
}

std::optional<unsigned> parse_hex(std::string_view s) {
  if (s.size() < 3 || s.size() > 10 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) return std::nullopt;
  unsigned v = 0;
  for (char c : s.substr(2)) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return std::nullopt;
    v = v * 16 + static_cast<unsigned>(d);
  }
  return v;
}

}  // namespace

ParseResult parse_cpuinfo(std::string_view input) {
  ParseResult result;
  size_t threads = 0;
  std::set<std::string> sockets;
  std::set<std::pair<std::string, std::string>> cores;
  uint64_t cores_per_socket = 0;
  std::string vendor_id, model_name, physical_id = "0", isa;
  std::optional<unsigned> implementer, part;
  for (auto line : text::lines(input)) {
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const auto key = text::trim(line.substr(0, colon));
    const auto value = text::trim(line.substr(colon + 1));
    if (key == "processor") {
      ++threads;
      physical_id = "0";
    } else if (key == "vendor_id" && vendor_id.empty()) {
      vendor_id = std::string(value);
    } else if ((key == "model name" || key == "cpu model") && model_name.empty()) {
      model_name = std::string(value);
    } else if (key == "physical id") {
      physical_id = std::string(value);
      sockets.insert(physical_id);
    } else if (key == "core id") {
      cores.emplace(physical_id, std::string(value));
    } else if (key == "cpu cores" && cores_per_socket == 0) {
      cores_per_socket = text::parse_uint(value).value_or(0);
    } else if (key == "CPU implementer" && !implementer) {
      implementer = parse_hex(value);
    } else if (key == "CPU part" && !part) {
      part = parse_hex(value);
    } else if (key == "isa" && isa.empty()) {
      isa = std::string(value);
    }
  }
  if (threads == 0) {
    result.error = "/proc/cpuinfo has no 'processor' entries: " + text::first_line(input);
    return result;
  }
  DiscoveredDevice d;
  d.source = "/proc/cpuinfo";
  d.index = 0;
  const size_t socket_count = sockets.empty() ? 1 : sockets.size();
  size_t core_count = threads;
  if (!cores.empty()) {
    core_count = cores.size();
  } else if (cores_per_socket > 0 && cores_per_socket <= threads) {
    core_count = static_cast<size_t>(cores_per_socket) * socket_count;
  }
  if (!vendor_id.empty()) {
    d.vendor = x86_vendor(vendor_id);
    d.name = model_name.empty() ? d.vendor + " x86-64 CPU" : model_name;
    d.chip_id = "cpu-x86";
  } else if (implementer) {
    const char* vendor = arm_vendor(*implementer);
    char code[48];
    std::snprintf(code, sizeof code, "implementer 0x%02x", *implementer);
    d.vendor = vendor != nullptr ? vendor : code;
    const char* part_name = nullptr;
    for (const auto& p : kArmParts) {
      if (p.implementer == *implementer && part && p.part == *part) part_name = p.name;
    }
    if (part_name != nullptr) {
      d.name = d.vendor + " " + part_name;
    } else if (!model_name.empty()) {
      d.name = model_name;
    } else {
      std::snprintf(code, sizeof code, " part 0x%03x", part.value_or(0));
      d.name = d.vendor + " Arm CPU" + code;
    }
    d.chip_id = "cpu-arm";
  } else {
    d.vendor = "unknown";
    d.name = !model_name.empty() ? model_name : !isa.empty() ? isa : "unknown CPU";
    d.status = "CPU architecture not recognised";
  }
  d.detail = std::to_string(socket_count) + (socket_count == 1 ? " socket, " : " sockets, ") +
             std::to_string(core_count) + " cores, " + std::to_string(threads) + " threads";
  result.devices.push_back(std::move(d));
  return result;
}

uint64_t parse_meminfo_total(std::string_view input) {
  for (auto line : text::lines(input)) {
    const auto t = text::tokens(line);
    if (t.size() >= 2 && t[0] == "MemTotal:") {
      const auto kb = text::parse_uint(t[1]);
      const uint64_t unit = t.size() > 2 && t[2] == "kB" ? 1024 : 1;
      if (kb && text::scale(*kb, unit)) return *kb * unit;
      return 0;
    }
  }
  return 0;
}

}  // namespace mixserve::fleet

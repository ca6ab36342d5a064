#include "hal/placement.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "common/error.h"
#include "hal/registry.h"

namespace mixserve::hal {
namespace {

std::vector<std::string> split_on(const std::string& text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(sep, start);
    parts.push_back(text.substr(start, end - start));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

int32_t parse_layer(const std::string& text, const std::string& item) {
  int32_t value = -1;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < 0) {
    fail(ErrorCode::kInvalidArgument, "layer split item '", item, "': '", text, "' is not a layer number");
  }
  return value;
}

// "0-11:opencl:0" or "5:cpu".
LayerAssignment parse_assignment(const std::string& item) {
  const size_t colon = item.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == item.size()) {
    fail(ErrorCode::kInvalidArgument, "layer split item '", item, "' is not FIRST-LAST:DEVICE (e.g. 0-11:opencl:0)");
  }
  const std::string range = item.substr(0, colon);
  const size_t dash = range.find('-');
  LayerAssignment a;
  a.first = parse_layer(range.substr(0, dash), item);
  a.last = dash == std::string::npos ? a.first : parse_layer(range.substr(dash + 1), item);
  if (a.last < a.first) fail(ErrorCode::kInvalidArgument, "layer split item '", item, "': range is reversed");
  a.device = &Registry::instance().device(item.substr(colon + 1));
  return a;
}

std::string id_of(const Device* device) { return device->info().id; }

}  // namespace

bool fallback_forbidden_by_env() {
  const char* value = std::getenv("MIXSERVE_NO_FALLBACK");
  return value != nullptr && *value != '\0' && std::string(value) != "0";
}

PlacementPolicy PlacementPolicy::parse(const std::string& device_list, const std::string& split,
                                       bool allow_fallback) {
  PlacementPolicy p;
  p.allow_fallback = allow_fallback;
  Registry& registry = Registry::instance();
  for (const std::string& id : split_on(device_list, ',')) {
    if (id.empty()) fail(ErrorCode::kInvalidArgument, "empty device id in device list '", device_list, "'");
    Device* device = &registry.device(id);
    if (std::find(p.devices.begin(), p.devices.end(), device) != p.devices.end()) {
      fail(ErrorCode::kInvalidArgument, "device '", id, "' appears twice in '", device_list, "'");
    }
    p.devices.push_back(device);
  }
  if (!split.empty()) {
    const std::string prefix = "layers=";
    if (split.rfind(prefix, 0) != 0) {
      fail(ErrorCode::kInvalidArgument, "layer split '", split, "' must start with 'layers=' (e.g. layers=0-11:opencl:0,12-21:cpu)");
    }
    // Items are separated by commas, but device ids may not contain commas, so a plain split works.
    for (const std::string& item : split_on(split.substr(prefix.size()), ',')) {
      LayerAssignment a = parse_assignment(item);
      for (const LayerAssignment& other : p.layers) {
        if (a.first <= other.last && other.first <= a.last) {
          fail(ErrorCode::kInvalidArgument, "layer split ranges ", other.first, "-", other.last, " and ", a.first,
               "-", a.last, " overlap");
        }
      }
      // A split device that is not in the priority list joins it (after the listed devices).
      if (std::find(p.devices.begin(), p.devices.end(), a.device) == p.devices.end()) p.devices.push_back(a.device);
      p.layers.push_back(a);
    }
  }
  Device* host = registry.devices().front();
  if (std::find(p.devices.begin(), p.devices.end(), host) == p.devices.end()) p.devices.push_back(host);
  return p;
}

PlacementPolicy PlacementPolicy::single(Device& device) {
  PlacementPolicy p;
  p.devices.push_back(&device);
  Device* host = Registry::instance().devices().front();
  if (host != &device) p.devices.push_back(host);
  return p;
}

void PlacementPolicy::check_layers(int64_t n_layer) const {
  for (const LayerAssignment& a : layers) {
    if (a.last >= n_layer) {
      fail(ErrorCode::kInvalidArgument, "layer split range ", a.first, "-", a.last, " is outside the model's ",
           n_layer, " layers (0-", n_layer - 1, ")");
    }
  }
}

OpPlacement PlacementPolicy::place(const Op& op) const {
  std::vector<Device*> candidates;
  for (const LayerAssignment& a : layers) {
    if (op.layer >= a.first && op.layer <= a.last) candidates.push_back(a.device);
  }
  for (Device* d : devices) {
    if (std::find(candidates.begin(), candidates.end(), d) == candidates.end()) candidates.push_back(d);
  }
  MIXSERVE_CHECK(!candidates.empty(), "placement policy has no devices");
  OpPlacement result;
  result.preferred = candidates.front();
  for (Device* d : candidates) {
    if (d->supports_op(op)) {
      result.device = d;
      break;
    }
  }
  const std::string where = op.layer >= 0 ? str_cat(" (layer ", op.layer, ")") : std::string();
  if (result.device == nullptr) {
    fail(ErrorCode::kUnimplemented, "no device in the list can run ", op_name(op.kind), where,
         " with these operand types");
  }
  if (result.fallback() && !allow_fallback) {
    fail(ErrorCode::kUnimplemented, op_name(op.kind), where, " cannot run on ", id_of(result.preferred),
         " and fallback to ", id_of(result.device),
         " is forbidden (--no-fallback or MIXSERVE_NO_FALLBACK); choose devices that support it");
  }
  return result;
}

Device* PlacementPolicy::first_choice(const Op& op) const {
  for (const LayerAssignment& a : layers) {
    if (op.layer >= a.first && op.layer <= a.last) return a.device;
  }
  return devices.front();
}

int PlacementPolicy::slot_of(const Device* device) const {
  const auto it = std::find(devices.begin(), devices.end(), device);
  return it == devices.end() ? -1 : static_cast<int>(it - devices.begin());
}

std::string PlacementPolicy::describe() const {
  std::string out;
  for (const Device* d : devices) out += (out.empty() ? "" : " > ") + id_of(d);
  for (const LayerAssignment& a : layers) {
    out += str_cat(", layers ", a.first, "-", a.last, " on ", id_of(a.device));
  }
  if (!allow_fallback) out += ", no fallback";
  return out;
}

}  // namespace mixserve::hal

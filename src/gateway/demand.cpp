#include "gateway/demand.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.h"
#include "fleet/yaml_check.h"

namespace mixserve::gateway {

namespace yaml = fleet::yaml;

namespace {

// The software stacks a catalogue chip may name (docs/chips.md); a model naming another is a typo.
constexpr std::string_view kStacks[] = {"cuda", "cann", "bang", "dtk", "hip", "musa", "maca", "corex", "xpu", "cpu"};

constexpr double kBytesPerGib = 1024.0 * 1024.0 * 1024.0;
// Above this a figure is a typo (tokens/s of the whole fleet, GiB of one replica).
constexpr double kMaxTokensPerS = 1e12;
constexpr double kMaxGib = 1e9;

double fraction(const yaml::Where& where, const YAML::Node& map, std::string_view key, double fallback) {
  const double value = yaml::get_number(where, map, key, false, fallback);
  if (value <= 0 || value > 1) yaml::fail_at(where, map[std::string(key)], key, "must lie in (0, 1]");
  return value;
}

double positive(const yaml::Where& where, const YAML::Node& map, std::string_view key, bool required, double fallback,
                double max_value) {
  const double value = yaml::get_number(where, map, key, required, fallback);
  if (value <= 0) yaml::fail_at(where, map[std::string(key)], key, "must be greater than 0");
  if (value > max_value) yaml::fail_at(where, map[std::string(key)], key, "is implausibly large (a typo?)");
  return value;
}

EstimateDefaults parse_defaults(const yaml::Where& top, const YAML::Node& node) {
  EstimateDefaults d;
  if (!node.IsDefined() || node.IsNull()) return d;
  const yaml::Where where{top.origin, "defaults"};
  yaml::check_keys(where, node, {"batch", "efficiency", "memory_fraction"});
  d.batch = positive(where, node, "batch", false, d.batch, 1e6);
  d.efficiency = fraction(where, node, "efficiency", d.efficiency);
  d.memory_fraction = fraction(where, node, "memory_fraction", d.memory_fraction);
  return d;
}

ModelDemand parse_model(const yaml::Where& top, const YAML::Node& node, std::size_t index,
                        const EstimateDefaults& defaults, const fleet::Catalogue& catalogue) {
  yaml::Where where{top.origin, "model #" + std::to_string(index)};
  if (!node.IsMap()) yaml::fail_at(where, node, "", "expected a mapping with name, weights_gib, stacks, ...");
  ModelDemand m;
  m.name = yaml::get_string(where, node, "name", true);
  where.entry = "model '" + m.name + "'";
  yaml::check_keys(where, node,
                   {"name", "weights_gib", "kv_gib", "stacks", "demand_tokens_per_s", "min_tokens_per_s",
                    "min_replicas", "batch", "efficiency", "bytes_per_token", "tokens_per_s", "description"});
  m.weights_gib = positive(where, node, "weights_gib", true, 0, kMaxGib);
  m.kv_gib = yaml::get_number(where, node, "kv_gib", false, 0);
  if (m.kv_gib > kMaxGib) yaml::fail_at(where, node["kv_gib"], "kv_gib", "is implausibly large (a typo?)");
  const auto stacks = yaml::get_list(where, node, "stacks", true);
  if (stacks.size() == 0) yaml::fail_at(where, stacks, "stacks", "the model's engine must support at least one stack");
  for (const auto& s : stacks) {
    const auto text = s.IsScalar() ? s.as<std::string>() : std::string();
    if (std::find(std::begin(kStacks), std::end(kStacks), text) == std::end(kStacks)) {
      yaml::fail_at(where, s, "stacks",
                    "unknown stack '" + text + "' (allowed: cuda, cann, bang, dtk, hip, musa, maca, corex, xpu, cpu)");
    }
    if (!m.supports(text)) m.stacks.push_back(text);
  }
  m.demand_tokens_per_s = yaml::get_number(where, node, "demand_tokens_per_s", true);
  if (m.demand_tokens_per_s > kMaxTokensPerS) {
    yaml::fail_at(where, node["demand_tokens_per_s"], "demand_tokens_per_s", "is implausibly large (a typo?)");
  }
  m.min_tokens_per_s = yaml::get_number(where, node, "min_tokens_per_s", false, 0);
  if (m.min_tokens_per_s > m.demand_tokens_per_s) {
    yaml::fail_at(where, node["min_tokens_per_s"], "min_tokens_per_s",
                  "is above demand_tokens_per_s; planned throughput never exceeds the demand");
  }
  m.min_replicas = yaml::get_count(where, node, "min_replicas", false, 0, 1'000'000);
  m.batch = positive(where, node, "batch", false, defaults.batch, 1e6);
  m.efficiency = fraction(where, node, "efficiency", defaults.efficiency);
  if (node["bytes_per_token"].IsDefined()) {
    m.bytes_per_token = positive(where, node, "bytes_per_token", true, 0, kMaxGib * kBytesPerGib);
  }
  const auto tps = node["tokens_per_s"];
  if (tps.IsDefined() && !tps.IsNull()) {
    if (!tps.IsMap()) yaml::fail_at(where, tps, "tokens_per_s", "expected a mapping of chip id to tokens/s");
    for (const auto& item : tps) {
      const auto chip = item.first.IsScalar() ? item.first.as<std::string>() : std::string();
      const auto spec = catalogue.find(chip);
      if (!spec) {
        yaml::fail_at(where, item.first, "tokens_per_s",
                      "unknown chip '" + chip + "' (see `mixserve chips` for catalogue ids)");
      }
      if (!m.supports(spec->stack)) {
        yaml::fail_at(where, item.first, "tokens_per_s",
                      "chip '" + chip + "' runs stack '" + spec->stack + "', which the model's stacks do not list");
      }
      const yaml::Where inner{where.origin, where.entry + ": tokens_per_s"};
      m.tokens_per_s[chip] = positive(inner, tps, chip, true, 0, kMaxTokensPerS);
    }
  }
  return m;
}

}  // namespace

bool ModelDemand::supports(const std::string& stack) const {
  return std::find(stacks.begin(), stacks.end(), stack) != stacks.end();
}

std::optional<ReplicaShape> replica_shape(const ModelDemand& model, const fleet::ChipSpec& chip,
                                          const EstimateDefaults& defaults) {
  if (!model.supports(chip.stack)) return std::nullopt;
  const double usable = chip.memory_gib.value * defaults.memory_fraction;
  if (!(usable > 0)) return std::nullopt;
  ReplicaShape shape;
  // The small relative slack keeps 64 GiB of a 64 GiB budget at one device despite rounding.
  shape.devices = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(model.memory_gib() / usable - 1e-9)));
  const auto measured = model.tokens_per_s.find(chip.id);
  if (measured != model.tokens_per_s.end()) {
    shape.tokens_per_s = measured->second;
    shape.estimate = false;
    return shape;
  }
  // Decode is memory-bound: each step streams the replica's weights and KV cache once from the
  // devices' memory and yields one token per sequence of the batch (docs/placement.md).
  const double bytes_per_token =
      model.bytes_per_token ? *model.bytes_per_token : model.memory_gib() * kBytesPerGib / model.batch;
  const double bandwidth = chip.memory_bandwidth_gbs.value * 1e9 * static_cast<double>(shape.devices);
  shape.tokens_per_s = model.efficiency * bandwidth / bytes_per_token;
  shape.estimate = true;
  return shape;
}

Demand parse_demand(const std::string& text, const std::string& origin, const fleet::Catalogue& catalogue) {
  const auto root = yaml::parse(text, origin);
  const yaml::Where top{origin, ""};
  if (root.IsNull()) yaml::fail_at(top, root, "models", "the file is empty; expected a 'models' list");
  yaml::check_keys(top, root, {"models", "defaults", "name", "description"});
  Demand demand;
  demand.defaults = parse_defaults(top, root["defaults"]);
  const auto models = yaml::get_list(top, root, "models", true);
  if (models.size() == 0) yaml::fail_at(top, models, "models", "the demand lists no models");
  std::set<std::string> names;
  std::size_t index = 0;
  for (const auto& node : models) {
    auto model = parse_model(top, node, ++index, demand.defaults, catalogue);
    if (!names.insert(model.name).second) {
      yaml::fail_at({origin, "model '" + model.name + "'"}, node["name"], "name", "duplicate model name");
    }
    demand.models.push_back(std::move(model));
  }
  return demand;
}

Demand load_demand(const std::string& path, const fleet::Catalogue& catalogue) {
  return parse_demand(yaml::read_file(path), path, catalogue);
}

}  // namespace mixserve::gateway

// The serving demand a placement must meet (demand.yaml): per model the memory of one replica, the
// software stacks its engine runs on, the traffic, hard requirements and throughput figures.
// Schema and the throughput estimate: docs/placement.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fleet/catalogue.h"

namespace mixserve::gateway {

/// Defaults for the memory-bandwidth throughput estimate, overridable per model.
struct EstimateDefaults {
  double batch = 32;             ///< concurrent sequences one replica decodes per step, > 0
  double efficiency = 0.5;       ///< fraction of peak memory bandwidth a decode step reaches, in (0, 1]
  double memory_fraction = 0.9;  ///< fraction of a device's memory a replica may fill, in (0, 1]
};

/// One model to serve.
struct ModelDemand {
  std::string name;                 ///< unique within the demand file
  double weights_gib = 0;           ///< weights of one replica, GiB, > 0
  double kv_gib = 0;                ///< KV-cache reserve of one replica, GiB, >= 0
  std::vector<std::string> stacks;  ///< software stacks the model's engine supports ("cuda", "cann", ...)
  double demand_tokens_per_s = 0;   ///< traffic to serve, tokens/s, >= 0
  double min_tokens_per_s = 0;      ///< hard requirement on planned tokens/s (0: none), <= demand
  std::int64_t min_replicas = 0;    ///< hard requirement on replicas (0: none)
  double batch = 32;                ///< estimate: sequences per step, > 0 (file: from defaults unless given)
  double efficiency = 0.5;          ///< estimate: bandwidth efficiency, in (0, 1] (file: from defaults unless given)
  std::optional<double> bytes_per_token;       ///< estimate: bytes read per generated token; default memory/batch
  std::map<std::string, double> tokens_per_s;  ///< measured tokens/s of ONE replica, by catalogue chip id

  /// Memory of one replica: weights + KV reserve, GiB.
  double memory_gib() const { return weights_gib + kv_gib; }
  /// Whether the model's engine runs on `stack`.
  bool supports(const std::string& stack) const;
};

/// The whole demand file.
struct Demand {
  EstimateDefaults defaults;        ///< as read (already applied to each model)
  std::vector<ModelDemand> models;  ///< in file order
};

/// How one replica of a model runs on one chip.
struct ReplicaShape {
  std::int64_t devices = 0;  ///< devices of one group a replica occupies: ceil(memory / usable chip memory)
  double tokens_per_s = 0;   ///< throughput of one replica, tokens/s
  bool estimate = true;      ///< true: from the bandwidth estimate; false: from the model's tokens_per_s
};

/// The replica shape of `model` on `chip`, or nullopt when the chip's stack is unsupported or the
/// chip has no memory figure. `devices` may exceed any group; callers check the group size.
std::optional<ReplicaShape> replica_shape(const ModelDemand& model, const fleet::ChipSpec& chip,
                                          const EstimateDefaults& defaults);

/// Parses demand YAML text; throws kInvalidArgument naming `origin`, the model and the key (unknown keys,
/// unknown chip ids in tokens_per_s, unknown stacks, min_tokens_per_s above the demand, ...).
Demand parse_demand(const std::string& text, const std::string& origin, const fleet::Catalogue& catalogue);
/// Reads and parses a demand file.
Demand load_demand(const std::string& path, const fleet::Catalogue& catalogue);

}  // namespace mixserve::gateway

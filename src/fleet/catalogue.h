// The chip catalogue: every accelerator (and generic CPU) a fleet may hold, with vendor, country of
// origin, software stack and published figures, each figure with its source. Loaded from
// data/chips.yaml (schema: docs/chips.md) plus optional user override files.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mixserve::fleet {

/// One published figure with where it comes from.
struct Figure {
  double value = 0;       ///< in the unit the field names (GiB, GB/s, TFLOPS, W)
  std::string source;     ///< URL or document the figure comes from
  bool estimate = false;  ///< true when the figure is a vendor claim not independently published, or an estimate
};

/// One chip model.
struct ChipSpec {
  std::string id;                  ///< catalogue id, e.g. "huawei-ascend-910b"
  std::string vendor;              ///< "Huawei"
  std::string model;               ///< "Ascend 910B"
  std::string country;             ///< ISO 3166-1 alpha-2 country of the designer, e.g. "CN", "US"
  std::string stack;               ///< cuda | cann | bang | dtk | musa | maca | corex | xpu | cpu
  std::string memory_type;         ///< "HBM3", "GDDR6X", "DDR5", ...
  Figure memory_gib;               ///< device memory in GiB
  Figure memory_bandwidth_gbs;     ///< GB/s
  Figure fp16_tflops;              ///< dense FP16 peak
  Figure bf16_tflops;              ///< dense BF16 peak
  Figure int8_tops;                ///< dense INT8 peak
  Figure tdp_w;                    ///< watts
  std::vector<std::string> match;  ///< case-insensitive substrings of device names reported by vendor tools
  bool accelerator = true;         ///< false for generic CPUs: they never count in domestic-share rules
};

/// The set of known chips.
class Catalogue {
 public:
  /// The catalogue shipped with mixserve (data/chips.yaml compiled in).
  static Catalogue builtin();
  /// Parses a catalogue file; throws kInvalidArgument naming file, chip id, key and problem.
  static Catalogue load(const std::string& path);
  /// Parses catalogue YAML text; `origin` names it in errors. Throws like load().
  static Catalogue parse(const std::string& text, const std::string& origin);
  /// Adds or replaces chips from an override file (same schema; partial entries update fields).
  void apply_overrides(const std::string& path);
  /// apply_overrides() on YAML text; `origin` names it in errors.
  void apply_overrides_text(const std::string& text, const std::string& origin);
  /// The chip with `id`, or nullopt.
  std::optional<ChipSpec> find(const std::string& id) const;
  /// Whether `id` was designed in `home_country` (default CN). Unknown ids are not domestic.
  bool is_domestic(const std::string& id, const std::string& home_country = "CN") const;
  /// The catalogue id whose `match` patterns fit a device name reported by a vendor tool
  /// (longest pattern wins), or nullopt. Patterns match at word boundaries, a trailing '*' allows any
  /// suffix, and a vendor the catalogue knows narrows the search (docs/chips.md).
  std::optional<std::string> match(const std::string& vendor, const std::string& device_name) const;
  /// All chips, ordered by id.
  const std::map<std::string, ChipSpec>& chips() const { return chips_; }

 private:
  std::map<std::string, ChipSpec> chips_;
};

}  // namespace mixserve::fleet

#include "fleet/catalogue.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "common/error.h"
#include "fleet/builtin_chips.h"
#include "fleet/yaml_check.h"

namespace mixserve::fleet {
namespace {

// Software stacks a chip may name (docs/chips.md); dtk is Hygon's HIP-based toolkit, hip is accepted
// for other ROCm-derived stacks.
constexpr std::string_view kStacks[] = {"cuda", "cann", "bang", "dtk", "hip", "musa", "maca", "corex", "xpu", "cpu"};

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool valid_id(const std::string& id) {
  if (id.empty() || id.front() == '-' || id.back() == '-') return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

bool valid_country(const std::string& c) {
  return c.size() == 2 && std::isupper(static_cast<unsigned char>(c[0])) &&
         std::isupper(static_cast<unsigned char>(c[1]));
}

Figure parse_figure(const yaml::Where& where, const YAML::Node& chip, std::string_view key) {
  const auto node = chip[std::string(key)];
  if (!node.IsMap()) yaml::fail_at(where, node, key, "expected {value: <number>, source: <text>, estimate: <bool>}");
  const yaml::Where inner{where.origin, where.entry + " " + std::string(key)};
  yaml::check_keys(inner, node, {"value", "source", "estimate"});
  Figure f;
  f.value = yaml::get_number(inner, node, "value", true);
  f.source = yaml::get_string(inner, node, "source", true);
  f.estimate = yaml::get_bool(inner, node, "estimate", false);
  return f;
}

// Reads one chip entry into `spec`; keys absent from the entry keep the values already in `spec`
// (used for overrides), and `complete` demands every required key.
void parse_chip(const yaml::Where& where, const YAML::Node& node, ChipSpec& spec, bool complete) {
  yaml::check_keys(where, node,
                   {"id", "vendor", "model", "country", "stack", "accelerator", "memory_type", "memory_gib",
                    "memory_bandwidth_gbs", "fp16_tflops", "bf16_tflops", "int8_tops", "tdp_w", "match", "notes"});
  auto text = [&](std::string_view key, std::string& field) {
    field = yaml::get_string(where, node, key, complete, field);
  };
  text("vendor", spec.vendor);
  text("model", spec.model);
  text("country", spec.country);
  text("stack", spec.stack);
  text("memory_type", spec.memory_type);
  if (!valid_country(spec.country)) {
    yaml::fail_at(where, node["country"], "country",
                  "expected a two-letter upper-case ISO 3166-1 code, got '" + spec.country + "'");
  }
  if (std::find(std::begin(kStacks), std::end(kStacks), spec.stack) == std::end(kStacks)) {
    yaml::fail_at(
        where, node["stack"], "stack",
        "unknown stack '" + spec.stack + "' (allowed: cuda, cann, bang, dtk, hip, musa, maca, corex, xpu, cpu)");
  }
  spec.accelerator = yaml::get_bool(where, node, "accelerator", spec.accelerator);
  const std::pair<std::string_view, Figure*> figures[] = {
      {"memory_gib", &spec.memory_gib},   {"memory_bandwidth_gbs", &spec.memory_bandwidth_gbs},
      {"fp16_tflops", &spec.fp16_tflops}, {"bf16_tflops", &spec.bf16_tflops},
      {"int8_tops", &spec.int8_tops},     {"tdp_w", &spec.tdp_w}};
  for (const auto& [key, field] : figures) {
    if (node[std::string(key)].IsDefined()) {
      *field = parse_figure(where, node, key);
    } else if (complete) {
      yaml::fail_at(where, node, key, "required key is missing");
    }
  }
  const auto match = node["match"];
  if (match.IsDefined()) {
    if (!match.IsSequence()) yaml::fail_at(where, match, "match", "expected a list of name patterns");
    spec.match.clear();
    for (const auto& m : match) {
      if (!m.IsScalar() || m.as<std::string>().empty() || m.as<std::string>() == "*") {
        yaml::fail_at(where, m, "match", "each pattern must be a non-empty string other than '*'");
      }
      spec.match.push_back(m.as<std::string>());
    }
  }
}

// Parses a catalogue document. With a `base`, entries whose id exists there are partial updates.
std::map<std::string, ChipSpec> parse_document(const std::string& text, const std::string& origin,
                                               const std::map<std::string, ChipSpec>* base) {
  const auto root = yaml::parse(text, origin);
  const yaml::Where top{origin, ""};
  if (!root.IsMap()) yaml::fail_at(top, root, "", "expected a mapping with a 'chips' list");
  yaml::check_keys(top, root, {"version", "chips"});
  const auto version = yaml::get_count(top, root, "version", false, 1, 1000);
  if (version != 1) yaml::fail_at(top, root["version"], "version", "unsupported version (this build reads version 1)");
  const auto chips = yaml::get_list(top, root, "chips", true);
  std::map<std::string, ChipSpec> out;
  std::size_t index = 0;
  for (const auto& node : chips) {
    ++index;
    yaml::Where where{origin, "chip #" + std::to_string(index)};
    if (!node.IsMap()) yaml::fail_at(where, node, "", "expected a mapping");
    const auto id = yaml::get_string(where, node, "id", true);
    where.entry = "chip '" + id + "'";
    if (!valid_id(id)) yaml::fail_at(where, node["id"], "id", "ids use lower-case letters, digits and '-'");
    if (out.count(id)) yaml::fail_at(where, node, "id", "duplicate chip id in this file");
    ChipSpec spec;
    bool complete = true;
    if (base) {
      if (auto it = base->find(id); it != base->end()) {
        spec = it->second;
        complete = false;
      }
    }
    spec.id = id;
    parse_chip(where, node, spec, complete);
    out.emplace(id, std::move(spec));
  }
  return out;
}

// Whether `pattern` occurs in `name` (both lower-case) at word boundaries; a trailing '*' lets the
// name continue with anything (e.g. "910b*" fits "910b3"). Boundaries keep "h20" off "h200".
bool pattern_fits(const std::string& name, std::string pattern) {
  const bool open_end = !pattern.empty() && pattern.back() == '*';
  if (open_end) pattern.pop_back();
  if (pattern.empty()) return false;
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  for (std::size_t pos = name.find(pattern); pos != std::string::npos; pos = name.find(pattern, pos + 1)) {
    const bool left = pos == 0 || !alnum(name[pos - 1]) || !alnum(pattern.front());
    const std::size_t end = pos + pattern.size();
    const bool right = open_end || end == name.size() || !alnum(name[end]) || !alnum(pattern.back());
    if (left && right) return true;
  }
  return false;
}

}  // namespace

Catalogue Catalogue::builtin() {
  static const Catalogue shipped = parse(kBuiltinChipsYaml, "<builtin data/chips.yaml>");
  return shipped;
}

Catalogue Catalogue::load(const std::string& path) {
  return parse(yaml::read_file(path), path);
}

Catalogue Catalogue::parse(const std::string& text, const std::string& origin) {
  Catalogue c;
  c.chips_ = parse_document(text, origin, nullptr);
  return c;
}

void Catalogue::apply_overrides(const std::string& path) {
  apply_overrides_text(yaml::read_file(path), path);
}

void Catalogue::apply_overrides_text(const std::string& text, const std::string& origin) {
  auto updated = parse_document(text, origin, &chips_);
  for (auto& [id, spec] : updated) chips_[id] = std::move(spec);
}

std::optional<ChipSpec> Catalogue::find(const std::string& id) const {
  auto it = chips_.find(id);
  if (it == chips_.end()) return std::nullopt;
  return it->second;
}

bool Catalogue::is_domestic(const std::string& id, const std::string& home_country) const {
  auto it = chips_.find(id);
  if (it == chips_.end()) return false;
  return lower(it->second.country) == lower(home_country);
}

std::optional<std::string> Catalogue::match(const std::string& vendor, const std::string& device_name) const {
  const auto name = lower(device_name);
  const auto want_vendor = lower(vendor);
  // The vendor narrows the search only when it is a vendor the catalogue knows.
  bool vendor_known = false;
  for (const auto& [id, spec] : chips_) vendor_known = vendor_known || lower(spec.vendor) == want_vendor;
  std::optional<std::string> best;
  std::size_t best_len = 0;
  for (const auto& [id, spec] : chips_) {
    if (vendor_known && lower(spec.vendor) != want_vendor) continue;
    for (const auto& pattern : spec.match) {
      const auto p = lower(pattern);
      const std::size_t len = p.back() == '*' ? p.size() - 1 : p.size();
      if (len > best_len && pattern_fits(name, p)) {
        best = id;
        best_len = len;
      }
    }
  }
  return best;
}

}  // namespace mixserve::fleet

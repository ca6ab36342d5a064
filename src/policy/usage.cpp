#include "policy/usage.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "common/error.h"
#include "fleet/yaml_check.h"
#include "policy/report.h"

namespace mixserve::policy {

namespace yaml = fleet::yaml;

Usage parse_usage(const std::string& text, const std::string& origin, const fleet::Fleet& fleet,
                  const fleet::Catalogue& catalogue) {
  const auto root = yaml::parse(text, origin);
  const yaml::Where top{origin, ""};
  if (root.IsNull()) yaml::fail_at(top, root, "nodes", "the file is empty; expected a 'nodes' list");
  yaml::check_keys(top, root, {"period", "nodes"});
  Usage usage;
  const auto period = root["period"];
  if (period.IsDefined()) {
    const yaml::Where pwhere{origin, "period"};
    yaml::check_keys(pwhere, period, {"from", "to"});
    usage.from = yaml::get_string(pwhere, period, "from", false);
    usage.to = yaml::get_string(pwhere, period, "to", false);
  }
  const auto nodes = yaml::get_list(top, root, "nodes", true);
  std::size_t index = 0;
  for (const auto& n : nodes) {
    yaml::Where where{origin, "usage node #" + std::to_string(++index)};
    if (!n.IsMap()) yaml::fail_at(where, n, "", "expected a mapping with name and devices");
    const auto name = yaml::get_string(where, n, "name", true);
    where.entry = "usage node '" + name + "'";
    yaml::check_keys(where, n, {"name", "devices"});
    if (!fleet.find(name)) yaml::fail_at(where, n["name"], "name", "no node of this name in the fleet");
    const auto devices = yaml::get_list(where, n, "devices", true);
    std::size_t d_index = 0;
    for (const auto& d : devices) {
      const yaml::Where dwhere{origin, where.entry + " device #" + std::to_string(++d_index)};
      if (usage.entries.size() >= fleet::kMaxDeviceEntries) {
        yaml::fail_at(dwhere, d, "", "more than " + std::to_string(fleet::kMaxDeviceEntries) + " usage entries");
      }
      yaml::check_keys(dwhere, d, {"chip", "device_hours", "served_tokens"});
      UsageEntry entry;
      entry.node = name;
      entry.chip = yaml::get_string(dwhere, d, "chip", true);
      const bool listed_unknown =
          std::binary_search(fleet.unknown_chips.begin(), fleet.unknown_chips.end(), entry.chip);
      if (!catalogue.find(entry.chip) && !listed_unknown) {
        yaml::fail_at(dwhere, d["chip"], "chip", "unknown chip id '" + entry.chip + "'");
      }
      if (!d["device_hours"].IsDefined() && !d["served_tokens"].IsDefined()) {
        yaml::fail_at(dwhere, d, "device_hours", "give device_hours, served_tokens or both");
      }
      entry.device_hours = yaml::get_number(dwhere, d, "device_hours", false);
      entry.served_tokens = yaml::get_number(dwhere, d, "served_tokens", false);
      usage.entries.push_back(std::move(entry));
    }
  }
  return usage;
}

Usage load_usage(const std::string& path, const fleet::Fleet& fleet, const fleet::Catalogue& catalogue) {
  return parse_usage(yaml::read_file(path), path, fleet, catalogue);
}

namespace {

[[noreturn]] void bad_sample(int64_t seq, const std::string& problem) {
  fail(ErrorCode::kDataLoss, "ledger record ", seq, " (usage_sample): ", problem);
}

std::string sample_string(int64_t seq, const nlohmann::json& p, const char* key) {
  const auto it = p.find(key);
  if (it == p.end()) bad_sample(seq, std::string("missing \"") + key + "\"");
  if (!it->is_string() || it->get<std::string>().empty()) {
    bad_sample(seq, std::string("\"") + key + "\" is not a non-empty string");
  }
  return it->get<std::string>();
}

// A time as the gateway writes it (ledger form) or with whole seconds; returned in the ledger form.
std::string sample_time(int64_t seq, const nlohmann::json& p, const char* key) {
  const auto text = sample_string(seq, p, key);
  try {
    return parse_report_time(text, key);
  } catch (const Error&) {
    bad_sample(seq, std::string("\"") + key + "\" '" + text + "' is not a UTC time (YYYY-MM-DDTHH:MM:SS.ffffffZ)");
  }
}

std::optional<double> sample_amount(int64_t seq, const nlohmann::json& p, const char* key) {
  const auto it = p.find(key);
  if (it == p.end() || it->is_null()) return std::nullopt;
  if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0) {
    bad_sample(seq, std::string("\"") + key + "\" is not a number >= 0");
  }
  return it->get<double>();
}

std::string seq_list(const std::vector<int64_t>& seqs) {
  constexpr std::size_t kShown = 3;
  std::string out = seqs.size() == 1 ? "seq " : "seqs ";
  for (std::size_t i = 0; i < seqs.size() && i < kShown; ++i) out += (i ? ", " : "") + std::to_string(seqs[i]);
  if (seqs.size() > kShown) out += " and " + std::to_string(seqs.size() - kShown) + " more";
  return out;
}

std::optional<int64_t> bound_micros(const std::string& time, const char* which) {
  if (time.empty()) return std::nullopt;
  const auto micros = ledger_time_micros(time);
  if (!micros) fail(ErrorCode::kInvalidArgument, "usage window ", which, " '", time, "' is not a ledger time");
  return micros;
}

}  // namespace

UsageSample read_usage_sample(const LedgerRecord& record) {
  const auto p = nlohmann::json::parse(record.payload, nullptr, false);
  if (p.is_discarded()) bad_sample(record.seq, "the payload is not valid JSON");
  if (!p.is_object()) bad_sample(record.seq, "the payload is not a JSON object");
  UsageSample s;
  s.seq = record.seq;
  s.node = sample_string(record.seq, p, "node");
  s.chip = sample_string(record.seq, p, "chip");
  s.from = sample_time(record.seq, p, "from");
  s.to = sample_time(record.seq, p, "to");
  s.from_micros = *ledger_time_micros(s.from);
  s.to_micros = *ledger_time_micros(s.to);
  if (s.to_micros < s.from_micros) bad_sample(record.seq, "\"to\" " + s.to + " is before \"from\" " + s.from);
  const auto tokens = sample_amount(record.seq, p, "served_tokens");
  const auto hours = sample_amount(record.seq, p, "device_hours");
  if (!tokens && !hours) bad_sample(record.seq, "give \"served_tokens\", \"device_hours\" or both");
  s.served_tokens = tokens.value_or(0);
  s.device_hours = hours.value_or(0);
  if (const auto it = p.find("domestic"); it != p.end() && !it->is_null()) {
    if (!it->is_boolean()) bad_sample(record.seq, "\"domestic\" is not true or false");
    s.domestic = it->get<bool>();
  }
  return s;
}

double usage_overlap(const UsageSample& sample, std::optional<int64_t> from_micros, std::optional<int64_t> to_micros) {
  const int64_t lo = from_micros ? std::max(sample.from_micros, *from_micros) : sample.from_micros;
  const int64_t hi = to_micros ? std::min(sample.to_micros, *to_micros) : sample.to_micros;
  if (sample.to_micros == sample.from_micros) {  // an instant: in or out
    const bool in =
        (!from_micros || sample.from_micros >= *from_micros) && (!to_micros || sample.from_micros < *to_micros);
    return in ? 1.0 : 0.0;
  }
  if (hi <= lo) return 0.0;
  return static_cast<double>(hi - lo) / static_cast<double>(sample.to_micros - sample.from_micros);
}

LedgerUsage usage_from_records(const std::vector<LedgerRecord>& records, const std::string& from_time,
                               const std::string& to_time, const fleet::Fleet& fleet,
                               const fleet::Catalogue& catalogue) {
  const auto lo = bound_micros(from_time, "start");
  const auto hi = bound_micros(to_time, "end");
  if (lo && hi && *lo >= *hi) {
    fail(ErrorCode::kInvalidArgument, "the usage window is empty: ", from_time, " is not before ", to_time);
  }
  LedgerUsage out;
  std::map<std::pair<std::string, std::string>, UsageEntry> sums;
  std::map<std::string, std::vector<int64_t>> unknown_nodes;
  std::map<std::string, int64_t> retired;
  std::set<std::pair<std::string, std::string>> noted;  // (node, chip) already warned about
  std::map<std::string, bool> chip_domestic;            // resolved once per chip
  const std::string kind = std::string(record_kind_name(RecordKind::kUsageSample));
  std::string first, last;
  for (const auto& record : records) {
    if (record.kind != kind || (!from_time.empty() && record.time < from_time)) continue;
    const bool after_window = !to_time.empty() && record.time >= to_time;
    UsageSample s;
    try {
      s = read_usage_sample(record);
    } catch (const Error& e) {
      if (!after_window) throw;
      // Written after the window: it straddles the end only if the writer's clock lagged; say so, do not fail.
      out.warnings.push_back(std::string(e.what()) + "; written after the window end, not counted");
      continue;
    }
    const double fraction = usage_overlap(s, lo, hi);
    if (fraction <= 0) continue;
    out.samples += 1;
    if (fraction < 1) out.prorated += 1;
    if (first.empty() || s.from < first) first = s.from;
    if (last.empty() || s.to > last) last = s.to;
    const auto* node = fleet.find(s.node);
    if (!node) {
      unknown_nodes[s.node].push_back(s.seq);
      continue;
    }
    if (!catalogue.find(s.chip) &&
        !std::binary_search(fleet.unknown_chips.begin(), fleet.unknown_chips.end(), s.chip)) {
      fail(ErrorCode::kInvalidArgument, "ledger record ", s.seq, " (usage_sample): unknown chip id '", s.chip,
           "' on node '", s.node, "': add it to the catalogue with --catalogue");
    }
    if (node->state == fleet::NodeState::kRetired) retired[s.node] += 1;
    const auto key = std::make_pair(s.node, s.chip);
    if (noted.insert(key).second) {
      const bool installed = std::any_of(node->devices.begin(), node->devices.end(),
                                         [&](const fleet::DeviceGroup& g) { return g.chip == s.chip; });
      if (!installed) {
        out.warnings.push_back("node '" + s.node + "' has no " + s.chip + " in the fleet, but usage_sample " +
                               std::to_string(s.seq) + " says it served on one; counted as the sample says");
      }
      auto [it, fresh] = chip_domestic.emplace(s.chip, false);
      if (fresh) it->second = catalogue.is_domestic(s.chip, fleet.home_country);
      if (s.domestic && *s.domestic != it->second) {
        out.warnings.push_back("usage_sample " + std::to_string(s.seq) + " marks " + s.chip + " as " +
                               (*s.domestic ? "domestic" : "foreign") + "; the catalogue (home country " +
                               fleet.home_country + ") says " + (it->second ? "domestic" : "foreign") +
                               ", which is what counts");
      }
    }
    auto& e = sums[key];
    e.node = s.node;
    e.chip = s.chip;
    e.device_hours += s.device_hours * fraction;
    e.served_tokens += s.served_tokens * fraction;
  }
  if (!unknown_nodes.empty()) {
    std::string list;
    for (const auto& [name, seqs] : unknown_nodes) {
      list += (list.empty() ? "" : ", ") + ("'" + name + "' (" + seq_list(seqs) + ")");
    }
    fail(ErrorCode::kInvalidArgument, "usage_sample records in the window name node(s) not in the fleet: ", list,
         ". Their usage cannot be placed in a pool or project, and the fleet's capacity misses them too: add the "
         "node(s) to the fleet file (a gateway upstream's name must be its fleet node's name)");
  }
  for (const auto& [name, n] : retired) {
    out.warnings.push_back("node '" + name + "' is retired: its " + std::to_string(n) +
                           " usage sample(s) in the window do not count");
  }
  if (out.samples == 0) {
    out.warnings.push_back("no usage_sample record overlaps the usage window: usage rules will be not-applicable");
  }
  out.usage.from = from_time.empty() ? first : from_time;
  out.usage.to = to_time.empty() ? last : to_time;
  for (auto& [key, entry] : sums) out.usage.entries.push_back(std::move(entry));
  return out;
}

LedgerUsage usage_from_ledger(const Ledger& ledger, const std::string& from_time, const std::string& to_time,
                              const fleet::Fleet& fleet, const fleet::Catalogue& catalogue) {
  const auto verify = ledger.verify();
  if (!verify.ok) {
    fail(ErrorCode::kDataLoss, "ledger ", ledger.path(), " is not intact (",
         verify.first_bad_seq ? "record " + std::to_string(*verify.first_bad_seq) + ": " : std::string(),
         verify.problem, "): usage is not taken from a ledger that fails verification");
  }
  return usage_from_records(ledger.records(from_time, ""), from_time, to_time, fleet, catalogue);
}

}  // namespace mixserve::policy

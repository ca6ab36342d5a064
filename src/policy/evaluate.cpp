#include "policy/evaluate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "common/error.h"

namespace mixserve::policy {

std::string_view outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kCompliant: return "compliant";
    case Outcome::kViolation: return "violation";
    case Outcome::kAuditViolation: return "audit-violation";
    case Outcome::kNotApplicable: return "not-applicable";
  }
  return "?";
}

int Evaluation::exit_code() const {
  for (const auto& r : results) {
    if (r.outcome == Outcome::kViolation) return 1;
  }
  return 0;
}

namespace {

// Per-chip facts resolved once per evaluation, so the per-rule passes do no string lookups.
struct ChipInfo {
  std::string id;
  bool known = false;
  bool accelerator = true;
  bool domestic = false;
  double fp16 = 0;
  double memory = 0;
};

struct Resolved {
  std::vector<ChipInfo> chips;
  std::vector<std::vector<int>> group_chip;  // [node][device group] -> index into chips
  std::unordered_map<std::string, int> index;

  int intern(const std::string& id, const fleet::Catalogue& catalogue, const std::string& home) {
    if (auto found = index.find(id); found != index.end()) return found->second;  // no string copy on hits
    auto [it, fresh] = index.emplace(id, static_cast<int>(chips.size()));
    if (fresh) {
      ChipInfo info;
      info.id = id;
      if (auto spec = catalogue.find(id)) {
        info.known = true;
        info.accelerator = spec->accelerator;
        info.domestic = catalogue.is_domestic(id, home);
        info.fp16 = spec->fp16_tflops.value;
        info.memory = spec->memory_gib.value;
      }
      chips.push_back(std::move(info));
    }
    return it->second;
  }
};

std::string fmt_amount(double x) {
  char buf[64];
  if (std::fabs(x - std::round(x)) < 1e-6 && std::fabs(x) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", std::round(x));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", x);
  }
  return buf;
}

std::string fmt_pct(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", share * 100);
  return buf;
}

// Threshold as written: 0.5 -> "50%", 2/3 -> "66.67%".
std::string fmt_threshold(double t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", t * 100);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s + "%";
}

struct BasisWords {
  const char* label;  // "domestic devices"
  const char* unit;   // "" or " TFLOPS"
  const char* thing;  // "device" (pluralised) or "device-hours"
};

BasisWords words(Basis basis) {
  switch (basis) {
    case Basis::kDeviceCount: return {"domestic devices", "", "device"};
    case Basis::kPeakFp16Tflops: return {"domestic peak FP16", " TFLOPS", "device"};
    case Basis::kMemoryGib: return {"domestic memory", " GiB", "device"};
    case Basis::kDeviceHours: return {"domestic device-hours", "", "device-hours"};
    case Basis::kServedTokens: return {"domestic served tokens", "", "tokens"};
  }
  return {"?", "", "?"};
}

std::string devices_word(std::int64_t n) {
  return n == 1 ? "device" : "devices";
}

std::string explain_fix(const RuleResult& r) {
  const auto& w = r.what_if;
  const auto bw = words(r.rule.basis);
  std::vector<std::string> options;
  if (basis_uses_usage(r.rule.basis)) {
    if (w.add_amount) options.push_back(fmt_amount(*w.add_amount) + " more domestic " + bw.thing);
    if (w.remove_amount) options.push_back(fmt_amount(*w.remove_amount) + " fewer foreign " + bw.thing);
  } else {
    if (w.add) {
      std::string s =
          std::to_string(w.add->count) + " more domestic " + devices_word(w.add->count) + " (" + w.add->chip;
      if (r.rule.basis != Basis::kDeviceCount) s += ", +" + fmt_amount(w.add->weight * w.add->count) + bw.unit;
      options.push_back(s + ")");
    }
    if (!w.remove.empty()) {
      std::string s = std::to_string(w.remove_devices) + " fewer foreign " + devices_word(w.remove_devices) + " (";
      for (std::size_t i = 0; i < w.remove.size(); ++i) {
        s += (i ? ", " : "") + w.remove[i].chip + " x" + std::to_string(w.remove[i].count);
      }
      options.push_back(s + "; " + w.remove_action + ")");
    }
  }
  std::string out;
  for (std::size_t i = 0; i < options.size(); ++i) out += (i ? " or " : "") + options[i];
  out = out.empty() ? "no single change restores compliance" : out + " needed";
  for (const auto& note : w.notes) out += " (" + note + ")";
  return out;
}

std::string explain(const RuleResult& r, bool scope_named_anywhere) {
  const auto bw = words(r.rule.basis);
  const auto req = std::string(r.rule.strict ? ">" : "\xe2\x89\xa5") + fmt_threshold(r.rule.min_domestic_share);
  const std::string strict = r.rule.strict ? " (strict)" : "";
  if (r.outcome == Outcome::kNotApplicable) {
    std::string s = "scope " + r.rule.scope.to_string() + " has nothing counted (0 of 0); rule not applicable";
    if (!scope_named_anywhere) s += ": no node in the fleet names it, check the spelling";
    return s;
  }
  std::string head = std::string(bw.label) + " " + fmt_amount(r.numerator) + " of " + fmt_amount(r.denominator) +
                     bw.unit + " (" + fmt_pct(*r.share) + ") ";
  if (r.unweighed_devices > 0) {
    std::string unknown;
    for (const auto& t : r.tallies) {
      if (!t.known) unknown += (unknown.empty() ? "" : ", ") + t.chip;
    }
    return head + "counting known chips only: " + std::to_string(r.unweighed_devices) + " " +
           devices_word(r.unweighed_devices) + " of unknown chips (" + unknown +
           ") cannot be weighed on this basis, so compliance cannot be shown";
  }
  if (r.compliant) {
    const double points = *r.margin * 100;
    char buf[48];
    std::snprintf(buf, sizeof buf, "%+.1f", points);
    return head + (r.rule.strict ? ">" : "\xe2\x89\xa5") + " required " + req + strict + ": margin " + buf + " points";
  }
  std::string s = head + (r.rule.strict ? "\xe2\x89\xa4" : "<") + " required " + req + strict + ": " + explain_fix(r);
  if (r.outcome == Outcome::kAuditViolation) s += " [audit only, not enforced]";
  return s;
}

RuleResult evaluate_rule(const Rule& rule, const fleet::Fleet& fleet, const Resolved& resolved,
                         const fleet::Catalogue& catalogue, const Usage* usage,
                         const std::unordered_map<std::string_view, const fleet::Node*>& by_name) {
  RuleResult r;
  r.rule = rule;
  std::vector<double> amount(resolved.chips.size(), 0);
  std::vector<std::int64_t> devices(resolved.chips.size(), 0);
  std::vector<char> seen(resolved.chips.size(), 0);
  if (basis_uses_usage(rule.basis)) {
    for (const auto& e : usage->entries) {
      auto it = by_name.find(e.node);
      if (it == by_name.end()) continue;  // node removed by a proposed change
      const auto* node = it->second;
      if (node->state == fleet::NodeState::kRetired || !rule.scope.contains(*node)) continue;
      const int c = resolved.index.at(e.chip);
      if (!resolved.chips[c].accelerator) continue;
      amount[c] += rule.basis == Basis::kDeviceHours ? e.device_hours : e.served_tokens;
      seen[c] = 1;
    }
  } else {
    for (std::size_t n = 0; n < fleet.nodes.size(); ++n) {
      const auto& node = fleet.nodes[n];
      if (!rule.counts_state(node.state) || !rule.scope.contains(node)) continue;
      for (std::size_t g = 0; g < node.devices.size(); ++g) {
        const int c = resolved.group_chip[n][g];
        if (!resolved.chips[c].accelerator) continue;
        devices[c] += node.devices[g].count;
        seen[c] = 1;
      }
    }
  }
  for (std::size_t c = 0; c < resolved.chips.size(); ++c) {
    if (!seen[c]) continue;
    const auto& info = resolved.chips[c];
    ChipTally t;
    t.chip = info.id;
    t.known = info.known;
    t.domestic = info.domestic;
    t.devices = devices[c];
    if (rule.basis == Basis::kPeakFp16Tflops) t.weight = info.fp16;
    if (rule.basis == Basis::kMemoryGib) t.weight = info.memory;
    t.amount = basis_uses_usage(rule.basis) ? amount[c] : static_cast<double>(t.devices) * t.weight;
    const bool weighed = info.known || rule.basis == Basis::kDeviceCount || basis_uses_usage(rule.basis);
    if (!weighed) {
      r.unweighed_devices += t.devices;
      t.amount = 0;
    }
    (t.domestic ? r.domestic_devices : r.foreign_devices) += t.devices;
    (t.domestic ? r.numerator : r.denominator) += t.amount;
    r.tallies.push_back(std::move(t));
  }
  r.denominator += r.numerator;
  std::sort(r.tallies.begin(), r.tallies.end(), [](const ChipTally& a, const ChipTally& b) { return a.chip < b.chip; });

  bool named = rule.scope.kind == Scope::Kind::kCenter;
  for (const auto& node : fleet.nodes) named = named || rule.scope.contains(node);
  if (r.denominator <= 0 && r.unweighed_devices == 0) {
    r.outcome = Outcome::kNotApplicable;
    r.compliant = true;
    r.explanation = explain(r, named);
    return r;
  }
  if (r.denominator > 0) {
    r.share = r.numerator / r.denominator;
    r.margin = *r.share - rule.min_domestic_share;
  } else {
    r.share = 0.0;
    r.margin = -rule.min_domestic_share;
  }
  r.compliant =
      r.unweighed_devices == 0 && share_holds(r.numerator, r.denominator, rule.min_domestic_share, rule.strict);
  if (r.compliant) {
    r.outcome = Outcome::kCompliant;
  } else {
    r.outcome = rule.mode == Mode::kAudit ? Outcome::kAuditViolation : Outcome::kViolation;
    if (r.unweighed_devices == 0) {
      r.what_if = compute_what_if(rule, r.numerator, r.denominator, r.tallies, catalogue, fleet.home_country);
    } else {
      r.what_if.needed = true;
      r.what_if.notes.push_back("add the unknown chips to the catalogue (--catalogue) so they can be weighed");
    }
  }
  r.explanation = explain(r, named);
  return r;
}

}  // namespace

Evaluation evaluate(const Policy& policy, const fleet::Fleet& fleet, const fleet::Catalogue& catalogue,
                    const Usage* usage) {
  for (const auto& rule : policy.rules) {
    if (basis_uses_usage(rule.basis) && usage == nullptr) {
      fail(ErrorCode::kInvalidArgument, "rule '", rule.name, "' uses basis ", basis_name(rule.basis),
           ", which needs usage data: pass --usage <usage.yaml> or --usage-ledger <ledger.db>");
    }
  }
  Resolved resolved;
  resolved.group_chip.resize(fleet.nodes.size());
  std::unordered_map<std::string_view, const fleet::Node*> by_name;
  by_name.reserve(fleet.nodes.size());
  for (std::size_t n = 0; n < fleet.nodes.size(); ++n) {
    by_name.emplace(fleet.nodes[n].name, &fleet.nodes[n]);
    for (const auto& g : fleet.nodes[n].devices) {
      resolved.group_chip[n].push_back(resolved.intern(g.chip, catalogue, fleet.home_country));
    }
  }
  if (usage) {
    for (const auto& e : usage->entries) resolved.intern(e.chip, catalogue, fleet.home_country);
  }
  Evaluation out;
  out.results.reserve(policy.rules.size());
  for (const auto& rule : policy.rules) {
    out.results.push_back(evaluate_rule(rule, fleet, resolved, catalogue, usage, by_name));
  }
  return out;
}

}  // namespace mixserve::policy

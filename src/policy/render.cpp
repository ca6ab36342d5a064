#include "policy/render.h"

#include <cstdio>

namespace mixserve::policy {

nlohmann::json rule_result_json(const RuleResult& r) {
  nlohmann::json j;
  j["rule"] = r.rule.name;
  j["compliant"] = r.compliant;
  j["outcome"] = outcome_name(r.outcome);
  j["mode"] = r.rule.mode == Mode::kEnforce ? "enforce" : "audit";
  j["basis"] = basis_name(r.rule.basis);
  j["scope"] = r.rule.scope.to_string();
  j["share"] = r.share ? nlohmann::json(*r.share) : nlohmann::json(nullptr);
  j["numerator"] = r.numerator;
  j["denominator"] = r.denominator;
  j["threshold"] = r.rule.min_domestic_share;
  j["strict"] = r.rule.strict;
  j["margin"] = r.margin ? nlohmann::json(*r.margin) : nlohmann::json(nullptr);
  j["explanation"] = r.explanation;
  j["devices"] = {{"domestic", r.domestic_devices}, {"foreign", r.foreign_devices}, {"unweighed", r.unweighed_devices}};
  auto chips = nlohmann::json::array();
  for (const auto& t : r.tallies) {
    chips.push_back(
        {{"chip", t.chip}, {"known", t.known}, {"domestic", t.domestic}, {"devices", t.devices}, {"amount", t.amount}});
  }
  j["chips"] = chips;
  const auto& w = r.what_if;
  if (!w.needed) {
    j["what_if"] = nullptr;
    return j;
  }
  nlohmann::json wj;
  wj["add"] =
      w.add ? nlohmann::json{{"chip", w.add->chip}, {"count", w.add->count}, {"amount", w.add->weight * w.add->count}}
            : nlohmann::json(nullptr);
  auto remove = nlohmann::json::array();
  for (const auto& item : w.remove) remove.push_back({{"chip", item.chip}, {"count", item.count}});
  wj["remove"] = remove;
  wj["remove_devices"] = w.remove_devices;
  wj["remove_action"] = w.remove_action;
  wj["add_amount"] = w.add_amount ? nlohmann::json(*w.add_amount) : nlohmann::json(nullptr);
  wj["remove_amount"] = w.remove_amount ? nlohmann::json(*w.remove_amount) : nlohmann::json(nullptr);
  wj["notes"] = w.notes;
  j["what_if"] = wj;
  return j;
}

nlohmann::json evaluation_json(const Evaluation& evaluation) {
  auto rules = nlohmann::json::array();
  for (const auto& r : evaluation.results) rules.push_back(rule_result_json(r));
  return {{"exit_code", evaluation.exit_code()}, {"rules", rules}};
}

std::string evaluation_table(const Evaluation& evaluation) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "%-24s %-16s %-18s %-8s %-16s %8s %10s\n", "RULE", "OUTCOME", "BASIS", "MODE",
                "SCOPE", "SHARE", "REQUIRED");
  out += line;
  for (const auto& r : evaluation.results) {
    char share[32] = "-";
    if (r.share) std::snprintf(share, sizeof share, "%.1f%%", *r.share * 100);
    char req[32];
    std::snprintf(req, sizeof req, "%s%.1f%%", r.rule.strict ? ">" : ">=", r.rule.min_domestic_share * 100);
    std::snprintf(line, sizeof line, "%-24s %-16s %-18s %-8s %-16s %8s %10s\n", r.rule.name.c_str(),
                  std::string(outcome_name(r.outcome)).c_str(), std::string(basis_name(r.rule.basis)).c_str(),
                  r.rule.mode == Mode::kEnforce ? "enforce" : "audit", r.rule.scope.to_string().c_str(), share, req);
    out += line;
  }
  out += "\n";
  for (const auto& r : evaluation.results) out += r.rule.name + ": " + r.explanation + "\n";
  return out;
}

}  // namespace mixserve::policy

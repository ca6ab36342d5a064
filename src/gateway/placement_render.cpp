// Placement results as JSON (schema: docs/placement.md) and as a table with reasons.
#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "gateway/placement.h"
#include "gateway/placement_problem.h"

namespace mixserve::gateway {
namespace {

using detail::format_number;

nlohmann::json share_or_null(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

std::string pad(const std::string& s, std::size_t width, bool right = false) {
  if (s.size() >= width) return s;
  const std::string fill(width - s.size(), ' ');
  return right ? fill + s : s + fill;
}

// "sh-a01 x2, sh-a02 x2, ... (+12 more nodes)" for one model's replicas on one chip.
std::string node_list(const std::vector<const Assignment*>& list, std::size_t shown) {
  std::string out;
  std::map<std::string, std::int64_t> per_node;
  std::vector<std::string> order;
  for (const auto* a : list) {
    if (per_node[a->node] == 0) order.push_back(a->node);
    per_node[a->node] += a->replicas;
  }
  for (std::size_t i = 0; i < order.size() && i < shown; ++i) {
    out += (i ? ", " : "") + order[i] + " x" + std::to_string(per_node[order[i]]);
  }
  if (order.size() > shown) out += ", ... (+" + std::to_string(order.size() - shown) + " more nodes)";
  return out;
}

}  // namespace

nlohmann::json placement_json(const PlacementResult& r) {
  nlohmann::json j;
  j["exit_code"] = r.exit_code();
  j["feasible"] = r.feasible;
  j["optimal"] = r.optimal;
  j["devices_minimal"] = r.devices_minimal;
  j["summary"] = {{"demand_tokens_per_s", r.demand_tokens_per_s},
                  {"planned_tokens_per_s", r.planned_tokens_per_s},
                  {"bound_tokens_per_s", r.bound_tokens_per_s},
                  {"gap", r.gap},
                  {"eligible_nodes", r.eligible_nodes},
                  {"eligible_devices", r.eligible_devices},
                  {"devices_used", r.devices_used},
                  {"classes", r.classes},
                  {"solves", r.solves}};
  j["models"] = nlohmann::json::array();
  for (const auto& m : r.models) {
    nlohmann::json mj = {{"name", m.name},
                         {"demand_tokens_per_s", m.demand_tokens_per_s},
                         {"planned_tokens_per_s", m.planned_tokens_per_s},
                         {"capacity_tokens_per_s", m.capacity_tokens_per_s},
                         {"replicas", m.replicas},
                         {"devices", m.devices},
                         {"min_tokens_per_s", m.min_tokens_per_s},
                         {"min_replicas", m.min_replicas},
                         {"limit", limit_name(m.limit)},
                         {"binding_rules", m.binding_rules},
                         {"reason", m.reason}};
    mj["assignments"] = nlohmann::json::array();
    for (const auto& a : m.assignments) {
      mj["assignments"].push_back({{"node", a.node},
                                   {"group", a.group},
                                   {"chip", a.chip},
                                   {"replicas", a.replicas},
                                   {"devices_per_replica", a.devices_per_replica},
                                   {"first_device", a.first_device},
                                   {"tokens_per_s_per_replica", a.tokens_per_s_per_replica},
                                   {"planned_tokens_per_s", a.planned_tokens_per_s},
                                   {"estimate", a.estimate}});
    }
    j["models"].push_back(std::move(mj));
  }
  j["rules"] = nlohmann::json::array();
  for (const auto& s : r.rules) {
    j["rules"].push_back({{"rule", s.rule.name},
                          {"mode", s.rule.mode == policy::Mode::kEnforce ? "enforce" : "audit"},
                          {"basis", std::string(policy::basis_name(s.rule.basis))},
                          {"scope", s.rule.scope.to_string()},
                          {"threshold", s.rule.min_domestic_share},
                          {"strict", s.rule.strict},
                          {"constraint", s.constraint},
                          {"share", share_or_null(s.share)},
                          {"numerator", s.numerator},
                          {"denominator", s.denominator},
                          {"holds", s.holds},
                          {"explanation", s.explanation}});
  }
  j["infeasibility"] = nlohmann::json::array();
  for (const auto& i : r.infeasibility) {
    j["infeasibility"].push_back(
        {{"limit", limit_name(i.limit)}, {"models", i.models}, {"rules", i.rules}, {"explanation", i.explanation}});
  }
  j["notes"] = r.notes;
  return j;
}

std::string placement_table(const PlacementResult& r) {
  std::string out;
  if (!r.feasible) {
    out += "placement infeasible: the hard requirements (min_tokens_per_s, min_replicas) cannot all be met on " +
           std::to_string(r.eligible_devices) + " eligible devices of " + std::to_string(r.eligible_nodes) + " nodes\n";
    for (const auto& i : r.infeasibility) out += "  [" + limit_name(i.limit) + "] " + i.explanation + "\n";
    for (const auto& n : r.notes) out += "note: " + n + "\n";
    return out;
  }
  out += "placement: " + std::to_string(r.models.size()) + (r.models.size() == 1 ? " model on " : " models on ") +
         std::to_string(r.eligible_nodes) + " eligible nodes, " + std::to_string(r.devices_used) + " of " +
         std::to_string(r.eligible_devices) + " devices used; planned " + format_number(r.planned_tokens_per_s, 1) +
         " of " + format_number(r.demand_tokens_per_s, 1) + " tokens/s demanded" +
         (r.optimal ? " (optimal)" : " (not proven optimal)") + "\n\n";
  std::size_t name_w = 5;
  for (const auto& m : r.models) name_w = std::max(name_w, m.name.size());
  out += pad("model", name_w) + "  " + pad("demand tok/s", 14, true) + "  " + pad("planned tok/s", 14, true) + "  " +
         pad("served", 7, true) + "  " + pad("replicas", 8, true) + "  " + pad("devices", 8, true) + "  limit\n";
  for (const auto& m : r.models) {
    const auto served =
        m.demand_tokens_per_s > 0 ? format_number(100 * m.planned_tokens_per_s / m.demand_tokens_per_s, 1) + "%" : "-";
    out += pad(m.name, name_w) + "  " + pad(format_number(m.demand_tokens_per_s, 1), 14, true) + "  " +
           pad(format_number(m.planned_tokens_per_s, 1), 14, true) + "  " + pad(served, 7, true) + "  " +
           pad(std::to_string(m.replicas), 8, true) + "  " + pad(std::to_string(m.devices), 8, true) + "  " +
           (m.limit == Limit::kNone ? "-" : limit_name(m.limit)) + "\n";
  }
  out += "\nplacement by chip:\n";
  for (const auto& m : r.models) {
    std::map<std::string, std::vector<const Assignment*>> by_chip;
    for (const auto& a : m.assignments) by_chip[a.chip].push_back(&a);
    if (by_chip.empty()) out += "  " + m.name + ": no replicas\n";
    for (const auto& [chip, list] : by_chip) {
      std::int64_t replicas = 0;
      double planned = 0;
      for (const auto* a : list) {
        replicas += a->replicas;
        planned += a->planned_tokens_per_s;
      }
      const auto* first = list.front();
      out += "  " + m.name + " on " + chip + ": " + std::to_string(replicas) +
             (replicas == 1 ? " replica x " : " replicas x ") + std::to_string(first->devices_per_replica) +
             (first->devices_per_replica == 1 ? " device, " : " devices, ") +
             format_number(first->tokens_per_s_per_replica, 1) + (first->estimate ? "*" : "") +
             " tokens/s each, planned " + format_number(planned, 1) + " tokens/s: " + node_list(list, 6) + "\n";
    }
  }
  out += "\nreasons:\n";
  for (const auto& m : r.models) out += "  " + m.name + ": " + m.reason + "\n";
  if (!r.rules.empty()) {
    out += "\ndomestic share of the plan:\n";
    std::size_t rule_w = 4;
    for (const auto& s : r.rules) rule_w = std::max(rule_w, s.rule.name.size());
    out += "  " + pad("rule", rule_w) + "  " + pad("mode", 7) + "  " + pad("share", 7, true) + "  " +
           pad("required", 9, true) + "  verdict\n";
    for (const auto& s : r.rules) {
      const auto share = s.share ? format_number(*s.share * 100, 1) + "%" : std::string("-");
      const auto required =
          std::string(s.rule.strict ? ">" : ">=") + format_number(s.rule.min_domestic_share * 100, 1) + "%";
      out += "  " + pad(s.rule.name, rule_w) + "  " + pad(s.constraint ? "enforce" : "audit", 7) + "  " +
             pad(share, 7, true) + "  " + pad(required, 9, true) + "  " + (s.holds ? "holds" : "below") + "  " +
             s.explanation.substr(0, s.explanation.find("; required")) + "\n";
    }
  }
  for (const auto& n : r.notes) out += "note: " + n + "\n";
  return out;
}

}  // namespace mixserve::gateway

#include "policy/measure.h"

#include <set>
#include <string>

#include "policy/evaluate.h"

namespace mixserve::policy {

std::vector<Measurement> measure(const fleet::Fleet& fleet, const fleet::Catalogue& catalogue, const Usage* usage) {
  std::vector<Scope> scopes{Scope{}};
  std::set<std::string> pools;
  std::set<std::string> projects;
  for (const auto& node : fleet.nodes) {
    if (!node.pool.empty()) pools.insert(node.pool);
    if (!node.project.empty()) projects.insert(node.project);
  }
  for (const auto& p : pools) scopes.push_back(Scope{Scope::Kind::kPool, p});
  for (const auto& p : projects) scopes.push_back(Scope{Scope::Kind::kProject, p});
  std::vector<Basis> bases{Basis::kDeviceCount, Basis::kPeakFp16Tflops, Basis::kMemoryGib};
  if (usage) {
    bases.push_back(Basis::kDeviceHours);
    bases.push_back(Basis::kServedTokens);
  }
  // Audit rules with threshold 0 always hold, so evaluate() does the counting and never a what-if search.
  Policy all;
  for (const auto& scope : scopes) {
    for (auto basis : bases) {
      Rule rule;
      rule.name = scope.to_string() + "/" + std::string(basis_name(basis));
      rule.min_domestic_share = 0;
      rule.basis = basis;
      rule.scope = scope;
      rule.mode = Mode::kAudit;
      all.rules.push_back(std::move(rule));
    }
  }
  const auto evaluation = evaluate(all, fleet, catalogue, usage);
  std::vector<Measurement> out;
  out.reserve(evaluation.results.size());
  for (const auto& r : evaluation.results) {
    Measurement m;
    m.scope = r.rule.scope;
    m.basis = r.rule.basis;
    m.numerator = r.numerator;
    m.denominator = r.denominator;
    m.unweighed_devices = r.unweighed_devices;
    if (r.denominator > 0) m.share = r.numerator / r.denominator;
    out.push_back(std::move(m));
  }
  return out;
}

nlohmann::json measurements_json(const std::vector<Measurement>& measurements) {
  auto out = nlohmann::json::array();
  for (const auto& m : measurements) {
    out.push_back({{"scope", m.scope.to_string()},
                   {"basis", basis_name(m.basis)},
                   {"share", m.share ? nlohmann::json(*m.share) : nlohmann::json(nullptr)},
                   {"numerator", m.numerator},
                   {"denominator", m.denominator},
                   {"unweighed", m.unweighed_devices}});
  }
  return out;
}

}  // namespace mixserve::policy

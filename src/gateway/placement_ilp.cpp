// The placement ILP over device-group classes, solved with GLPK's branch and cut (glp_intopt).
// Formulation: docs/placement.md, "The integer program".
#include <glpk.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "common/error.h"
#include "gateway/placement_problem.h"

namespace mixserve::gateway::detail {
namespace {

struct ProbDeleter {
  void operator()(glp_prob* p) const { glp_delete_prob(p); }
};

// Accumulates columns and rows, then loads the matrix in one call (GLPK's arrays are 1-based).
class Builder {
 public:
  Builder() : lp_(glp_create_prob()) {
    ia_.push_back(0);
    ja_.push_back(0);
    ar_.push_back(0);
  }
  glp_prob* get() const { return lp_.get(); }

  int add_col(bool integer, double lb, double ub, double obj) {
    const int j = glp_add_cols(lp_.get(), 1);
    if (integer) glp_set_col_kind(lp_.get(), j, GLP_IV);
    glp_set_col_bnds(lp_.get(), j, ub > lb ? GLP_DB : GLP_FX, lb, ub > lb ? ub : lb);
    glp_set_obj_coef(lp_.get(), j, obj);
    return j;
  }
  // A row lb <= sum coef * col <= ub; infinite bounds are open.
  void add_row(const std::vector<std::pair<int, double>>& terms, double lb, double ub) {
    const int i = glp_add_rows(lp_.get(), 1);
    const bool has_lb = std::isfinite(lb);
    const bool has_ub = std::isfinite(ub);
    int type = GLP_FR;
    if (has_lb && has_ub) {
      type = ub > lb ? GLP_DB : GLP_FX;
    } else if (has_lb) {
      type = GLP_LO;
    } else if (has_ub) {
      type = GLP_UP;
    }
    glp_set_row_bnds(lp_.get(), i, type, has_lb ? lb : 0.0, has_ub ? (has_lb && ub < lb ? lb : ub) : 0.0);
    for (const auto& [col, coef] : terms) {
      if (coef == 0) continue;
      ia_.push_back(i);
      ja_.push_back(col);
      ar_.push_back(coef);
    }
  }
  void load() { glp_load_matrix(lp_.get(), static_cast<int>(ia_.size() - 1), ia_.data(), ja_.data(), ar_.data()); }

 private:
  std::unique_ptr<glp_prob, ProbDeleter> lp_;
  std::vector<int> ia_;
  std::vector<int> ja_;
  std::vector<double> ar_;
};

constexpr double kInf = HUGE_VAL;

// Per-device weight of a chip on a capacity basis, normalised so the lightest counted chip weighs 1:
// then a plan exactly at a strict rule's threshold misses the row by at least kStrictMargin, ten
// times GLPK's primal feasibility tolerance (1e-7), and is rejected.
std::vector<double> basis_weights(const Problem& p, policy::Basis basis) {
  std::vector<double> w(p.chips.size(), 1.0);
  if (basis != policy::Basis::kPeakFp16Tflops && basis != policy::Basis::kMemoryGib) return w;
  double lightest = kInf;
  for (std::size_t k = 0; k < p.chips.size(); ++k) {
    const auto& spec = p.chips[k].spec;
    w[k] = basis == policy::Basis::kPeakFp16Tflops ? spec.fp16_tflops.value : spec.memory_gib.value;
    if (w[k] > 0 && p.chips[k].origin != Origin::kUncounted) lightest = std::min(lightest, w[k]);
  }
  if (std::isfinite(lightest)) {
    for (auto& x : w) x /= lightest;
  }
  return w;
}

// ---------------------------------------------------------------- solving
// Branch and bound runs from the LP relaxation with an incumbent found first: GLPK's own rounding
// rarely finds one on these problems (general integers, tight share rows), and without one its
// search can run for minutes. Incumbents: the caller's warm start (the previous phase's plan) and
// the best plan in the LP's neighbourhood (integral LP values fixed, fractional ones rounded either
// way), a small MIP. Limits are deterministic (nodes) with the wall clock as a guard.

using Clock = std::chrono::steady_clock;

struct MipOutcome {
  Solution::Status status = Solution::Status::kUnknown;
  std::vector<double> cols;  // 1-based column values
  double objective = 0;
  double lp_objective = 0;  // of the LP relaxation
};

struct CallbackData {
  const std::vector<double>* incumbent = nullptr;
  bool injected = false;
  int node_limit = 1000;
};

void on_tree(glp_tree* tree, void* info) {
  auto* data = static_cast<CallbackData*>(info);
  switch (glp_ios_reason(tree)) {
    case GLP_IHEUR:
      if (!data->injected && data->incumbent != nullptr) {
        data->injected = true;
        glp_ios_heur_sol(tree, data->incumbent->data());
      }
      break;
    case GLP_ISELECT: {
      int active = 0, current = 0, total = 0;
      glp_ios_tree_size(tree, &active, &current, &total);
      if (total > data->node_limit) glp_ios_terminate(tree);
      break;
    }
    default: break;
  }
}

int millis_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 1, 1'000'000'000));
}

glp_iocp mip_params(glp_prob* lp, Clock::time_point deadline, bool presolve, CallbackData* data) {
  glp_iocp parm;
  glp_init_iocp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  parm.presolve = presolve ? GLP_ON : GLP_OFF;
  // GLPK rounds LP values within tol_int (default 1e-5) of an integer; that rounding may cross a
  // strict rule's margin (docs/placement.md, "Strict rules"), so accept only near-exact integers.
  parm.tol_int = 1e-9;
  parm.mip_gap = kMipGap;
  parm.gmi_cuts = GLP_ON;
  parm.mir_cuts = GLP_ON;
  parm.tm_lim = millis_left(deadline);
  parm.cb_func = on_tree;
  parm.cb_info = data;
  data->node_limit = static_cast<int>(std::clamp(kNodeColumnBudget / std::max(1, glp_get_num_cols(lp)), 10.0, 1e6));
  return parm;
}

std::vector<double> mip_cols(glp_prob* lp) {
  const int n = glp_get_num_cols(lp);
  std::vector<double> cols(static_cast<std::size_t>(n) + 1, 0.0);
  for (int j = 1; j <= n; ++j) {
    cols[static_cast<std::size_t>(j)] =
        glp_get_col_kind(lp, j) == GLP_IV ? std::round(glp_mip_col_val(lp, j)) : glp_mip_col_val(lp, j);
  }
  return cols;
}

double objective_of(glp_prob* lp, const std::vector<double>& cols) {
  double obj = glp_get_obj_coef(lp, 0);
  for (int j = 1; j <= glp_get_num_cols(lp); ++j) obj += glp_get_obj_coef(lp, j) * cols[static_cast<std::size_t>(j)];
  return obj;
}

// The best plan with every integral LP value kept and every fractional one rounded down or up.
std::optional<std::vector<double>> neighbourhood(glp_prob* lp, Clock::time_point deadline) {
  std::unique_ptr<glp_prob, ProbDeleter> sub(glp_create_prob());
  glp_copy_prob(sub.get(), lp, GLP_OFF);
  for (int j = 1; j <= glp_get_num_cols(lp); ++j) {
    if (glp_get_col_kind(lp, j) != GLP_IV) continue;
    const double v = glp_get_col_prim(lp, j);
    const double lo = std::floor(v + 1e-9);
    const double hi = std::ceil(v - 1e-9);
    glp_set_col_bnds(sub.get(), j, hi > lo ? GLP_DB : GLP_FX, lo, std::max(lo, hi));
  }
  CallbackData data;
  auto parm = mip_params(sub.get(), deadline, true, &data);
  const int ret = glp_intopt(sub.get(), &parm);
  if (ret != 0 && ret != GLP_EMIPGAP && ret != GLP_ETMLIM && ret != GLP_ESTOP) return std::nullopt;
  const int status = glp_mip_status(sub.get());
  if (status != GLP_OPT && status != GLP_FEAS) return std::nullopt;
  return mip_cols(sub.get());
}

MipOutcome run_mip(glp_prob* lp, const SolveSpec& spec) {
  MipOutcome out;
  glp_term_out(GLP_OFF);
  const auto limit_ms = static_cast<long long>(std::clamp(spec.time_limit_s, 0.001, 1e6) * 1000.0);
  const auto deadline = Clock::now() + std::chrono::milliseconds(limit_ms);
  glp_scale_prob(lp, GLP_SF_AUTO);
  glp_smcp smcp;
  glp_init_smcp(&smcp);
  smcp.msg_lev = GLP_MSG_OFF;
  smcp.tm_lim = millis_left(deadline);
  int ret = glp_simplex(lp, &smcp);
  if (ret == 0 && glp_get_status(lp) == GLP_NOFEAS) {
    out.status = Solution::Status::kInfeasible;
    return out;
  }
  if (ret != 0 || glp_get_status(lp) != GLP_OPT) {
    if (ret == GLP_ETMLIM) return out;
    fail(ErrorCode::kUnavailable, "placement: GLPK's simplex failed (code ", ret, ", status ", glp_get_status(lp), ")");
  }
  out.lp_objective = glp_get_obj_val(lp);
  const bool minimise = glp_get_obj_dir(lp) == GLP_MIN;
  std::optional<std::vector<double>> incumbent;
  if (spec.warm_start != nullptr && spec.warm_start->size() == static_cast<std::size_t>(glp_get_num_cols(lp)) + 1) {
    incumbent = *spec.warm_start;
  }
  if (auto near = neighbourhood(lp, deadline)) {
    const double a = objective_of(lp, *near);
    if (!incumbent || (minimise ? a < objective_of(lp, *incumbent) : a > objective_of(lp, *incumbent))) {
      incumbent = std::move(near);
    }
  }
  CallbackData data;
  if (incumbent) data.incumbent = &*incumbent;
  auto parm = mip_params(lp, deadline, false, &data);
  ret = glp_intopt(lp, &parm);
  if (ret != 0 && ret != GLP_EMIPGAP && ret != GLP_ETMLIM && ret != GLP_ESTOP) {
    fail(ErrorCode::kUnavailable, "placement: GLPK failed (glp_intopt code ", ret, ")");
  }
  const int status = glp_mip_status(lp);
  if (status == GLP_OPT || status == GLP_FEAS) {
    out.cols = mip_cols(lp);
    out.objective = glp_mip_obj_val(lp);
    // Stopping at the relative MIP gap counts as optimal (documented); a node or time limit does not.
    out.status = status == GLP_OPT || ret == GLP_EMIPGAP ? Solution::Status::kOptimal : Solution::Status::kLimit;
  } else if (incumbent) {
    // The search stopped before taking the incumbent (e.g. an integral root LP ended it).
    out.cols = *incumbent;
    out.objective = objective_of(lp, out.cols);
    out.status = Solution::Status::kLimit;
  } else if (status == GLP_NOFEAS && ret == 0) {
    out.status = Solution::Status::kInfeasible;
  }
  return out;
}

}  // namespace

double Solution::served_total(std::size_t m) const {
  double total = 0;
  for (double v : served[m]) total += v;
  return total;
}

double Solution::served_total() const {
  double total = 0;
  for (std::size_t m = 0; m < served.size(); ++m) total += served_total(m);
  return total;
}

std::int64_t Solution::replicas_of(std::size_t m) const {
  std::int64_t total = 0;
  for (auto r : replicas[m]) total += r;
  return total;
}

namespace {

// The ILP of one solve: GLPK columns per (model, class) replica count, per (class, pattern) group
// count and per (model, served key) served traffic; 0 where absent.
struct Ilp {
  Builder b;
  std::vector<std::vector<int>> xcol;  // [model][class]
  std::vector<std::vector<int>> zcol;  // [class][pattern]
  std::vector<std::vector<int>> ycol;  // [model][served key]
  double device_cost = 0;              // kThroughput tie-break, tokens/s per device
};

// Tie-break of the throughput goal: a cost per device far below any replica's throughput.
double tie_break_cost(const Problem& p) {
  double min_per_device = kInf;
  for (std::size_t m = 0; m < p.shape.size(); ++m) {
    for (std::size_t c = 0; c < p.classes.size(); ++c) {
      if (!p.fits(m, c)) continue;
      const auto& s = *p.shape[m][p.classes[c].chip];
      min_per_device = std::min(min_per_device, s.tokens_per_s / static_cast<double>(s.devices));
    }
  }
  return std::isfinite(min_per_device) ? 1e-7 * min_per_device : 0.0;
}

void add_columns(const Problem& p, const SolveSpec& spec, Ilp& ilp) {
  const auto& models = p.demand->models;
  const std::size_t nm = models.size(), nc = p.classes.size(), nk = p.served_keys.size();
  ilp.xcol.assign(nm, std::vector<int>(nc, 0));
  for (std::size_t m = 0; m < nm; ++m) {
    for (std::size_t c = 0; c < nc; ++c) {
      if (!p.fits(m, c)) continue;
      const auto& cls = p.classes[c];
      const auto d = p.shape[m][cls.chip]->devices;
      double obj = 0;
      if (spec.goal == Goal::kThroughput) obj = -ilp.device_cost * static_cast<double>(d);
      if (spec.goal == Goal::kDevices) obj = static_cast<double>(d);
      if (spec.goal == Goal::kModelReplicas && spec.model == m) obj = 1;
      double lb = 0, ub = static_cast<double>(cls.members.size()) * static_cast<double>(cls.size / d);
      if (spec.fixed_replicas != nullptr) lb = ub = static_cast<double>((*spec.fixed_replicas)[m][c]);
      ilp.xcol[m][c] = ilp.b.add_col(true, lb, ub, obj);
    }
  }
  ilp.zcol.assign(nc, {});
  for (std::size_t c = 0; c < nc; ++c) {
    const auto& cls = p.classes[c];
    if (cls.knapsack) continue;
    for (std::size_t q = 0; q < cls.patterns.size(); ++q) {
      ilp.zcol[c].push_back(ilp.b.add_col(true, 0, static_cast<double>(cls.members.size()), 0));
    }
  }
  ilp.ycol.assign(nm, std::vector<int>(nk, 0));
  for (std::size_t m = 0; m < nm; ++m) {
    for (std::size_t c = 0; c < nc; ++c) {
      const auto k = p.classes[c].served_key;
      if (!p.fits(m, c) || ilp.ycol[m][k] != 0) continue;
      const bool counts = spec.goal == Goal::kThroughput || (spec.goal == Goal::kModelTokens && spec.model == m);
      ilp.ycol[m][k] = ilp.b.add_col(false, 0, models[m].demand_tokens_per_s, counts ? 1.0 : 0.0);
    }
  }
}

// Device capacity of each class: one row (knapsack) or pattern rows (docs/placement.md, "Aggregation").
void add_capacity_rows(const Problem& p, Ilp& ilp) {
  const std::size_t nm = p.shape.size();
  for (std::size_t c = 0; c < p.classes.size(); ++c) {
    const auto& cls = p.classes[c];
    const double groups = static_cast<double>(cls.members.size());
    if (cls.knapsack) {
      std::vector<std::pair<int, double>> terms;
      for (std::size_t m = 0; m < nm; ++m) {
        if (ilp.xcol[m][c]) terms.push_back({ilp.xcol[m][c], static_cast<double>(p.shape[m][cls.chip]->devices)});
      }
      if (!terms.empty()) ilp.b.add_row(terms, -kInf, groups * static_cast<double>(cls.size));
      continue;
    }
    std::vector<std::pair<int, double>> nodes;
    for (int z : ilp.zcol[c]) nodes.push_back({z, 1.0});
    ilp.b.add_row(nodes, -kInf, groups);
    for (std::size_t s = 0; s < cls.sizes.size(); ++s) {
      std::vector<std::pair<int, double>> terms;
      for (std::size_t m = 0; m < nm; ++m) {
        if (ilp.xcol[m][c] && p.shape[m][cls.chip]->devices == cls.sizes[s]) terms.push_back({ilp.xcol[m][c], 1.0});
      }
      for (std::size_t q = 0; q < cls.patterns.size(); ++q) {
        terms.push_back({ilp.zcol[c][q], -static_cast<double>(cls.patterns[q][s])});
      }
      ilp.b.add_row(terms, -kInf, 0);
    }
  }
}

// Served traffic: at most the replicas' throughput per key, at most the demand per model; hard
// requirements. Returns the terms of the total served traffic.
std::vector<std::pair<int, double>> add_served_rows(const Problem& p, const SolveSpec& spec, Ilp& ilp) {
  const auto& models = p.demand->models;
  std::vector<std::pair<int, double>> all_served;
  for (std::size_t m = 0; m < models.size(); ++m) {
    std::vector<std::pair<int, double>> total;
    for (std::size_t k = 0; k < p.served_keys.size(); ++k) {
      if (!ilp.ycol[m][k]) continue;
      std::vector<std::pair<int, double>> terms{{ilp.ycol[m][k], 1.0}};
      for (std::size_t c = 0; c < p.classes.size(); ++c) {
        if (ilp.xcol[m][c] && p.classes[c].served_key == k) {
          terms.push_back({ilp.xcol[m][c], -p.shape[m][p.classes[c].chip]->tokens_per_s});
        }
      }
      ilp.b.add_row(terms, -kInf, 0);
      total.push_back({ilp.ycol[m][k], 1.0});
      all_served.push_back({ilp.ycol[m][k], 1.0});
    }
    const auto& model = models[m];
    const bool target = (spec.goal == Goal::kModelTokens || spec.goal == Goal::kModelReplicas) && spec.model == m;
    const bool hard = spec.hard_on[m] && !target;
    if (hard && model.min_tokens_per_s > 0) {
      ilp.b.add_row(total, model.min_tokens_per_s, model.demand_tokens_per_s);  // no terms: infeasible, as it should
    } else if (!total.empty()) {
      ilp.b.add_row(total, -kInf, model.demand_tokens_per_s);
    }
    if (hard && model.min_replicas > 0) {
      std::vector<std::pair<int, double>> reps;
      for (std::size_t c = 0; c < p.classes.size(); ++c) {
        if (ilp.xcol[m][c]) reps.push_back({ilp.xcol[m][c], 1.0});
      }
      ilp.b.add_row(reps, static_cast<double>(model.min_replicas), kInf);
    }
  }
  return all_served;
}

// Enforced domestic-share rules: sum over counted amounts of (domestic - threshold) x amount >= 0.
void add_rule_rows(const Problem& p, const SolveSpec& spec, Ilp& ilp) {
  const std::size_t nm = p.shape.size();
  for (std::size_t r = 0; r < p.rules.size(); ++r) {
    if (!spec.rule_on[r]) continue;
    const auto& rule = p.rules[r];
    std::vector<std::pair<int, double>> terms;
    if (rule.basis == policy::Basis::kServedTokens) {
      for (std::size_t k = 0; k < p.served_keys.size(); ++k) {
        const auto& key = p.served_keys[k];
        if (!key.in_scope[r] || key.origin == Origin::kUncounted) continue;
        const double coef = (key.origin == Origin::kDomestic ? 1.0 : 0.0) - rule.threshold;
        for (std::size_t m = 0; m < nm; ++m) {
          if (ilp.ycol[m][k]) terms.push_back({ilp.ycol[m][k], coef});
        }
      }
    } else {
      const auto weight = basis_weights(p, rule.basis);
      for (std::size_t c = 0; c < p.classes.size(); ++c) {
        const auto& cls = p.classes[c];
        const auto& chip = p.chips[cls.chip];
        if (!cls.in_scope[r] || chip.origin == Origin::kUncounted) continue;
        const double coef = weight[cls.chip] * ((chip.origin == Origin::kDomestic ? 1.0 : 0.0) - rule.threshold);
        for (std::size_t m = 0; m < nm; ++m) {
          if (ilp.xcol[m][c]) {
            terms.push_back({ilp.xcol[m][c], coef * static_cast<double>(p.shape[m][cls.chip]->devices)});
          }
        }
      }
    }
    if (!terms.empty()) ilp.b.add_row(terms, 0, kInf);
  }
}

}  // namespace

Solution solve(const Problem& p, const SolveSpec& spec) {
  const std::size_t nm = p.shape.size(), nc = p.classes.size(), nk = p.served_keys.size();
  MIXSERVE_CHECK(spec.rule_on.size() == p.rules.size() && spec.hard_on.size() == nm, "solve spec sized wrongly");
  Ilp ilp;
  ilp.device_cost = tie_break_cost(p);
  glp_set_obj_dir(ilp.b.get(), spec.goal == Goal::kDevices ? GLP_MIN : GLP_MAX);
  // A fixed dummy column and row keep GLPK away from an empty problem.
  const int dummy = ilp.b.add_col(false, 0, 0, 0);
  ilp.b.add_row({{dummy, 1.0}}, 0, 0);
  add_columns(p, spec, ilp);
  add_capacity_rows(p, ilp);
  const auto all_served = add_served_rows(p, spec, ilp);
  add_rule_rows(p, spec, ilp);
  if (spec.goal == Goal::kDevices) ilp.b.add_row(all_served, spec.min_total, kInf);
  ilp.b.load();

  const auto outcome = run_mip(ilp.b.get(), spec);
  Solution sol;
  sol.status = outcome.status;
  if (!sol.found()) return sol;
  sol.cols = outcome.cols;
  sol.objective = outcome.objective;
  // Any plan's served total minus its (tiny) device cost is at most the LP optimum.
  if (spec.goal == Goal::kThroughput) {
    sol.bound = outcome.lp_objective + ilp.device_cost * static_cast<double>(p.eligible_devices);
  }
  auto value = [&](int col) { return sol.cols[static_cast<std::size_t>(col)]; };
  sol.replicas.assign(nm, std::vector<std::int64_t>(nc, 0));
  sol.served.assign(nm, std::vector<double>(nk, 0.0));
  for (std::size_t m = 0; m < nm; ++m) {
    for (std::size_t c = 0; c < nc; ++c) {
      if (ilp.xcol[m][c]) sol.replicas[m][c] = std::llround(value(ilp.xcol[m][c]));
    }
    for (std::size_t k = 0; k < nk; ++k) {
      if (ilp.ycol[m][k]) sol.served[m][k] = std::max(0.0, value(ilp.ycol[m][k]));
    }
  }
  sol.pattern_nodes.resize(nc);
  for (std::size_t c = 0; c < nc; ++c) {
    for (int z : ilp.zcol[c]) sol.pattern_nodes[c].push_back(std::llround(value(z)));
  }
  return sol;
}

}  // namespace mixserve::gateway::detail

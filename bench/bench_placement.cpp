// Replica placement (`mixserve place`) for 10,000 nodes and 20 models (target: < 2 s on the 2-core
// dev VM). Two generated fleets: "typical" (mostly 8-device nodes of one chip, some 4+4 and CPU
// nodes) and "split" (every node's 8 devices split at random between two of 8 chips, as in
// bench_policy, which gives many more device-group classes). Enforced rules on centre, pool and
// project scopes plus an audit rule; demand exceeds what the fleet can serve under the rules, so the
// shortfall explanations run too. Also times parsing the YAML files and placing, as the CLI does.
#include <benchmark/benchmark.h>

#include <random>
#include <sstream>

#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "gateway/demand.h"
#include "gateway/placement.h"
#include "policy/policy.h"

namespace {

using namespace mixserve;

constexpr int kNodes = 10'000;
constexpr int kModels = 20;

const char* const kChips[] = {"huawei-ascend-910b", "huawei-ascend-910c", "cambricon-mlu590", "kunlunxin-p800",
                              "metax-c500",         "nvidia-h20",         "nvidia-h100",      "nvidia-a800"};
const char* const kStates[] = {"active", "active", "active", "active", "idle", "drained", "retired"};

std::string fleet_yaml(bool split) {
  std::mt19937 rng(split ? 42 : 7);
  std::ostringstream y;
  y << "home_country: CN\nnodes:\n";
  for (int n = 0; n < kNodes; ++n) {
    y << "  - {name: node-" << n << ", pool: pool-" << n % 4 << ", project: proj-" << n % 50
      << ", state: " << kStates[rng() % 7] << ", devices: [";
    const auto kind = rng() % 10;
    if (split) {
      const int a = static_cast<int>(rng() % 9);
      y << "{chip: " << kChips[rng() % 8] << ", count: " << a << "}, {chip: " << kChips[rng() % 8]
        << ", count: " << 8 - a << "}";
    } else if (kind < 7) {
      y << "{chip: " << kChips[rng() % 8] << ", count: 8}";
    } else if (kind < 9) {
      y << "{chip: " << kChips[rng() % 8] << ", count: 4}, {chip: " << kChips[rng() % 8] << ", count: 4}";
    } else {
      y << "{chip: cpu-x86, count: 2}";
    }
    y << "]}\n";
  }
  return y.str();
}

// 20 models from 7 B to 671 B parameters (FP16/BF16 weights or 8-bit), various stack support.
std::string demand_yaml() {
  std::mt19937 rng(1);
  const double weights[] = {14, 16, 28, 40, 64, 70, 140, 145, 240, 350, 680, 810};
  const char* const stacks[] = {"[cuda]", "[cuda, cann]", "[cann, bang, xpu, maca]", "[cuda, cann, bang, xpu, maca]",
                                "[cuda, cpu]"};
  std::ostringstream y;
  y << "defaults: {batch: 32, efficiency: 0.5, memory_fraction: 0.9}\nmodels:\n";
  for (int m = 0; m < kModels; ++m) {
    y << "  - {name: model-" << m << ", weights_gib: " << weights[rng() % 12] << ", kv_gib: " << 4 * (rng() % 8)
      << ", stacks: " << stacks[rng() % 5] << ", demand_tokens_per_s: " << 20'000 * (1 + rng() % 40);
    if (m % 5 == 0) y << ", min_replicas: " << 1 + rng() % 4;
    if (m % 7 == 0) y << ", min_tokens_per_s: 5000";
    y << "}\n";
  }
  return y.str();
}

const char* const kPolicy =
    "rules:\n"
    "  - {name: national-50, min_domestic_share: 0.5, strict: true}\n"
    "  - {name: compute-pool-1, basis: peak_fp16_tflops, scope: 'pool:pool-1', min_domestic_share: 0.6}\n"
    "  - {name: served-project-7, basis: served_tokens, scope: 'project:proj-7', min_domestic_share: 0.7}\n"
    "  - {name: memory-audit, basis: memory_gib, min_domestic_share: 0.8, mode: audit}\n";

struct World {
  fleet::Catalogue catalogue = fleet::Catalogue::builtin();
  std::string typical_yaml = fleet_yaml(false);
  std::string split_yaml = fleet_yaml(true);
  std::string demand_text = demand_yaml();
  fleet::Fleet typical = fleet::parse_fleet(typical_yaml, "typical", catalogue);
  fleet::Fleet split = fleet::parse_fleet(split_yaml, "split", catalogue);
  gateway::Demand demand = gateway::parse_demand(demand_text, "demand", catalogue);
  policy::Policy policy = policy::parse_policy(kPolicy, "policy");
};

const World& world() {
  static const World w;
  return w;
}

void report(benchmark::State& state, const gateway::PlacementResult& r) {
  state.counters["nodes"] = kNodes;
  state.counters["models"] = kModels;
  state.counters["classes"] = static_cast<double>(r.classes);
  state.counters["solves"] = static_cast<double>(r.solves);
  state.counters["devices_used"] = static_cast<double>(r.devices_used);
  state.counters["served_pct"] = r.demand_tokens_per_s > 0 ? 100 * r.planned_tokens_per_s / r.demand_tokens_per_s : 0;
  state.counters["optimal"] = r.optimal ? 1 : 0;
  state.counters["gap_pct"] = 100 * r.gap;
  state.counters["feasible"] = r.feasible ? 1 : 0;
}

void place_fleet(benchmark::State& state, const fleet::Fleet& fleet) {
  const auto& w = world();
  gateway::PlacementResult r;
  for (auto _ : state) {
    r = gateway::place(fleet, w.catalogue, w.demand, &w.policy);
    benchmark::DoNotOptimize(r);
  }
  report(state, r);
}

void BM_PlaceTypical(benchmark::State& state) {
  place_fleet(state, world().typical);
}
BENCHMARK(BM_PlaceTypical)->Unit(benchmark::kMillisecond);

void BM_PlaceSplit(benchmark::State& state) {
  place_fleet(state, world().split);
}
BENCHMARK(BM_PlaceSplit)->Unit(benchmark::kMillisecond);

// What `mixserve place` does end to end, output aside: parse the three files, then place.
void BM_ParseAndPlaceTypical(benchmark::State& state) {
  const auto& w = world();
  gateway::PlacementResult r;
  for (auto _ : state) {
    const auto fleet = fleet::parse_fleet(w.typical_yaml, "typical", w.catalogue);
    const auto demand = gateway::parse_demand(w.demand_text, "demand", w.catalogue);
    const auto policy = policy::parse_policy(kPolicy, "policy");
    r = gateway::place(fleet, w.catalogue, demand, &policy);
    benchmark::DoNotOptimize(r);
  }
  report(state, r);
}
BENCHMARK(BM_ParseAndPlaceTypical)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

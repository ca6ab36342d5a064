// Policy evaluation over a generated 10,000-node, 80,000-device fleet (issue 5 target: < 50 ms).
// Reports time per evaluation of one rule and of a 7-rule policy (every basis, centre/pool/project
// scopes), and the cost of parsing the same fleet from YAML.
#include <benchmark/benchmark.h>

#include <random>
#include <sstream>

#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "policy/evaluate.h"
#include "policy/policy.h"
#include "policy/usage.h"

namespace {

using namespace mixserve;

constexpr int kNodes = 10'000;
constexpr int kDevicesPerNode = 8;

const char* const kChips[] = {"huawei-ascend-910b", "huawei-ascend-910c", "cambricon-mlu590", "kunlunxin-p800",
                              "metax-c500",         "nvidia-h20",         "nvidia-h100",      "nvidia-a800"};

// The fleet as YAML text: 8 devices per node of one or two chips, 4 pools, 50 projects, mixed states.
std::string fleet_yaml() {
  std::mt19937 rng(42);
  std::ostringstream y;
  y << "home_country: CN\nnodes:\n";
  const char* states[] = {"active", "active", "active", "idle", "drained", "retired"};
  for (int n = 0; n < kNodes; ++n) {
    y << "  - {name: node-" << n << ", pool: pool-" << n % 4 << ", project: proj-" << n % 50
      << ", state: " << states[rng() % 6] << ", devices: [";
    const int split = static_cast<int>(rng() % (kDevicesPerNode + 1));
    y << "{chip: " << kChips[rng() % 8] << ", count: " << split << "}, {chip: " << kChips[rng() % 8]
      << ", count: " << kDevicesPerNode - split << "}]}\n";
  }
  return y.str();
}

struct World {
  fleet::Catalogue catalogue = fleet::Catalogue::builtin();
  std::string yaml = fleet_yaml();
  fleet::Fleet fleet = fleet::parse_fleet(yaml, "bench-fleet", catalogue);
  policy::Usage usage;
  policy::Policy one_rule = policy::parse_policy("rules:\n  - {name: national-50, strict: true}\n", "bench");
  policy::Policy all_rules = policy::parse_policy(
      "rules:\n"
      "  - {name: count, strict: true}\n"
      "  - {name: compute, basis: peak_fp16_tflops}\n"
      "  - {name: memory, basis: memory_gib}\n"
      "  - {name: hours, basis: device_hours}\n"
      "  - {name: tokens, basis: served_tokens}\n"
      "  - {name: pool, scope: 'pool:pool-1', count_states: [active]}\n"
      "  - {name: project, scope: 'project:proj-7', min_domestic_share: 1.0, mode: audit}\n",
      "bench");
  World() {
    std::int64_t devices = 0;
    for (const auto& node : fleet.nodes) {
      for (const auto& g : node.devices) {
        devices += g.count;
        usage.entries.push_back({node.name, g.chip, 720.0 * g.count, 3.6e7 * g.count});
      }
    }
    if (devices != static_cast<std::int64_t>(kNodes) * kDevicesPerNode) std::abort();
  }
};

const World& world() {
  static const World w;
  return w;
}

void BM_EvaluateOneRule(benchmark::State& state) {
  const auto& w = world();
  for (auto _ : state) {
    auto e = policy::evaluate(w.one_rule, w.fleet, w.catalogue);
    benchmark::DoNotOptimize(e);
  }
  state.counters["devices"] = kNodes * kDevicesPerNode;
  state.counters["nodes/s"] = benchmark::Counter(kNodes, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EvaluateOneRule)->Unit(benchmark::kMillisecond);

void BM_EvaluateSevenRules(benchmark::State& state) {
  const auto& w = world();
  for (auto _ : state) {
    auto e = policy::evaluate(w.all_rules, w.fleet, w.catalogue, &w.usage);
    benchmark::DoNotOptimize(e);
  }
  state.counters["devices"] = kNodes * kDevicesPerNode;
  state.counters["rules"] = static_cast<double>(w.all_rules.rules.size());
}
BENCHMARK(BM_EvaluateSevenRules)->Unit(benchmark::kMillisecond);

void BM_ParseFleetYaml(benchmark::State& state) {
  const auto& w = world();
  for (auto _ : state) {
    auto f = fleet::parse_fleet(w.yaml, "bench-fleet", w.catalogue);
    benchmark::DoNotOptimize(f);
  }
  state.counters["MB"] = static_cast<double>(w.yaml.size()) / 1e6;
}
BENCHMARK(BM_ParseFleetYaml)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

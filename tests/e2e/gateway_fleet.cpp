#include "e2e/gateway_fleet.h"

#include <gtest/gtest.h>


namespace mixserve::testing {

GatewayFleet::GatewayFleet(const TempDir& dir, const std::vector<NodeSpec>& nodes, const std::string& shape)
    : dir_(dir), specs_(nodes) {
  model_ = dir.file("tiny.gguf");
  const auto r = run_command(std::string(MIXSERVE_BIN) + " model synth --shape " + shape + " --type f32 -o " + model_);
  if (r.exit_code != 0) throw std::runtime_error("model synth failed: " + r.err);
  for (const auto& n : nodes) {
    std::vector<std::string> args = {MIXSERVE_BIN, "serve", "-m", model_, "--alias", "tiny", "--port", "0",
                                     "--chip", n.chip, "-t", "1"};
    args.insert(args.end(), n.extra.begin(), n.extra.end());
    nodes_.push_back(std::make_unique<ServerProcess>(args, dir.file(n.name + ".log")));
  }
}

void GatewayFleet::start_gateway(const std::string& extra_yaml) {
  std::string yaml = "listen: 127.0.0.1:0\nupstreams:\n";
  for (size_t i = 0; i < specs_.size(); ++i) {
    yaml += "  - name: " + specs_[i].name + "\n    url: http://127.0.0.1:" + std::to_string(nodes_[i]->port()) +
            "\n    chip: " + specs_[i].chip + "\n";
  }
  if (specs_.empty()) yaml = "listen: 127.0.0.1:0\nupstreams: []\n";
  yaml += extra_yaml;
  dir_.write("cluster.yaml", yaml);
  gateway_ = std::make_unique<ServerProcess>(
      std::vector<std::string>{MIXSERVE_BIN, "gateway", "--config", dir_.file("cluster.yaml")}, dir_.file("gateway.log"));
}

}  // namespace mixserve::testing

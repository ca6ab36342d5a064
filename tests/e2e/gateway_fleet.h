// A local fleet for the gateway's end-to-end tests: `mixserve serve` nodes declared as different
// chips (all running the same small synthetic model on this CPU) behind a `mixserve gateway`, with
// the cluster.yaml written for them. Every process is stopped when the fleet is destroyed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "support/server_process.h"
#include "support/test_support.h"

namespace mixserve::testing {

/// One node to start.
struct NodeSpec {
  std::string name;                ///< upstream name
  std::string chip;                ///< catalogue id
  std::vector<std::string> extra;  ///< extra `mixserve serve` flags
};

/// Nodes, the gateway and their files.
class GatewayFleet {
 public:
  /// Synthesises a model of `shape` (f32) into `dir` and starts the nodes (not the gateway).
  GatewayFleet(const TempDir& dir, const std::vector<NodeSpec>& nodes, const std::string& shape = "tiny");
  /// Writes cluster.yaml (upstreams of every node, then `extra_yaml`) and starts the gateway.
  void start_gateway(const std::string& extra_yaml = "");
  /// The gateway's port.
  uint16_t port() const { return gateway_->port(); }
  /// Node `i`'s port.
  uint16_t node_port(size_t i) const { return nodes_.at(i)->port(); }
  /// Node `i`'s process.
  ServerProcess& node(size_t i) { return *nodes_.at(i); }
  /// The gateway process.
  ServerProcess& gateway() { return *gateway_; }
  /// The model file.
  const std::string& model() const { return model_; }
  /// A path in the fleet's folder.
  std::string file(const std::string& name) const { return dir_.file(name); }

 private:
  const TempDir& dir_;
  std::string model_;
  std::vector<NodeSpec> specs_;
  std::vector<std::unique_ptr<ServerProcess>> nodes_;
  std::unique_ptr<ServerProcess> gateway_;
};

}  // namespace mixserve::testing

// A node that hosts any number of model replicas and lets an operator (or the gateway applying a
// placement plan) change them at run time: `mixserve serve --models-dir DIR --admin-token-file F`.
// Each replica is a full Server (its own engine thread, KV cache and port) that joins the gateway on
// its own as "<node>/<replica>"; an admin listener takes the desired set of models and converges to it
// (loading missing replicas from DIR/<model>.gguf, draining and unloading extra ones).
// Admin API (Bearer admin token): GET /admin/models, PUT /admin/models {"models": {"<model>": replicas}}.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model.h"
#include "serve/api_keys.h"
#include "serve/http_server.h"
#include "serve/server.h"

namespace mixserve::serve {

/// How to host.
struct ModelHostOptions {
  ServeOptions replica;        ///< template of every replica (port is always 0; node_name is the node's name)
  std::string models_dir;      ///< a model "m" loads from models_dir/m.gguf
  std::string admin_token_file;  ///< tokens accepted on the admin API (required)
  HttpServerOptions admin_http;  ///< address of the admin listener
  /// Loads a model file (the CLI passes its device and thread flags through this).
  std::function<std::unique_ptr<Model>(const std::string& path)> load_model;
};

/// The host.
class ModelHost {
 public:
  /// Validates the options; throws kInvalidArgument (no admin token, no models_dir) or kNotFound.
  explicit ModelHost(ModelHostOptions options);
  /// Stops every replica.
  ~ModelHost();
  ModelHost(const ModelHost&) = delete;
  ModelHost& operator=(const ModelHost&) = delete;

  /// Starts the admin listener and, when `first_model` is not empty, one replica of it; returns the
  /// admin port.
  uint16_t start(const std::string& first_model);
  /// Converges to `desired` (model -> replicas); returns what was done per model. Throws kNotFound
  /// for a model without a file, kInvalidArgument for a bad name or count.
  nlohmann::json reconcile(const std::map<std::string, int64_t>& desired);
  /// The replicas: id, model, port.
  nlohmann::json replicas() const;
  /// Stops every replica (graceful drain each) and the admin listener.
  void shutdown();

 private:
  struct Replica {
    std::string id;      // "m" or "m#2"
    std::string model;   // model name (what clients send)
    std::unique_ptr<Model> loaded;
    std::unique_ptr<Server> server;
    uint16_t port = 0;
  };
  void handle(const std::shared_ptr<HttpExchange>& exchange);
  std::unique_ptr<Replica> start_replica(const std::string& model, const std::string& id);

  ModelHostOptions options_;
  ApiKeys admin_keys_;
  std::unique_ptr<HttpServer> admin_;
  std::string admin_url_;
  mutable std::mutex mutex_;      // guards replicas_
  std::mutex reconcile_mutex_;    // one reconcile at a time
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::atomic<int> admin_calls_{0};  // converging admin calls (threads of their own)
};

}  // namespace mixserve::serve

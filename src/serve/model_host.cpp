#include "serve/model_host.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "serve/openai_response.h"

namespace mixserve::serve {

namespace {

using nlohmann::json;

// Model names become file names and URL parts: letters, digits, '.', '-', '_' only.
void check_model_name(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 128 && name.front() != '.' &&
                  std::all_of(name.begin(), name.end(), [](unsigned char c) {
                    return std::isalnum(c) || c == '.' || c == '-' || c == '_';
                  });
  if (!ok) fail(ErrorCode::kInvalidArgument, "bad model name '", name, "': use letters, digits, '.', '-', '_'");
}

}  // namespace

ModelHost::ModelHost(ModelHostOptions options) : options_(std::move(options)) {
  if (options_.admin_token_file.empty()) {
    fail(ErrorCode::kInvalidArgument, "hosting models needs --admin-token-file (the admin API changes what runs here)");
  }
  if (options_.models_dir.empty() || !std::filesystem::is_directory(options_.models_dir)) {
    fail(ErrorCode::kNotFound, "--models-dir '", options_.models_dir, "' is not a folder");
  }
  if (!options_.load_model) fail(ErrorCode::kInvalidArgument, "ModelHost needs a model loader");
  admin_keys_ = ApiKeys::load(options_.admin_token_file);
}

ModelHost::~ModelHost() { shutdown(); }

uint16_t ModelHost::start(const std::string& first_model) {
  options_.admin_http.server_name = "mixserve-node-admin";
  options_.admin_http.error_body = [](int status, const std::string& message) {
    return error_body(message, status >= 500 ? "server_error" : "invalid_request_error").dump();
  };
  admin_ = std::make_unique<HttpServer>(options_.admin_http, [this](std::shared_ptr<HttpExchange> ex) { handle(ex); });
  const uint16_t port = admin_->start();
  admin_url_ = str_cat("http://", options_.admin_http.host, ":", port);
  if (!first_model.empty()) reconcile({{first_model, 1}});
  log_info("node admin API on ", admin_url_, " (models from ", options_.models_dir, ")");
  return port;
}

std::unique_ptr<ModelHost::Replica> ModelHost::start_replica(const std::string& model, const std::string& id) {
  const std::string path = (std::filesystem::path(options_.models_dir) / (model + ".gguf")).string();
  if (!std::filesystem::exists(path)) fail(ErrorCode::kNotFound, "no model file ", path, " for model '", model, "'");
  auto r = std::make_unique<Replica>();
  r->id = id;
  r->model = model;
  r->loaded = options_.load_model(path);
  if (!r->loaded) fail(ErrorCode::kInternal, "the model loader returned nothing for ", path);
  ServeOptions o = options_.replica;
  o.http.port = 0;
  o.model_id = model;
  o.node_name = options_.replica.node_name + "/" + id;
  o.node_group = options_.replica.node_name;
  o.admin_url = admin_url_;
  r->server = std::make_unique<Server>(*r->loaded, path, o);
  r->port = r->server->start();
  return r;
}

json ModelHost::reconcile(const std::map<std::string, int64_t>& desired) {
  for (const auto& [model, n] : desired) {
    check_model_name(model);
    if (n < 0 || n > 64) fail(ErrorCode::kInvalidArgument, "replicas of '", model, "' must be 0..64, not ", n);
  }
  for (const auto& [model, n] : desired) {  // refuse before changing anything
    const auto path = std::filesystem::path(options_.models_dir) / (model + ".gguf");
    if (n > 0 && !std::filesystem::exists(path)) {
      fail(ErrorCode::kNotFound, "no model file ", path.string(), " for model '", model, "'");
    }
  }
  std::lock_guard serial(reconcile_mutex_);
  json actions = json::array();
  // Unload first (frees memory for what is loaded next): extra replicas, newest first.
  std::vector<std::unique_ptr<Replica>> leaving;
  {
    std::lock_guard lock(mutex_);
    std::map<std::string, int64_t> kept;
    for (auto it = replicas_.begin(); it != replicas_.end();) {
      const auto want = desired.find((*it)->model);
      const int64_t limit = want == desired.end() ? 0 : want->second;
      if (kept[(*it)->model] < limit) {
        ++kept[(*it)->model];
        ++it;
      } else {
        leaving.push_back(std::move(*it));
        it = replicas_.erase(it);
      }
    }
  }
  for (auto& r : leaving) {
    log_info("unloading replica '", r->id, "'");
    r->server->shutdown();  // leaves the gateway, drains
    actions.push_back({{"action", "unloaded"}, {"replica", r->id}, {"model", r->model}});
  }
  leaving.clear();
  for (const auto& [model, n] : desired) {
    int64_t have = 0;
    {
      std::lock_guard lock(mutex_);
      for (const auto& r : replicas_) have += r->model == model ? 1 : 0;
    }
    for (int64_t k = have; k < n; ++k) {
      std::string id = model;
      for (int suffix = 2;; ++suffix) {
        std::lock_guard lock(mutex_);
        const bool taken = std::any_of(replicas_.begin(), replicas_.end(), [&](const auto& r) { return r->id == id; });
        if (!taken) break;
        id = model + "#" + std::to_string(suffix);
      }
      log_info("loading replica '", id, "' of model '", model, "'");
      auto r = start_replica(model, id);
      actions.push_back({{"action", "loaded"}, {"replica", r->id}, {"model", model}, {"port", r->port}});
      std::lock_guard lock(mutex_);
      replicas_.push_back(std::move(r));
    }
  }
  return actions;
}

json ModelHost::replicas() const {
  std::lock_guard lock(mutex_);
  json list = json::array();
  for (const auto& r : replicas_) list.push_back({{"replica", r->id}, {"model", r->model}, {"port", r->port}});
  return list;
}

void ModelHost::shutdown() {
  if (admin_) admin_->stop();  // no new admin calls; then wait for those converging
  while (admin_calls_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::vector<std::unique_ptr<Replica>> all;
  {
    std::lock_guard lock(mutex_);
    all.swap(replicas_);
  }
  for (auto& r : all) r->server->shutdown();
  all.clear();
  admin_.reset();
}

void ModelHost::handle(const std::shared_ptr<HttpExchange>& exchange) {
  const auto& req = exchange->request();
  auto reply = [&](int status, const json& body) { exchange->respond(status, "application/json", body.dump()); };
  if (!admin_keys_.allows(req.header("authorization"))) {
    return reply(401, error_body("Incorrect or missing admin token", "invalid_request_error", "", "invalid_admin_token"));
  }
  if (req.path != "/admin/models") {
    return reply(404, error_body("no admin route " + req.method + " " + req.path, "invalid_request_error"));
  }
  if (req.method == "GET") return reply(200, {{"replicas", replicas()}});
  if (req.method != "PUT") return reply(405, error_body("use GET or PUT", "invalid_request_error"));
  const json body = json::parse(req.body, nullptr, false);
  std::map<std::string, int64_t> desired;
  if (!body.is_object() || !body.contains("models") || !body["models"].is_object()) {
    return reply(400, error_body("the body must be {\"models\": {\"<model>\": replicas}}", "invalid_request_error"));
  }
  for (const auto& [model, n] : body["models"].items()) {
    if (!n.is_number_integer()) return reply(400, error_body("replicas of '" + model + "' must be an integer", "invalid_request_error"));
    desired[model] = n.get<int64_t>();
  }
  // Loading takes seconds: converge on a thread of its own and reply from there.
  ++admin_calls_;
  std::thread([this, exchange, desired] {
    try {
      const json actions = reconcile(desired);
      exchange->respond(200, "application/json", json({{"actions", actions}, {"replicas", replicas()}}).dump());
    } catch (const Error& e) {
      const int status = e.code() == ErrorCode::kNotFound ? 404 : e.code() == ErrorCode::kInvalidArgument ? 400 : 500;
      exchange->respond(status, "application/json",
                        error_body(e.what(), status == 500 ? "server_error" : "invalid_request_error").dump());
    } catch (const std::exception& e) {
      exchange->respond(500, "application/json", error_body(e.what(), "server_error").dump());
    }
    --admin_calls_;
  }).detach();
}

}  // namespace mixserve::serve

#include "serve/server.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/log.h"
#include "common/timer.h"
#include "common/version.h"
#include "fleet/catalogue.h"
#include "model/chat_template.h"
#include "model/gguf.h"
#include "serve/api_keys.h"
#include "serve/join_client.h"
#include "serve/metrics.h"
#include "serve/openai_response.h"
#include "serve/openai_service.h"
#include "serve/serve_metrics.h"

namespace mixserve::serve {
namespace {

std::string hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

std::string read_text(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kNotFound, "cannot read the ", what, " '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The chip of this node: the given catalogue id, or the catalogue entry matching the first device.
std::optional<fleet::ChipSpec> resolve_chip(const std::string& id, const Model& model) {
  const fleet::Catalogue catalogue = fleet::Catalogue::builtin();
  if (!id.empty()) {
    auto chip = catalogue.find(id);
    if (!chip) fail(ErrorCode::kNotFound, "unknown chip '", id, "' (`mixserve chips` lists the catalogue)");
    return chip;
  }
  const hal::DeviceInfo info = model.device().info();
  const auto matched = catalogue.match(info.vendor, info.name);
  if (!matched) {
    log_warn("no catalogue chip matches device '", info.name, "' (", info.vendor, "); give --chip to name it");
    return std::nullopt;
  }
  return catalogue.find(*matched);
}

}  // namespace

Server::Server(const Model& model, const std::string& model_path, ServeOptions options)
    : model_(model), options_(std::move(options)) {
  model_id_ = options_.model_id.empty() ? std::filesystem::path(model_path).stem().string() : options_.model_id;
  ServiceOptions service;
  service.node.model_id = model_id_;
  service.node.model_path = model_path;
  service.node.chip = resolve_chip(options_.chip, model);
  service.node.home_country = options_.home_country;
  service.node.domestic = service.node.chip && service.node.chip->accelerator &&
                          service.node.chip->country == options_.home_country;
  service.node.version = kVersion;
  service.node.hostname = hostname();
  if (!options_.api_key_file.empty()) service.keys = ApiKeys::load(options_.api_key_file);

  const Vocab& vocab = model.tokenizer().vocab();
  chat_ = std::make_unique<ChatTemplate>(
      options_.chat_template_file.empty()
          ? ChatTemplate::from_gguf(gguf::File::open(model_path), vocab)
          : ChatTemplate::with_vocab(read_text(options_.chat_template_file, "chat template"), vocab));

  std::vector<std::string> devices;
  for (const hal::Device* d : model.placement().devices) devices.push_back(d->info().id);
  const std::string chip_label = service.node.chip ? service.node.chip->id : "unknown";
  chip_id_ = chip_label;
  registry_ = std::make_unique<MetricsRegistry>(
      MetricLabels{{"model", model_id_}, {"chip", chip_label}, {"device", devices.front()}});
  scheduler_ = std::make_unique<BatchScheduler>(model, options_.scheduler);
  metrics_ = std::make_unique<ServeMetrics>(*registry_, *scheduler_, model.op_table(), devices);
  service_ = std::make_unique<OpenAiService>(model, *chat_, *scheduler_, *metrics_, std::move(service));

  options_.http.server_name = std::string("mixserve/") + kVersion;
  options_.http.error_body = [](int status, const std::string& message) {
    const char* type = status >= 500 ? "server_error" : "invalid_request_error";
    return error_body(message, type).dump();
  };
  OpenAiService* svc = service_.get();
  http_ = std::make_unique<HttpServer>(options_.http, [svc](std::shared_ptr<HttpExchange> ex) { svc->handle(ex); });
}

Server::~Server() { shutdown(); }

uint16_t Server::start() {
  stop_ = false;
  engine_ = std::thread([this] { engine_loop(); });
  uint16_t port = 0;
  try {
    port = http_->start();
  } catch (...) {
    stop_ = true;
    scheduler_->notify();
    engine_.join();
    throw;
  }
  running_ = true;
  const auto& limits = scheduler_->options();
  if (!options_.join_url.empty()) {
    JoinOptions join;
    join.gateway_url = options_.join_url;
    join.token = read_token_file(options_.join_token_file);
    join.name = options_.node_name.empty() ? str_cat(hostname(), "-", port) : options_.node_name;
    join.advertise_url = options_.advertise_url.empty() ? str_cat("http://", options_.http.host, ":", port)
                                                        : options_.advertise_url;
    join.chip = chip_id_;
    join.devices = options_.devices;
    join.models = {model_id_};
    join.max_in_flight = limits.max_seqs + limits.max_queue;
    join.node = options_.node_group;
    join.admin_url = options_.admin_url;
    try {
      join_ = std::make_unique<JoinClient>(join);
    } catch (...) {
      shutdown();
      throw;
    }
  }
  // Printed once the node takes requests (and has joined its gateway): tests and scripts wait for it.
  log_info("serving '", model_id_, "' on http://", options_.http.host, ":", port, " (", limits.max_seqs,
           " sequences, context ", limits.batch.max_seq_len, " tokens, ", scheduler_->stats().kv.total,
           " KV blocks of ", limits.batch.block_size, " tokens)");
  return port;
}

void Server::engine_loop() {
  while (!stop_.load()) {
    bool worked = false;
    try {
      worked = scheduler_->step();
    } catch (const std::exception& e) {
      log_error("engine step failed: ", e.what(), "; ending the requests in flight");
      scheduler_->abort_all(str_cat("the inference engine failed: ", e.what()));
    }
    if (!worked) scheduler_->wait_for_work(stop_);
  }
}

void Server::shutdown() {
  if (!running_) return;
  running_ = false;
  if (join_) join_->leave();  // the gateway stops routing here before this node stops accepting
  http_->stop_accepting();
  http_->set_closing();
  service_->set_draining();
  const auto wait_idle = [&](double seconds) {
    Stopwatch clock;
    while (service_->active() > 0 && clock.seconds() < seconds) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return service_->active() == 0;
  };
  if (service_->active() > 0) {
    log_info("shutting down: waiting up to ", options_.drain_timeout_s, " s for ", service_->active(),
             " requests in flight");
  }
  if (!wait_idle(options_.drain_timeout_s)) {
    log_warn("shutting down: ending ", service_->active(), " requests still in flight");
    service_->abort_all("the server is shutting down");
    wait_idle(10);
  }
  stop_ = true;
  scheduler_->notify();
  engine_.join();
  // The engine thread is gone, so this thread may end what is left (it releases the replies' connections).
  scheduler_->abort_all("the server is shutting down");
  http_->stop();
  join_.reset();
  log_info("server stopped");
}

}  // namespace mixserve::serve

#include "serve/join_client.h"

#include "common/error.h"
#include "common/log.h"
#include "serve/http_client.h"

namespace mixserve::serve {

namespace {

// host and port of "http://host:port".
std::pair<std::string, uint16_t> split_url(const std::string& url) {
  const std::string prefix = "http://";
  std::string rest = url.rfind(prefix, 0) == 0 ? url.substr(prefix.size()) : "";
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (rest.empty() || colon == std::string::npos || rest.find('/') != std::string::npos) {
    fail(ErrorCode::kInvalidArgument, "gateway URL '", url, "' must be http://host:port");
  }
  const int port = std::atoi(rest.c_str() + colon + 1);
  if (port <= 0 || port > 65535) fail(ErrorCode::kInvalidArgument, "gateway URL '", url, "' has a bad port");
  return {rest.substr(0, colon), static_cast<uint16_t>(port)};
}

}  // namespace

JoinClient::JoinClient(JoinOptions options) : options_(std::move(options)) {
  std::tie(host_, port_) = split_url(options_.gateway_url);
  try {
    post("/v1/join", join_body());
    log_info("joined the gateway ", options_.gateway_url, " as '", options_.name, "' (", options_.advertise_url,
             "); heartbeat every ", interval_s_, " s");
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kUnavailable) throw;  // refused: a configuration error
    log_warn("cannot reach the gateway yet (will keep trying): ", e.what());
  }
  thread_ = std::thread([this] { loop(); });
}

nlohmann::json JoinClient::join_body() const {
  nlohmann::json body = {{"name", options_.name},     {"url", options_.advertise_url}, {"chip", options_.chip},
                         {"devices", options_.devices}, {"models", options_.models},   {"max_in_flight", options_.max_in_flight}};
  if (!options_.node.empty()) body["node"] = options_.node;
  if (!options_.admin_url.empty()) body["admin_url"] = options_.admin_url;
  return body;
}

JoinClient::~JoinClient() {
  leave();
  if (thread_.joinable()) thread_.join();
}

void JoinClient::post(const std::string& path, const nlohmann::json& body) {
  HttpClient client(host_, port_, 5);
  const auto r = client.request("POST", path, body.dump(), {{"authorization", "Bearer " + options_.token}});
  if (r.status != 200) {
    const auto reply = nlohmann::json::parse(r.body, nullptr, false);
    std::string message = r.body;
    if (reply.is_object() && reply.contains("error") && reply["error"].is_object()) {
      message = reply["error"].value("message", r.body);
    }
    fail(ErrorCode::kInvalidArgument, "the gateway ", options_.gateway_url, " refused ", path, " (HTTP ", r.status,
         "): ", message);
  }
  const auto reply = nlohmann::json::parse(r.body, nullptr, false);
  if (reply.is_object() && reply.contains("heartbeat_interval_s") && reply["heartbeat_interval_s"].is_number()) {
    interval_s_ = std::clamp(reply["heartbeat_interval_s"].get<double>(), 0.2, 60.0);
  }
}

void JoinClient::loop() {
  std::unique_lock lock(mutex_);
  bool warned = false;
  while (!stop_) {
    wake_.wait_for(lock, std::chrono::duration<double>(interval_s_), [&] { return stop_; });
    if (stop_) break;
    lock.unlock();
    try {
      post("/v1/join", join_body());
      if (warned) log_info("heartbeat to the gateway ", options_.gateway_url, " works again");
      warned = false;
    } catch (const std::exception& e) {
      if (!warned) log_warn("heartbeat to the gateway failed (will keep trying): ", e.what());
      warned = true;
    }
    lock.lock();
  }
}

void JoinClient::leave() {
  {
    std::lock_guard lock(mutex_);
    if (left_) return;
    left_ = true;
    stop_ = true;
  }
  wake_.notify_all();
  try {
    post("/v1/leave", {{"name", options_.name}});
    log_info("left the gateway ", options_.gateway_url);
  } catch (const std::exception& e) {
    log_warn("could not leave the gateway: ", e.what());
  }
}

}  // namespace mixserve::serve

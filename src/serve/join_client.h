// Joining a gateway (`mixserve serve --join http://gateway --join-token-file F`): the node announces
// itself (name, the URL the gateway should call, chip, devices, model, capacity) with POST /v1/join,
// repeats it as a heartbeat at the interval the gateway asks for, and leaves (POST /v1/leave) when it
// shuts down, so the gateway stops routing to it before it stops serving.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace mixserve::serve {

/// What the node tells the gateway.
struct JoinOptions {
  std::string gateway_url;          ///< "http://host:port" of the gateway
  std::string token;                ///< join token (Bearer)
  std::string name;                 ///< upstream name at the gateway
  std::string advertise_url;        ///< "http://host:port" the gateway calls
  std::string chip;                 ///< catalogue id
  int64_t devices = 1;              ///< accelerators
  std::vector<std::string> models;  ///< model ids served
  int64_t max_in_flight = 64;       ///< requests the gateway may send at once
  std::string node;                 ///< machine it runs on, when one machine hosts several replicas ("" = name)
  std::string admin_url;            ///< the machine's admin API for placement ("" = none)
};

/// The heartbeat thread.
class JoinClient {
 public:
  /// Joins once now, throwing kInvalidArgument when the gateway refuses (bad token, bad fields); a
  /// gateway that cannot be reached yet is logged and tried again at every heartbeat. Heartbeats in
  /// the background until destroyed.
  explicit JoinClient(JoinOptions options);
  /// Leaves the gateway (best effort) and stops.
  ~JoinClient();
  JoinClient(const JoinClient&) = delete;
  JoinClient& operator=(const JoinClient&) = delete;

  /// Tells the gateway to stop routing here (best effort; heartbeats stop too).
  void leave();

 private:
  void post(const std::string& path, const nlohmann::json& body);
  nlohmann::json join_body() const;
  void loop();

  JoinOptions options_;
  std::string host_;
  uint16_t port_ = 0;
  double interval_s_ = 3;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool left_ = false;
  std::thread thread_;
};

}  // namespace mixserve::serve

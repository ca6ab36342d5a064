// Client-side helpers for the serving end-to-end tests: JSON requests, collecting a streamed
// completion, and reading one value out of the Prometheus text of /metrics.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/http_client.h"

namespace mixserve::testing {

/// A JSON reply: status, parsed body (null when it is not JSON) and the raw response.
struct JsonReply {
  int status = 0;                   ///< HTTP status
  nlohmann::json body;              ///< parsed body or null
  serve::HttpResponse raw;          ///< the whole response
};

/// POSTs `body` to `path` on 127.0.0.1:port (optional Bearer `key`).
JsonReply post_json(uint16_t port, const std::string& path, const nlohmann::json& body, const std::string& key = "");
/// GETs `path`.
JsonReply get_json(uint16_t port, const std::string& path, const std::string& key = "");

/// What a streamed completion delivered.
struct StreamResult {
  int status = 0;                        ///< HTTP status
  std::string text;                      ///< concatenated deltas (chat content or completion text)
  std::vector<nlohmann::json> chunks;    ///< every data event except [DONE]
  std::optional<std::string> finish;     ///< finish_reason of the last choice that had one
  nlohmann::json usage;                  ///< usage of the usage chunk (null when absent)
  bool done = false;                     ///< [DONE] arrived last
  std::string error;                     ///< message of an error event, if any
};

/// POSTs a streaming request and collects its events.
StreamResult post_stream(uint16_t port, const std::string& path, nlohmann::json body);

/// Value of the series `name{...}` whose labels contain every `label="value"` in `filters` (summed
/// over matches); nullopt when none matches.
std::optional<double> metric(const std::string& metrics_text, const std::string& name,
                             const std::vector<std::string>& filters = {});
/// GET /metrics, then metric().
double metric_of(uint16_t port, const std::string& name, const std::vector<std::string>& filters = {});

}  // namespace mixserve::testing

#include "support/serve_client.h"

#include <sstream>

namespace mixserve::testing {

using nlohmann::json;

namespace {

serve::HttpHeaders auth(const std::string& key) {
  if (key.empty()) return {};
  return {{"Authorization", "Bearer " + key}};
}

JsonReply to_reply(serve::HttpResponse r) {
  JsonReply out;
  out.status = r.status;
  out.body = json::parse(r.body, nullptr, false);
  if (out.body.is_discarded()) out.body = nullptr;
  out.raw = std::move(r);
  return out;
}

}  // namespace

JsonReply post_json(uint16_t port, const std::string& path, const json& body, const std::string& key) {
  serve::HttpClient client("127.0.0.1", port, 120);
  return to_reply(client.request("POST", path, body.dump(), auth(key)));
}

JsonReply get_json(uint16_t port, const std::string& path, const std::string& key) {
  serve::HttpClient client("127.0.0.1", port, 120);
  return to_reply(client.request("GET", path, "", auth(key)));
}

StreamResult post_stream(uint16_t port, const std::string& path, json body) {
  body["stream"] = true;
  StreamResult out;
  serve::HttpClient client("127.0.0.1", port, 120);
  serve::SseParser sse;
  std::string raw_body;
  const auto r = client.request_streamed("POST", path, body.dump(), {}, [&](std::string_view data) {
    raw_body.append(data);
    sse.feed(data, [&](const std::string& event) {
      out.done = false;
      if (event == "[DONE]") {
        out.done = true;
        return;
      }
      json chunk = json::parse(event, nullptr, false);
      if (chunk.is_discarded()) return;
      if (chunk.contains("error")) out.error = chunk["error"].value("message", "?");
      if (chunk.contains("usage") && !chunk["usage"].is_null()) out.usage = chunk["usage"];
      for (const json& choice : chunk.value("choices", json::array())) {
        if (choice.contains("delta")) out.text += choice["delta"].value("content", "");
        if (choice.contains("text")) out.text += choice["text"].get<std::string>();
        if (!choice["finish_reason"].is_null()) out.finish = choice["finish_reason"].get<std::string>();
      }
      out.chunks.push_back(std::move(chunk));
    });
    return true;
  });
  out.status = r.status;
  if (r.status != 200) {  // an error reply is a JSON body, not events
    json body_json = json::parse(raw_body, nullptr, false);
    if (!body_json.is_discarded() && body_json.contains("error")) out.error = body_json["error"].value("message", "?");
  }
  return out;
}

std::optional<double> metric(const std::string& text, const std::string& name, const std::vector<std::string>& filters) {
  std::istringstream lines(text);
  std::string line;
  std::optional<double> sum;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t brace = line.find('{');
    const size_t space = line.rfind(' ');
    const std::string series = line.substr(0, std::min(brace, space));
    if (series != name) continue;
    bool ok = true;
    for (const std::string& f : filters) ok = ok && line.find(f) != std::string::npos;
    if (!ok) continue;
    sum = sum.value_or(0) + std::stod(line.substr(space + 1));
  }
  return sum;
}

double metric_of(uint16_t port, const std::string& name, const std::vector<std::string>& filters) {
  serve::HttpClient client("127.0.0.1", port, 30);
  return metric(client.request("GET", "/metrics").body, name, filters).value_or(-1);
}

}  // namespace mixserve::testing

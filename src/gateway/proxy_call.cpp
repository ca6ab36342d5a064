#include "gateway/proxy_call.h"

#include <algorithm>
#include <cmath>

#include "common/log.h"
#include "serve/openai_response.h"

namespace mixserve::gateway {

namespace {

using nlohmann::json;

// Tokens a request is expected to serve, for the quota's reservation: about 4 characters a token
// for the prompt, plus the completion budget (max_tokens, else a typical 256).
double estimate_tokens(const json& body, const std::string& route) {
  double chars = 0;
  if (const auto p = body.find("prompt"); p != body.end()) {
    chars = p->is_string() ? static_cast<double>(p->get_ref<const std::string&>().size()) : static_cast<double>(p->dump().size());
  } else if (const auto m = body.find("messages"); m != body.end()) {
    chars = static_cast<double>(m->dump().size());
  }
  double completion = route == "/v1/completions" ? 16 : 256;
  for (const char* k : {"max_tokens", "max_completion_tokens"}) {
    if (const auto v = body.find(k); v != body.end() && v->is_number()) completion = std::clamp(v->get<double>(), 0.0, 1e6);
  }
  return chars / 4 + completion;
}

bool retryable_status(int status) { return status == 429 || status >= 500; }

// Shorter completions say more about overheads (and prefill) than about the upstream's decode speed.
constexpr double kMinSpeedSampleTokens = 8;

std::optional<double> speed_sample(double completion_tokens, double seconds) {
  if (completion_tokens < kMinSpeedSampleTokens || seconds <= 0) return std::nullopt;
  return completion_tokens / seconds;
}

}  // namespace

ProxyCall::ProxyCall(ProxyContext context, std::shared_ptr<serve::HttpExchange> exchange, std::string route,
                     nlohmann::json body, std::string tenant, std::function<void()> on_end)
    : ctx_(context),
      exchange_(std::move(exchange)),
      route_(std::move(route)),
      body_(std::move(body)),
      tenant_(std::move(tenant)),
      on_end_(std::move(on_end)),
      arrival_(Clock::now()) {
  model_ = body_.at("model").get<std::string>();
  const auto s = body_.find("stream");
  stream_ = s != body_.end() && s->is_boolean() && s->get<bool>();
  if (stream_) {
    // Ask the upstream for the usage chunk (for accounting); the client gets it only if it asked.
    const auto so = body_.find("stream_options");
    client_wants_usage_ = so != body_.end() && so->is_object() && so->value("include_usage", false);
    json upstream = body_;
    upstream["stream_options"] = json::object({{"include_usage", true}});
    upstream_body_ = upstream.dump();
  } else {
    upstream_body_ = exchange_->request().body;  // as the client sent it: no need to serialise again
  }
  key_ = affinity_key(body_, ctx_.config->routing.affinity_prefix_chars);
  est_tokens_ = estimate_tokens(body_, route_);
}

void ProxyCall::start() {
  auto self = shared_from_this();
  exchange_->on_disconnect([weak = std::weak_ptr<ProxyCall>(self)] {
    const auto call = weak.lock();
    if (!call) return;
    std::shared_ptr<UpstreamCall> upstream_call;
    {
      std::lock_guard lock(call->call_mutex_);
      upstream_call = call->call_;
    }
    if (upstream_call) upstream_call->cancel();
  });
  route();
}

double ProxyCall::seconds_since_arrival() const {
  return std::chrono::duration<double>(Clock::now() - arrival_).count();
}

void ProxyCall::route() {
  if (exchange_->disconnected()) return finish("cancelled", 499, 0);
  const auto now = Clock::now();
  const QuotaDecision quota = ctx_.quota->decide(est_tokens_, now);
  RouteRanking ranking = rank_upstreams(ctx_.upstreams->all(), model_, key_, ctx_.config->routing.weights, quota, now);
  if (!ranking.any_serves) {
    return reply_error(404, "The model '" + model_ + "' is not served by any upstream", "invalid_request_error",
                       "model_not_found");
  }
  // Prefer an upstream not tried yet for this request; fall back to a tried one only when it is alone.
  const ScoredUpstream* chosen = nullptr;
  for (const auto& s : ranking.ranked) {
    if (!s.allowed || !s.available) break;
    if (!tried_.count(s.state.name)) {
      chosen = &s;
      break;
    }
    if (!chosen) chosen = &s;
  }
  if (chosen && chosen->upstream->acquire()) return send(*chosen, ranking);
  if (!ranking.any_healthy) {
    const std::string why = last_error_.empty() ? "" : " (last error: " + last_error_ + ")";
    return reply_error(503, "No healthy upstream serves the model '" + model_ + "'" + why, "server_error",
                       "no_healthy_upstream");
  }
  // Upstreams exist but none allowed has room: wait for one, up to the queue timeout.
  if (seconds_since_arrival() < ctx_.config->quota.queue_timeout_s) {
    ctx_.client->after(0.005, [self = shared_from_this()] { self->route(); });
    return;
  }
  if (!quota.foreign_allowed) {
    ctx_.metrics->quota_decision("rejected");
    return reply_error(429, "Domestic capacity is exhausted and the domestic-share rule forbids foreign upstreams: " +
                                quota.reason,
                       "rate_limit_exceeded", "domestic_quota", {{"retry-after", "1"}});
  }
  reply_error(429, "Every upstream serving '" + model_ + "' is at capacity", "rate_limit_exceeded", "capacity",
              {{"retry-after", "1"}});
}

void ProxyCall::send(const ScoredUpstream& chosen, const RouteRanking& ranking) {
  upstream_ = chosen.upstream;
  chosen_ = chosen.state;
  route_summary_ = ranking.summary();
  tried_.insert(chosen_.name);
  ++attempts_;
  if (attempts_ == 1) ctx_.metrics->routing_time(seconds_since_arrival());
  if (!ranking.quota.foreign_allowed) ctx_.metrics->quota_decision("domestic_only");
  else ctx_.metrics->quota_decision("any");
  if (ranking.quota.audit_violation && !chosen_.domestic) {
    ctx_.metrics->quota_decision("audit_violation");
    if (ctx_.usage) {
      ctx_.usage->record(policy::RecordKind::kPolicyEvaluation,
                         {{"event", "quota_audit_violation"}, {"upstream", chosen_.name}, {"chip", chosen_.chip},
                          {"model", model_}, {"reason", ranking.quota.reason}});
    }
  }
  ticket_ = ctx_.quota->reserve(chosen_.domestic, est_tokens_);
  status_ = 0;
  collected_.clear();
  upstream_headers_.clear();
  sent_at_ = Clock::now();

  UpstreamRequest req;
  req.endpoint = upstream_->config().endpoint;
  req.method = "POST";
  req.target = route_;
  req.body = upstream_body_;
  if (!upstream_->config().api_key.empty()) req.headers.emplace_back("authorization", "Bearer " + upstream_->config().api_key);
  req.connect_timeout_s = ctx_.config->retry.connect_timeout_s;
  req.first_byte_timeout_s = ctx_.config->retry.first_byte_timeout_s;
  req.idle_timeout_s = ctx_.config->retry.idle_timeout_s;
  UpstreamHandler h;
  auto self = shared_from_this();
  h.on_header = [self](int status, const serve::HttpHeaders& headers) { self->on_header(status, headers); };
  h.on_body = [self](std::string_view data) { return self->on_body(data); };
  h.on_done = [self](const std::string& error, bool got_header) { self->on_done(error, got_header); };
  auto call = ctx_.client->send(std::move(req), std::move(h));
  std::lock_guard lock(call_mutex_);
  call_ = std::move(call);
}

serve::HttpHeaders ProxyCall::route_headers() const {
  return {{"x-mixserve-upstream", chosen_.name},
          {"x-mixserve-chip", chosen_.chip},
          {"x-mixserve-origin", chosen_.domestic ? "domestic" : "foreign"},
          {"x-mixserve-attempts", std::to_string(attempts_)},
          {"x-mixserve-route", route_summary_}};
}

void ProxyCall::on_header(int status, const serve::HttpHeaders& headers) {
  status_ = status;
  upstream_headers_ = headers;
  if (status == 200 && stream_) {
    streaming_ = true;
    first_data_at_ = Clock::now();
    exchange_->begin_stream(200, "text/event-stream", route_headers());
  }
}

bool ProxyCall::on_body(std::string_view data) {
  if (!streaming_) {
    collected_.append(data);
    return collected_.size() <= ctx_.config->max_body_bytes * 4 + (64u << 20);
  }
  sse_.feed(data, [this](const std::string& event) { forward_event(event); });
  return !exchange_->disconnected();
}

void ProxyCall::forward_event(const std::string& data) {
  if (data == "[DONE]") {
    saw_done_ = true;
    exchange_->write(serve::sse_done());
    return;
  }
  json event = json::parse(data, nullptr, false);
  if (event.is_object()) {
    if (event.contains("error")) saw_error_event_ = true;
    if (const auto u = event.find("usage"); u != event.end() && u->is_object()) {
      usage_seen_ = true;
      prompt_tokens_ = u->value("prompt_tokens", 0.0);
      completion_tokens_ = u->value("completion_tokens", 0.0);
      const auto choices = event.find("choices");
      const bool usage_only = choices == event.end() || (choices->is_array() && choices->empty());
      if (usage_only && !client_wants_usage_) return;
    } else if (event.contains("choices")) {
      chunks_ += 1;
    }
  }
  exchange_->write("data: " + data + "\n\n");
}

void ProxyCall::on_done(const std::string& error, bool got_header) {
  {
    std::lock_guard lock(call_mutex_);
    call_.reset();
  }
  const auto now = Clock::now();
  if (streaming_) {
    const double served = usage_seen_ ? prompt_tokens_ + completion_tokens_ : chunks_;
    upstream_->release();
    if (!error.empty() || !saw_done_) {
      const std::string why = error.empty() ? "the upstream ended the stream without [DONE]" : error;
      if (exchange_->disconnected()) {
        ctx_.metrics->attempt(chosen_, "ok");
        return finish("cancelled", 499, served);
      }
      upstream_->record_failure(why, ctx_.config->health.failure_threshold, ctx_.config->health.open_s, now);
      ctx_.metrics->attempt(chosen_, "error");
      exchange_->write(serve::sse_event(serve::error_body(
          "upstream '" + chosen_.name + "' failed during the stream: " + why, "server_error", "", "upstream_failed")));
      exchange_->write(serve::sse_done());
      record_end("stream_error", 200, served);
      exchange_->end_stream();
      return finish("stream_error", 200, served);
    }
    upstream_->record_success();
    const double decode_s = std::chrono::duration<double>(now - first_data_at_).count();
    upstream_->record_served(served, speed_sample(completion_tokens_, decode_s), ctx_.config->routing.speed_alpha);
    ctx_.metrics->attempt(chosen_, "ok");
    const char* outcome = saw_error_event_ ? "stream_error" : "ok";
    record_end(outcome, 200, served);
    exchange_->end_stream();
    return finish(outcome, 200, served);
  }
  upstream_->release();
  if (!error.empty() || !got_header || retryable_status(status_)) {
    const std::string why = !error.empty() ? error : "HTTP " + std::to_string(status_) + " " + collected_.substr(0, 200);
    if (status_ == 429) {
      ctx_.metrics->attempt(chosen_, "busy");  // a full node is healthy: no circuit penalty
    } else {
      upstream_->record_failure(why, ctx_.config->health.failure_threshold, ctx_.config->health.open_s, now);
      ctx_.metrics->attempt(chosen_, "error");
    }
    ctx_.quota->settle(ticket_, 0, now);
    ticket_ = 0;
    return retry_or_fail(why);
  }
  // A whole reply (success or the upstream's own 4xx verdict on the request): pass it on.
  double served = 0;
  if (status_ == 200) {
    const json reply = json::parse(collected_, nullptr, false);
    if (reply.is_object()) {
      if (const auto u = reply.find("usage"); u != reply.end() && u->is_object()) {
        prompt_tokens_ = u->value("prompt_tokens", 0.0);
        completion_tokens_ = u->value("completion_tokens", 0.0);
        served = prompt_tokens_ + completion_tokens_;
      }
    }
    upstream_->record_success();
    const double total_s = std::chrono::duration<double>(now - sent_at_).count();
    upstream_->record_served(served, speed_sample(completion_tokens_, total_s), ctx_.config->routing.speed_alpha);
  }
  ctx_.metrics->attempt(chosen_, "ok");
  std::string content_type = "application/json";
  for (const auto& [k, v] : upstream_headers_) {
    if (k == "content-type") content_type = v;
  }
  auto headers = route_headers();
  const char* outcome = status_ == 200 ? "ok" : "client_error";
  record_end(outcome, status_, served);
  exchange_->respond(status_, content_type, std::move(collected_), std::move(headers));
  finish(outcome, status_, served);
}

void ProxyCall::retry_or_fail(const std::string& why) {
  last_error_ = chosen_.name + ": " + why;
  log_warn("gateway: attempt ", attempts_, " of a ", route_, " request on upstream '", chosen_.name, "' failed: ", why);
  if (attempts_ >= ctx_.config->retry.max_attempts || exchange_->disconnected()) {
    if (exchange_->disconnected()) return finish("cancelled", 499, 0);
    return reply_error(502, "Every attempt failed (" + std::to_string(attempts_) + "); last: " + last_error_,
                       "server_error", "upstream_failed");
  }
  ctx_.metrics->retry();
  const double backoff = ctx_.config->retry.backoff_s * std::pow(2.0, attempts_ - 1);
  ctx_.client->after(backoff, [self = shared_from_this()] { self->route(); });
}

void ProxyCall::reply_error(int status, const std::string& message, const std::string& type, const std::string& code,
                            serve::HttpHeaders headers) {
  if (attempts_ > 0) {
    headers.emplace_back("x-mixserve-attempts", std::to_string(attempts_));
  }
  const char* outcome = status == 404 ? "client_error"
                        : status == 429 ? (code == "domestic_quota" ? "rejected_quota" : "rejected_capacity")
                        : status == 503 ? "no_upstream"
                                        : "failed";
  record_end(outcome, status, 0);
  exchange_->respond(status, "application/json", serve::error_body(message, type, "", code).dump(), std::move(headers));
  finish(outcome, status, 0);
}

void ProxyCall::finish(const std::string& outcome, int status, double served_tokens) {
  if (ended_) return;
  ended_ = true;
  record_end(outcome, status, served_tokens);
  if (on_end_) on_end_();
}

void ProxyCall::record_end(const std::string& outcome, int status, double served_tokens) {
  if (recorded_) return;
  recorded_ = true;
  const auto now = Clock::now();
  if (ticket_ != 0) ctx_.quota->settle(ticket_, served_tokens, now);
  ticket_ = 0;
  if (served_tokens > 0 && upstream_) {
    ctx_.metrics->tokens(chosen_, served_tokens);
    if (ctx_.usage) ctx_.usage->add_tokens(chosen_, served_tokens);
  }
  ctx_.metrics->outcome(outcome);
  ctx_.metrics->request(route_, status);
  ctx_.metrics->request_time(seconds_since_arrival());
  const std::string where = upstream_ ? chosen_.name : "-";
  if (outcome == "ok") {
    log_debug("gateway: ", route_, " model=", model_, " tenant=", tenant_, " upstream=", where, " attempts=", attempts_,
              " outcome=ok tokens=", served_tokens);
  } else {
    log_info("gateway: ", route_, " model=", model_, " tenant=", tenant_, " upstream=", where, " attempts=", attempts_,
             " outcome=", outcome, " status=", status, last_error_.empty() ? "" : " last_error=" + last_error_);
  }
}

}  // namespace mixserve::gateway

#include "agent/api.h"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <algorithm>

#include "loyalty/v1/api.pb.h"
#include "proto/json.h"

namespace loyalty::agent {
namespace {

namespace http = boost::beast::http;
namespace v1 = loyalty::v1;

constexpr const char* kJson = "application/json";
constexpr const char* kPrometheusText = "text/plain; version=0.0.4; charset=utf-8";

enum class Route {
  kHealth,
  kEnrol,
  kLookup,
  kQuote,
  kCommit,
  kVoid,
  kRedeem,
  kMetrics,
  kSyncStatus,
  kSyncNow,
  kUnmatched,
  kRejected,
};

struct RouteSpec {
  Route route;
  const char* label;  // metric label: the path pattern
  http::verb method;
};

// Order matters only for the metric index, which is the enum value.
constexpr std::array<RouteSpec, 12> kRoutes = {{
    {Route::kHealth, "/v1/health", http::verb::get},
    {Route::kEnrol, "/v1/members", http::verb::post},
    {Route::kLookup, "/v1/members/{card}", http::verb::get},
    {Route::kQuote, "/v1/checkout/quote", http::verb::post},
    {Route::kCommit, "/v1/checkout/commit", http::verb::post},
    {Route::kVoid, "/v1/checkout/void", http::verb::post},
    {Route::kRedeem, "/v1/redemptions", http::verb::post},
    {Route::kMetrics, "/metrics", http::verb::get},
    {Route::kSyncStatus, "/v1/sync", http::verb::get},
    // Same path, other method: the label tells the two apart in metrics.
    {Route::kSyncNow, "/v1/sync (POST)", http::verb::post},
    {Route::kUnmatched, "unmatched", http::verb::unknown},
    {Route::kRejected, "rejected", http::verb::unknown},
}};

constexpr std::string_view kMembersPrefix = "/v1/members/";

// Finds the route of `path`; for a lookup, `*card_segment` is the raw card.
Route MatchPath(std::string_view path, std::string_view* card_segment) {
  if (path.starts_with(kMembersPrefix)) {
    std::string_view rest = path.substr(kMembersPrefix.size());
    if (rest.find('/') != std::string_view::npos) return Route::kUnmatched;
    *card_segment = rest;
    return Route::kLookup;
  }
  for (const RouteSpec& spec : kRoutes) {
    if (spec.route != Route::kLookup && spec.method != http::verb::unknown && path == spec.label) {
      return spec.route;
    }
  }
  return Route::kUnmatched;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string ErrorBody(std::string_view code, std::string_view message) {
  v1::ErrorResponse response;
  response.mutable_error()->set_code(std::string(code));
  response.mutable_error()->set_message(std::string(message));
  return proto::ToJson(response);
}

// Hands a successful response to the customer display: its JSON and the
// message itself (moved, not copied: the display keeps it).
using Publish =
    std::function<void(const std::string& json, std::shared_ptr<google::protobuf::Message>)>;

// Answers `respond` with `result`: the message as JSON with `ok_status`, or
// the error. Runs on an I/O thread or the service's writer thread, so it
// must not throw; `publish` (may be empty) sees the JSON of a success.
template <typename T>
void Finish(core::Result<T> result, unsigned ok_status, const Respond& respond,
            const Publish& publish) {
  try {
    if (!result.ok()) {
      const core::Error& e = result.error();
      respond(Api::HttpStatusForError(e.code), ErrorBody(e.code, e.message), kJson);
      return;
    }
    std::string json = proto::ToJson(result.value());
    if (publish) {
      try {
        publish(json, std::make_shared<T>(std::move(result).value()));
      } catch (const std::exception& ex) {
        // The customer display is a nicety: never fail the checkout for it.
        spdlog::warn("api: display update failed: {}", ex.what());
      }
    }
    respond(ok_status, std::move(json), kJson);
  } catch (const std::exception& ex) {
    spdlog::error("api: building the response failed: {}", ex.what());
    respond(500, ErrorBody(core::code::kInternal, "internal error"), kJson);
  }
}

}  // namespace

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = HexValue(in[i + 1]);
    const int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    const char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') return false;
    out->push_back(c);
    i += 2;
  }
  return true;
}

Api::Api(CheckoutService* service, Metrics* metrics, DisplayHub* display)
    : service_(service), metrics_(metrics), display_(display) {}

void Api::SetSync(sync::AgentSync* sync) { sync_ = sync; }

namespace {

v1::SyncStatusResponse ToResponse(const sync::SyncStatus& status) {
  v1::SyncStatusResponse out;
  out.set_enabled(true);
  out.set_server(status.server);
  out.set_connected(status.connected);
  out.set_pending_events(status.pending_events);
  out.set_dead_letters(status.dead_letters);
  out.set_last_success_ms(status.last_success_ms);
  if (status.last_error) {
    out.mutable_last_error()->set_code(status.last_error->code);
    out.mutable_last_error()->set_message(status.last_error->message);
  }
  out.set_cursor(status.cursor);
  out.set_epoch(status.epoch);
  if (status.clock_skew_ms) out.set_clock_skew_ms(*status.clock_skew_ms);
  for (const auto& d : status.recent_dead_letters) {
    auto* view = out.add_recent_dead_letters();
    view->set_event_id(d.event_key);
    view->set_code(d.code);
    view->set_message(d.message);
    view->set_rejected_at_ms(d.rejected_at_ms);
  }
  return out;
}

}  // namespace

v1::SyncStatusResponse Api::SyncStatusJson() {
  if (!sync_) {
    v1::SyncStatusResponse out;
    out.set_enabled(false);
    out.set_pending_events(service_->PendingEvents());
    return out;
  }
  return ToResponse(sync_->Status());
}

void Api::HandleSyncNow(const HttpRequest& request, Respond done) {
  if (!sync_) {
    done(503,
         ErrorBody(core::code::kUnavailable,
                   "sync is not configured: start the agent with --server and --tls-dir"),
         kJson);
    return;
  }
  // ?timeout_ms=N bounds the wait (default 30 s, at most 5 min).
  int64_t timeout_ms = 30000;
  std::string_view target(request.target().data(), request.target().size());
  if (auto q = target.find("timeout_ms="); q != std::string_view::npos) {
    try {
      timeout_ms = std::clamp<int64_t>(std::stoll(std::string(target.substr(q + 11))), 1, 300000);
    } catch (const std::exception&) {
      done(400, ErrorBody(core::code::kInvalidRequest, "timeout_ms must be an integer"), kJson);
      return;
    }
  }
  // The round blocks for up to the timeout: run it off the I/O thread.
  sync::AgentSync* sync = sync_;
  std::thread([sync, timeout_ms, done = std::move(done)] {
    try {
      auto result = sync->SyncNow(std::chrono::milliseconds(timeout_ms));
      if (!result.ok()) {
        // The round failed (server unreachable, certificate expired, ...):
        // the usual error body; GET /v1/sync has the rest of the state.
        done(503, ErrorBody(result.error().code, result.error().message), kJson);
        return;
      }
      done(200, proto::ToJson(ToResponse(*result)), kJson);
    } catch (const std::exception& ex) {
      spdlog::error("api: POST /v1/sync: {}", ex.what());
      done(500, ErrorBody(core::code::kInternal, "internal error"), kJson);
    }
  }).detach();
}

std::vector<std::string> Api::RouteNames() {
  std::vector<std::string> names;
  for (const RouteSpec& spec : kRoutes) names.emplace_back(spec.label);
  return names;
}

unsigned Api::HttpStatusForError(std::string_view code) {
  namespace c = core::code;
  if (code == c::kUnknownCard || code == c::kNotFound) return 404;
  if (code == c::kConflict || code == c::kAlreadyEnrolled || code == c::kAlreadyReversed ||
      code == c::kInsufficientPoints) {
    return 409;
  }
  if (code == c::kTooLarge) return 413;
  if (code == c::kUnavailable || code == c::kDiskFull || code == c::kDatabaseCorrupt) return 503;
  if (code == "method_not_allowed") return 405;
  if (code.starts_with("invalid_")) return 400;  // invalid_card, invalid_request, ...
  return 500;
}

void Api::Handle(const HttpRequest& request, Respond respond) {
  const auto start = std::chrono::steady_clock::now();
  std::string_view target(request.target().data(), request.target().size());
  const std::string_view path = target.substr(0, target.find('?'));
  std::string_view card_segment;
  const Route route = MatchPath(path, &card_segment);

  // Every answer goes through here, so each request is counted once.
  Metrics* metrics = metrics_;
  const int metric_index = static_cast<int>(route);
  Respond done = [metrics, metric_index, start, respond = std::move(respond)](
                     unsigned status, std::string body, std::string content_type,
                     std::string allow) {
    if (metrics) {
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      metrics->Observe(metric_index, status, elapsed.count());
    }
    respond(status, std::move(body), std::move(content_type), std::move(allow));
  };
  auto error = [&done](std::string_view code, std::string_view message) {
    done(HttpStatusForError(code), ErrorBody(code, message), kJson);
  };

  try {
    if (route == Route::kUnmatched) {
      return error(core::code::kNotFound, "no such endpoint: " + std::string(path));
    }
    if (route == Route::kSyncStatus && request.method() == http::verb::post) {
      return HandleSyncNow(request, std::move(done));
    }
    const RouteSpec& spec = kRoutes[static_cast<std::size_t>(route)];
    if (request.method() != spec.method) {
      const std::string allow =
          route == Route::kSyncStatus ? "GET, POST" : std::string(http::to_string(spec.method));
      return done(
          405, ErrorBody("method_not_allowed", std::string(path) + " accepts " + allow + " only"),
          kJson, allow);
    }
    // Parses the request body into `msg`; false after answering 400.
    auto parse = [&](google::protobuf::Message* msg) {
      std::string err = proto::ParseJson(request.body(), msg);
      if (err.empty()) return true;
      // The parser may append a multi-line caret diagram; the first line is
      // the sentence.
      err = err.substr(0, err.find('\n'));
      error(core::code::kInvalidRequest, "request body: " + err);
      return false;
    };
    DisplayHub* display = display_;
    auto publisher = [display](const char* kind) -> Publish {
      if (!display) return {};
      return [display, kind](const std::string& json,
                             std::shared_ptr<google::protobuf::Message> m) {
        display->Publish(kind, json, std::move(m));
      };
    };

    switch (route) {
      case Route::kHealth: {
        v1::HealthResponse health = service_->Health();
        return done(health.status() == "ok" ? 200 : 503, proto::ToJson(health), kJson);
      }
      case Route::kMetrics:
        return done(200, metrics_ ? metrics_->Render() : std::string(), kPrometheusText);
      case Route::kLookup: {
        std::string card;
        if (!PercentDecode(card_segment, &card)) {
          return error(core::code::kInvalidCard,
                       "the card in the URL is not valid percent-encoding");
        }
        return Finish(service_->LookupMember(card), 200, done, publisher("member"));
      }
      case Route::kQuote: {
        v1::QuoteRequest req;
        if (!parse(&req)) return;
        return Finish(service_->Quote(req), 200, done, publisher("quote"));
      }
      case Route::kEnrol: {
        v1::EnrolRequest req;
        if (!parse(&req)) return;
        auto pub = publisher("member");
        service_->Enrol(std::move(req), [done, pub](core::Result<v1::MemberResponse> r) {
          Finish(std::move(r), 201, done, pub);
        });
        return;
      }
      case Route::kCommit: {
        v1::CommitRequest req;
        if (!parse(&req)) return;
        auto pub = publisher("commit");
        service_->Commit(std::move(req), [done, pub](core::Result<v1::CommitResponse> r) {
          Finish(std::move(r), 200, done, pub);
        });
        return;
      }
      case Route::kVoid: {
        v1::VoidRequest req;
        if (!parse(&req)) return;
        service_->Void(std::move(req),
                       [done](core::Result<v1::VoidResponse> r) {
                         Finish(std::move(r), 200, done, nullptr);
                       });
        return;
      }
      case Route::kRedeem: {
        v1::RedeemRequest req;
        if (!parse(&req)) return;
        service_->Redeem(std::move(req), [done](core::Result<v1::RedeemResponse> r) {
          Finish(std::move(r), 200, done, nullptr);
        });
        return;
      }
      case Route::kSyncStatus:
        return done(200, proto::ToJson(SyncStatusJson()), kJson);
      case Route::kSyncNow:  // dispatched above, by method
      case Route::kUnmatched:
      case Route::kRejected:
        break;
    }
    error(core::code::kNotFound, "no such endpoint: " + std::string(path));
  } catch (const std::exception& ex) {
    // The HTTP layer's completion ignores a second call, so answering here
    // is safe even if the exception came after a response was handed over.
    spdlog::error("api: {} {}: {}", std::string(request.method_string()), std::string(path),
                  ex.what());
    error(core::code::kInternal, "internal error");
  }
}

}  // namespace loyalty::agent

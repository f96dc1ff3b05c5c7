// Api: the local HTTP/JSON API that POS software calls, mapped onto the
// CheckoutService. JSON is protobuf's mapping of the loyalty.v1 API messages
// (proto/json.h); the snake_case field names are the contract.
//
//   GET  /v1/health               HealthResponse
//   POST /v1/members              EnrolRequest   -> 201 MemberResponse
//   GET  /v1/members/{card}       MemberResponse (card percent-decoded)
//   POST /v1/checkout/quote       QuoteRequest   -> QuoteResponse (changes nothing)
//   POST /v1/checkout/commit      CommitRequest  -> CommitResponse
//   POST /v1/checkout/void        VoidRequest    -> VoidResponse
//   POST /v1/redemptions          RedeemRequest  -> RedeemResponse
//   GET  /v1/sync                 SyncStatusResponse (enabled=false offline)
//   POST /v1/sync[?timeout_ms=N]  runs one sync round now and waits for it
//                                 (default 30 s): 200 SyncStatusResponse, or
//                                 503 with the round's error (e.g.
//                                 connect_failed, certificate_expired);
//                                 503 unavailable without --server
//   GET  /metrics                 Prometheus text
//
// Every error is {"error":{"code":"...","message":"..."}} (ErrorResponse)
// with the status from HttpStatusForError. Requests that do not parse (bad
// JSON, wrong types, unknown fields) are 400 invalid_request with the
// parser's sentence; unknown paths 404 not_found; a known path with another
// method 405 method_not_allowed. The Content-Type of a request is not
// checked: a body that parses is accepted.
//
// After a successful lookup or enrolment, quote and commit the response is
// published to the DisplayHub ("member", "quote", "commit"); responses carry
// no card number.
//
// Ownership: the Api borrows the service, metrics and display hub; they must
// outlive it and every response still pending. Thread-safe: Handle may run on
// several I/O threads at once.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/checkout_service.h"
#include "agent/display_hub.h"
#include "agent/http_server.h"
#include "agent/metrics.h"
#include "loyalty/v1/api.pb.h"
#include "sync/agent_sync.h"

namespace loyalty::agent {

class Api {
 public:
  // `display` may be null (no customer display).
  Api(CheckoutService* service, Metrics* metrics, DisplayHub* display);
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // An HttpHandler: answers through `respond`, now or from the service's
  // writer thread. Never throws.
  void Handle(const HttpRequest& request, Respond respond);

  // Metric label values of the routes, for the Metrics registry; includes
  // "unmatched" (unknown paths) and "rejected" (answered by the HTTP layer).
  static std::vector<std::string> RouteNames();

  // The HTTP status for a core error code. insufficient_points is 409, like
  // every other answer meaning "valid request, but the member's current
  // state does not allow it"; clients tell them apart by the code.
  static unsigned HttpStatusForError(std::string_view code);

  // Enables the /v1/sync routes with a running sync client (borrowed; it
  // must outlive the Api). Call before serving.
  void SetSync(sync::AgentSync* sync);

 private:
  loyalty::v1::SyncStatusResponse SyncStatusJson();
  void HandleSyncNow(const HttpRequest& request, Respond done);

  CheckoutService* service_;
  sync::AgentSync* sync_ = nullptr;
  Metrics* metrics_;
  DisplayHub* display_;
};

// Percent-decodes a URL path segment. Returns false on a malformed escape or
// an encoded NUL.
bool PercentDecode(std::string_view in, std::string* out);

}  // namespace loyalty::agent

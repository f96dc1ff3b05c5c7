// AdminApi: head office's admin endpoints, independent of HTTP framing
// (admin_http.h carries them over mutual TLS). JSON bodies are the messages
// of proto/loyalty/v1/admin.proto and domain.proto; errors are
// {"error":{"code","message"}} with a matching HTTP status; bad input
// changes nothing.
//
//   GET    /v1/admin/members/{card_number_or_member_id}[?history=N]
//   GET    /v1/admin/stores
//   GET    /v1/admin/promotions
//   PUT    /v1/admin/promotions/{id}        body: loyalty.v1.Offer
//   DELETE /v1/admin/promotions/{id}
//   GET    /v1/admin/programme
//   PUT    /v1/admin/programme              body: loyalty.v1.Programme
//   GET    /v1/admin/conflicts
//   GET    /v1/admin/segments               loyalty.v1.SegmentList
//   GET    /v1/admin/segments/{id}
//   PUT    /v1/admin/segments/{id}          body: loyalty.v1.SegmentDefinition
//   DELETE /v1/admin/segments/{id}
//   POST   /v1/admin/segments/preview       body: SegmentDefinition -> SegmentPreview
//   POST   /v1/admin/promotions/preview     body: Offer -> PromotionPreview
//   GET    /v1/admin/kpis[?since=YYYY-MM-DD] loyalty.v1.KpiReport
//   GET    /v1/admin/members/{key}/features loyalty.v1.MemberFeatures
//   PUT    /v1/admin/members/{key}/consent  body: loyalty.v1.MemberConsent
//   POST   /v1/admin/members/{key}/erase    loyalty.v1.EraseResponse
//   GET    /metrics                         Prometheus text
//
// Segment and promotion changes are validated (invalid_segment with the
// position and reason; invalid_offer for an ended window, an unknown
// segment, a negative reward) and nothing is saved when they fail. A saved
// or deleted segment starts a full segmentation pass (server/segmentation.h).
//
// A path segment that normalises as a card number (core/card.h) is hashed
// with the programme's card-hash key; without a key, card lookups answer
// 400 card_lookup_unavailable and member-id lookups still work.
//
// Handle() may be called from any thread: store work is posted to the
// DbWorker and `respond` is called once, from the database thread (KPIs and
// previews, which scan every member: from the reader thread; at once for
// /metrics and for errors found before any store work). `db`,
// `metrics` and `sync` must outlive every pending request.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "server/db_worker.h"
#include "server/metrics.h"
#include "server/sync_service.h"

namespace loyalty::server {

struct AdminRequest {
  std::string method;  // "GET", "PUT", ...
  std::string target;  // path and optional query
  std::string body;
  std::string admin;  // the admin name from the client certificate, for the audit log
};

struct AdminReply {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
};

class AdminApi {
 public:
  AdminApi(DbWorker& db, ServerMetrics& metrics, std::shared_ptr<SyncService> sync,
           std::optional<std::string> card_hash_key);

  void Handle(AdminRequest request, std::function<void(AdminReply)> respond);

  // Told when segment definitions change (optional; set before serving).
  void SetSegmenter(std::shared_ptr<class Segmenter> segmenter) { segmenter_ = std::move(segmenter); }

 private:
  // Runs on the database thread.
  AdminReply Route(const AdminRequest& request, storage::ServerStore& store);
  AdminReply Member(const std::string& key, int history, storage::ServerStore& store);
  AdminReply Stores(storage::ServerStore& store);
  AdminReply Health(storage::ServerStore& store);
  AdminReply PutOffer(const AdminRequest& request, const std::string& id,
                      storage::ServerStore& store);
  AdminReply RetireOffer(const AdminRequest& request, const std::string& id,
                         storage::ServerStore& store);
  AdminReply PutProgramme(const AdminRequest& request, storage::ServerStore& store);
  AdminReply Published(uint64_t version, const std::string& id);
  AdminReply Segments(const AdminRequest& request, const std::optional<std::string>& id,
                      storage::ServerStore& store);
  AdminReply MemberAction(const AdminRequest& request, const std::string& key,
                          std::string_view action, storage::ServerStore& store);
  core::Result<std::string> LookupKey(const std::string& key);

  DbWorker& db_;
  ServerMetrics& metrics_;
  std::shared_ptr<SyncService> sync_;
  const std::optional<std::string> card_hash_key_;
  std::shared_ptr<class Segmenter> segmenter_;
};

// {"error":{"code":...,"message":...}} with the HTTP status for `code`.
AdminReply ErrorReply(const core::Error& error);

}  // namespace loyalty::server

#include "server/admin_api.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <string_view>
#include <vector>

#include "core/card.h"
#include "core/offers.h"
#include "loyalty/v1/admin.pb.h"
#include "loyalty/v1/api.pb.h"
#include "core/segment_expr.h"
#include "core/time_util.h"
#include "loyalty/v1/segments.pb.h"
#include "proto/json.h"
#include "server/clock.h"
#include "server/segmentation.h"

namespace loyalty::server {
namespace {

namespace v1 = loyalty::v1;
using core::MakeError;

constexpr int kDefaultHistory = 50;
constexpr int kMaxHistory = 1000;

// "YYYY-MM-DD" as UTC midnight in ms; nullopt when malformed.
std::optional<int64_t> ParseDate(std::string_view s) {
  int y = 0, m = 0, d = 0;
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  auto num = [&](size_t at, size_t n, int* out) {
    auto [p, ec] = std::from_chars(s.data() + at, s.data() + at + n, *out);
    return ec == std::errc() && p == s.data() + at + n;
  };
  if (!num(0, 4, &y) || !num(5, 2, &m) || !num(8, 2, &d)) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(m),
                                        std::chrono::day(d)};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days(ymd).time_since_epoch().count() * core::kMillisPerDay;
}

unsigned StatusFor(const std::string& code) {
  if (code == core::code::kNotFound || code == core::code::kUnknownCard) return 404;
  if (code == core::code::kConflict) return 409;
  if (code == core::code::kTooLarge) return 413;
  if (code == core::code::kUnavailable || code == core::code::kDiskFull ||
      code == core::code::kDatabaseCorrupt) {
    return 503;
  }
  if (code == core::code::kInternal) return 500;
  if (code == "method_not_allowed") return 405;
  return 400;  // invalid_request, invalid_offer, invalid_programme, invalid_card, ...
}

AdminReply Json(const google::protobuf::Message& message, unsigned status = 200) {
  return AdminReply{status, proto::ToJson(message), "application/json"};
}

// Decodes %XX escapes in a path segment; nullopt when malformed.
std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    unsigned value = 0;
    auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, value, 16);
    if (ec != std::errc() || p != s.data() + i + 3) return std::nullopt;
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const std::size_t slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return parts;
}

// The value of `name` in a query string "a=1&b=2", if present.
std::optional<std::string_view> QueryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (pair.substr(0, pair.find('=')) == name && pair.find('=') != std::string_view::npos) {
      return pair.substr(pair.find('=') + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

AdminReply MethodNotAllowed(const std::string& method, std::string_view path) {
  return ErrorReply(
      MakeError("method_not_allowed", method + " is not allowed on " + std::string(path)));
}

// The requests that scan every member (KPIs, segment and promotion
// previews): they run on the reader thread (DbWorker::PostRead), so a scan
// of a million members never holds up ingest on the database thread.
bool IsMemberScan(const AdminRequest& request) {
  const std::vector<std::string_view> parts =
      Split(std::string_view(request.target).substr(0, request.target.find('?')));
  if (parts.size() < 3 || parts[0] != "v1" || parts[1] != "admin") return false;
  if (parts.size() == 3) return parts[2] == "kpis" && request.method == "GET";
  if (parts.size() != 4 || request.method != "POST") return false;
  // POST is only ever a preview; "preview" stays usable as an ordinary
  // segment id with GET, PUT and DELETE.
  const auto id = PercentDecode(parts[3]);
  return id && *id == "preview" && (parts[2] == "segments" || parts[2] == "promotions");
}

// Answers an IsMemberScan request on the reader thread.
AdminReply RouteMemberScan(const AdminRequest& request, storage::ServerReader& reader) {
  const std::size_t q = request.target.find('?');
  const std::string_view query =
      q == std::string::npos ? std::string_view() : std::string_view(request.target).substr(q + 1);
  const std::vector<std::string_view> parts =
      Split(std::string_view(request.target).substr(0, q));
  if (parts[2] == "kpis") {
    int64_t since = NowMs() - 30 * core::kMillisPerDay;
    if (auto since_text = QueryParam(query, "since")) {
      auto parsed = ParseDate(*since_text);
      if (!parsed) {
        return ErrorReply(MakeError(core::code::kInvalidRequest, "since must be YYYY-MM-DD"));
      }
      since = *parsed;
    }
    auto report = Kpis(reader, since, NowMs());
    if (!report) return ErrorReply(report.error());
    return Json(*report);
  }
  if (parts[2] == "promotions") {
    v1::Offer offer;
    if (std::string err = proto::ParseJson(request.body, &offer); !err.empty()) {
      return ErrorReply(MakeError(core::code::kInvalidRequest, "body is not an Offer: " + err));
    }
    auto preview = PreviewPromotion(reader, offer, NowMs());
    if (!preview) return ErrorReply(preview.error());
    return Json(*preview);
  }
  v1::SegmentDefinition d;
  if (std::string err = proto::ParseJson(request.body, &d); !err.empty()) {
    return ErrorReply(
        MakeError(core::code::kInvalidRequest, "body is not a SegmentDefinition: " + err));
  }
  if (d.id().empty()) d.set_id("preview");
  if (d.name().empty()) d.set_name(d.id());
  auto preview = PreviewSegment(reader, d, NowMs());
  if (!preview) return ErrorReply(preview.error());
  return Json(*preview);
}

}  // namespace

AdminReply ErrorReply(const core::Error& error) {
  v1::ErrorResponse response;
  response.mutable_error()->set_code(error.code);
  response.mutable_error()->set_message(error.message);
  return Json(response, StatusFor(error.code));
}

AdminApi::AdminApi(DbWorker& db, ServerMetrics& metrics, std::shared_ptr<SyncService> sync,
                   std::optional<std::string> card_hash_key)
    : db_(db),
      metrics_(metrics),
      sync_(std::move(sync)),
      card_hash_key_(std::move(card_hash_key)) {}

void AdminApi::Handle(AdminRequest request, std::function<void(AdminReply)> respond) {
  auto finish = [this, respond](AdminReply reply) {
    metrics_.AdminRequest(reply.status);
    respond(std::move(reply));
  };
  const std::string_view path =
      std::string_view(request.target).substr(0, request.target.find('?'));
  if (path == "/metrics") {
    if (request.method != "GET") return finish(MethodNotAllowed(request.method, path));
    return finish(AdminReply{200, metrics_.Render(), "text/plain; version=0.0.4"});
  }
  if (IsMemberScan(request)) {
    auto scan = [finish, request = std::move(request)](storage::ServerReader& reader) {
      finish(RouteMemberScan(request, reader));
    };
    if (!db_.PostRead(std::move(scan))) {
      finish(ErrorReply(MakeError(core::code::kUnavailable,
                                  "the server is busy with other scans; retry later")));
    }
    return;
  }
  // Health answers at once, whatever the fold's backlog; everything else
  // sees every acknowledged event in the ledger.
  const bool now = path == "/v1/admin/health";
  auto job = [this, finish, request = std::move(request)](storage::ServerStore& store) {
    finish(Route(request, store));
  };
  if (!(now ? db_.PostNow(std::move(job)) : db_.Post(std::move(job)))) {
    finish(ErrorReply(MakeError(core::code::kUnavailable, "the server is busy; retry later")));
  }
}

AdminReply AdminApi::Route(const AdminRequest& request, storage::ServerStore& store) {
  const std::size_t q = request.target.find('?');
  const std::string_view path = std::string_view(request.target).substr(0, q);
  const std::string_view query =
      q == std::string::npos ? std::string_view() : std::string_view(request.target).substr(q + 1);
  const std::vector<std::string_view> parts = Split(path);
  const std::string& method = request.method;
  auto not_found = [&] {
    return ErrorReply(MakeError(core::code::kNotFound, "no endpoint " + std::string(path)));
  };
  if (parts.size() < 3 || parts[0] != "v1" || parts[1] != "admin") return not_found();
  const std::string_view resource = parts[2];
  std::optional<std::string> id;
  if (parts.size() >= 4) {
    id = PercentDecode(parts[3]);
    if (!id || id->empty()) {
      return ErrorReply(MakeError(core::code::kInvalidRequest, "malformed path segment"));
    }
  }
  if (parts.size() == 5 && resource == "members" && id) {
    return MemberAction(request, *id, parts[4], store);
  }
  if (parts.size() > 4) return not_found();

  if (resource == "segments") return Segments(request, id, store);
  // GET kpis and the POST previews are answered by RouteMemberScan.
  if (resource == "kpis" && !id) return MethodNotAllowed(method, path);

  if (resource == "members" && id) {
    if (method != "GET") return MethodNotAllowed(method, path);
    int history = kDefaultHistory;
    if (auto h = QueryParam(query, "history")) {
      auto [p, ec] = std::from_chars(h->data(), h->data() + h->size(), history);
      if (ec != std::errc() || p != h->data() + h->size() || history < 0 || history > kMaxHistory) {
        return ErrorReply(
            MakeError(core::code::kInvalidRequest,
                      "history must be a number within 0.." + std::to_string(kMaxHistory)));
      }
    }
    return Member(*id, history, store);
  }
  if (resource == "stores" && !id) {
    if (method != "GET") return MethodNotAllowed(method, path);
    return Stores(store);
  }
  if (resource == "health" && !id) {
    if (method != "GET") return MethodNotAllowed(method, path);
    return Health(store);
  }
  if (resource == "promotions" && !id) {
    if (method != "GET") return MethodNotAllowed(method, path);
    auto offers = store.Offers();
    if (!offers) return ErrorReply(offers.error());
    v1::OfferList list;
    for (auto& o : *offers) *list.add_offers() = std::move(o);
    return Json(list);
  }
  if (resource == "promotions" && id) {
    if (method == "PUT") return PutOffer(request, *id, store);
    if (method == "DELETE") return RetireOffer(request, *id, store);
    return MethodNotAllowed(method, path);
  }
  if (resource == "programme" && !id) {
    if (method == "GET") {
      auto programme = store.Programme();
      if (!programme) return ErrorReply(programme.error());
      return Json(*programme);
    }
    if (method == "PUT") return PutProgramme(request, store);
    return MethodNotAllowed(method, path);
  }
  if (resource == "conflicts" && !id) {
    if (method != "GET") return MethodNotAllowed(method, path);
    auto conflicts = store.Conflicts();
    if (!conflicts) return ErrorReply(conflicts.error());
    v1::ConflictList list;
    for (auto& c : *conflicts) *list.add_conflicts() = std::move(c);
    return Json(list);
  }
  return not_found();
}

core::Result<std::string> AdminApi::LookupKey(const std::string& key) {
  // Member ids ("p-..." from terminals) never pass the Luhn-checked card
  // format, so a key that normalises as a card number is a card.
  if (auto card = core::NormalizeCardNumber(key); card.ok()) {
    if (!card_hash_key_) {
      return MakeError("card_lookup_unavailable",
                       "this server has no card-hash.key in its TLS bundle, so it "
                       "cannot look members up by card number; use the member id");
    }
    return core::CardHash(*card_hash_key_, *card);
  }
  return key;
}

AdminReply AdminApi::Member(const std::string& key, int history, storage::ServerStore& store) {
  auto lookup = LookupKey(key);
  if (!lookup) return ErrorReply(lookup.error());
  auto found = store.FindMember(*lookup, history);
  if (!found) return ErrorReply(found.error());
  if (!*found) {
    return ErrorReply(MakeError(core::code::kNotFound, "no member with this card or id"));
  }
  v1::AdminMemberResponse response;
  const v1::MemberLedger& ledger = (*found)->ledger;
  *response.mutable_member() = ledger.snapshot();
  response.set_enrolled_at_ms(ledger.enrolled_at_ms());
  for (const auto& alias : ledger.aliases()) response.add_aliases(alias);
  for (auto& e : (*found)->history) *response.add_history() = std::move(e);
  return Json(response);
}

AdminReply AdminApi::Health(storage::ServerStore& store) {
  v1::ServerHealth health;
  health.set_status("ok");
  health.set_connected_agents(metrics_.connected());
  health.set_queued_jobs(static_cast<int64_t>(db_.queued()));
  // A read through the store: the database answers, not just the thread.
  auto version = store.LatestVersion();
  if (!version) {
    health.set_status("degraded");
    health.set_problem("the database does not answer: " + version.error().message + " (" +
                       version.error().code + ")");
    return Json(health, 503);
  }
  health.set_feed_version(*version);
  health.set_unfolded_events(store.UnfoldedEvents());
  if (const std::string error = db_.fold_error(); !error.empty()) {
    health.set_status("degraded");
    health.set_problem("acknowledged events cannot be folded into the ledger: " + error);
    return Json(health, 503);
  }
  return Json(health);
}

AdminReply AdminApi::Stores(storage::ServerStore& store) {
  auto statuses = store.StoreStatuses();
  if (!statuses) return ErrorReply(statuses.error());
  auto connected = sync_->ConnectedTerminals();
  // Marks the store's connected terminals, adding those with no events yet.
  auto mark = [](v1::StoreStatus& s, std::map<std::string, int64_t> terminals) {
    s.set_connected(!terminals.empty());
    for (auto& t : *s.mutable_terminals()) {
      auto it = terminals.find(t.terminal_id());
      if (it == terminals.end()) continue;
      t.set_connected(true);
      t.set_clock_skew_ms(it->second);
      terminals.erase(it);
    }
    for (const auto& [terminal_id, skew] : terminals) {
      v1::TerminalStatus* t = s.add_terminals();
      t->set_terminal_id(terminal_id);
      t->set_connected(true);
      t->set_clock_skew_ms(skew);
    }
  };
  v1::StoreList list;
  for (auto& s : *statuses) {
    auto it = connected.find(s.store_id());
    if (it != connected.end()) {
      mark(s, std::move(it->second));
      connected.erase(it);
    }
    *list.add_stores() = std::move(s);
  }
  // A store connected for the first time, whose TouchStore has not run yet.
  for (auto& [store_id, terminals] : connected) {
    v1::StoreStatus* s = list.add_stores();
    s->set_store_id(store_id);
    mark(*s, std::move(terminals));
  }
  return Json(list);
}

AdminReply AdminApi::PutOffer(const AdminRequest& request, const std::string& id,
                              storage::ServerStore& store) {
  v1::Offer offer;
  if (std::string err = proto::ParseJson(request.body, &offer); !err.empty()) {
    return ErrorReply(MakeError(core::code::kInvalidRequest, "body is not an Offer: " + err));
  }
  if (offer.id().empty()) offer.set_id(id);
  if (offer.id() != id) {
    return ErrorReply(
        MakeError(core::code::kInvalidRequest,
                  "offer id \"" + offer.id() + "\" does not match the path id \"" + id + "\""));
  }
  if (auto s = ValidatePromotion(store, offer, NowMs()); !s) return ErrorReply(s.error());
  auto version = store.PutOffer(offer);
  if (!version) return ErrorReply(version.error());
  spdlog::info("admin {} published promotion {} (feed version {})", request.admin, id, *version);
  return Published(*version, id);
}

AdminReply AdminApi::RetireOffer(const AdminRequest& request, const std::string& id,
                                 storage::ServerStore& store) {
  auto version = store.RetireOffer(id);
  if (!version) return ErrorReply(version.error());
  spdlog::info("admin {} retired promotion {} (feed version {})", request.admin, id, *version);
  return Published(*version, id);
}

AdminReply AdminApi::PutProgramme(const AdminRequest& request, storage::ServerStore& store) {
  v1::Programme programme;
  if (std::string err = proto::ParseJson(request.body, &programme); !err.empty()) {
    return ErrorReply(MakeError(core::code::kInvalidRequest, "body is not a Programme: " + err));
  }
  auto version = store.PutProgramme(programme);
  if (!version) return ErrorReply(version.error());
  spdlog::info("admin {} published programme version {} (feed version {})", request.admin,
               programme.version(), *version);
  return Published(*version, "programme");
}

AdminReply AdminApi::Segments(const AdminRequest& request, const std::optional<std::string>& id,
                              storage::ServerStore& store) {
  const std::string& method = request.method;
  const std::string path = "/v1/admin/segments" + (id ? "/" + *id : std::string());
  auto parse = [&](v1::SegmentDefinition* d) -> std::optional<AdminReply> {
    if (std::string err = proto::ParseJson(request.body, d); !err.empty()) {
      return ErrorReply(
          MakeError(core::code::kInvalidRequest, "body is not a SegmentDefinition: " + err));
    }
    return std::nullopt;
  };
  if (!id) {
    if (method != "GET") return MethodNotAllowed(method, path);
    auto defs = store.Segments();
    if (!defs) return ErrorReply(defs.error());
    v1::SegmentList list;
    for (auto& d : *defs) *list.add_segments() = std::move(d);
    return Json(list);
  }
  // POST .../preview is answered by RouteMemberScan.
  if (method == "GET") {
    auto defs = store.Segments();
    if (!defs) return ErrorReply(defs.error());
    for (const auto& d : *defs) {
      if (d.id() == *id) return Json(d);
    }
    return ErrorReply(MakeError(core::code::kNotFound, "no segment \"" + *id + "\""));
  }
  if (method == "PUT") {
    v1::SegmentDefinition d;
    if (auto e = parse(&d)) return *e;
    if (d.id().empty()) d.set_id(*id);
    if (d.id() != *id) {
      return ErrorReply(MakeError(core::code::kInvalidRequest,
                                  "segment id \"" + d.id() + "\" does not match the path id \"" +
                                      *id + "\""));
    }
    if (auto s = store.PutSegment(d); !s) return ErrorReply(s.error());
    spdlog::info("admin {} saved segment {}: {}", request.admin, d.id(), d.expression());
    if (segmenter_) segmenter_->RequestFullPass();
    return Json(d);
  }
  if (method == "DELETE") {
    if (auto s = store.DeleteSegment(*id); !s) return ErrorReply(s.error());
    spdlog::info("admin {} deleted segment {}", request.admin, *id);
    if (segmenter_) segmenter_->RequestFullPass();
    v1::PublishResponse response;
    response.set_id(*id);
    return Json(response);
  }
  return MethodNotAllowed(method, path);
}

AdminReply AdminApi::MemberAction(const AdminRequest& request, const std::string& key,
                                  std::string_view action, storage::ServerStore& store) {
  const std::string path = "/v1/admin/members/" + key + "/" + std::string(action);
  auto lookup = LookupKey(key);
  if (!lookup) return ErrorReply(lookup.error());
  auto member = store.ResolveMemberId(*lookup);
  if (!member) return ErrorReply(member.error());
  if (!*member) return ErrorReply(MakeError(core::code::kNotFound, "no member with this card or id"));
  if (action == "features") {
    if (request.method != "GET") return MethodNotAllowed(request.method, path);
    auto f = store.FeaturesOf(**member, NowMs());
    if (!f) return ErrorReply(f.error());
    if (!*f) return ErrorReply(MakeError(core::code::kNotFound, "the member was erased"));
    return Json(**f);
  }
  if (action == "consent") {
    if (request.method != "PUT") return MethodNotAllowed(request.method, path);
    v1::MemberConsent consent;
    if (std::string err = proto::ParseJson(request.body, &consent); !err.empty()) {
      return ErrorReply(MakeError(core::code::kInvalidRequest, "body is not a MemberConsent: " + err));
    }
    auto version = store.PutConsent(**member, consent, NowMs());
    if (!version) return ErrorReply(version.error());
    spdlog::info("admin {} recorded consent={} for member {}", request.admin, consent.consent(),
                 **member);
    return Published(*version, **member);
  }
  if (action == "erase") {
    if (request.method != "POST") return MethodNotAllowed(request.method, path);
    auto version = store.EraseMember(**member);
    if (!version) return ErrorReply(version.error());
    spdlog::info("admin {} erased member {}", request.admin, **member);
    sync_->FeedAdvanced(*version);
    v1::EraseResponse response;
    response.set_member_id(**member);
    response.set_feed_version(*version);
    return Json(response);
  }
  return ErrorReply(MakeError(core::code::kNotFound, "no endpoint " + path));
}

AdminReply AdminApi::Published(uint64_t version, const std::string& id) {
  sync_->FeedAdvanced(version);
  v1::PublishResponse response;
  response.set_feed_version(version);
  response.set_id(id);
  return Json(response);
}

}  // namespace loyalty::server

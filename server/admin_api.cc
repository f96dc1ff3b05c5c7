#include "server/admin_api.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <string_view>
#include <vector>

#include "core/card.h"
#include "core/offers.h"
#include "loyalty/v1/admin.pb.h"
#include "loyalty/v1/api.pb.h"
#include "proto/json.h"

namespace loyalty::server {
namespace {

namespace v1 = loyalty::v1;
using core::MakeError;

constexpr int kDefaultHistory = 50;
constexpr int kMaxHistory = 1000;

unsigned StatusFor(const std::string& code) {
  if (code == core::code::kNotFound || code == core::code::kUnknownCard) return 404;
  if (code == core::code::kConflict) return 409;
  if (code == core::code::kTooLarge) return 413;
  if (code == core::code::kUnavailable || code == core::code::kDiskFull) return 503;
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
  auto job = [this, finish, request = std::move(request)](storage::ServerStore& store) {
    finish(Route(request, store));
  };
  if (!db_.Post(std::move(job))) {
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
  if (parts.size() == 4) {
    id = PercentDecode(parts[3]);
    if (!id || id->empty()) {
      return ErrorReply(MakeError(core::code::kInvalidRequest, "malformed path segment"));
    }
  }
  if (parts.size() > 4) return not_found();

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

AdminReply AdminApi::Member(const std::string& key, int history, storage::ServerStore& store) {
  // Member ids ("p-..." from terminals) never pass the Luhn-checked card
  // format, so a key that normalises as a card number is a card.
  std::string lookup = key;
  if (auto card = core::NormalizeCardNumber(key); card.ok()) {
    if (!card_hash_key_) {
      return ErrorReply(MakeError("card_lookup_unavailable",
                                  "this server has no card-hash.key in its TLS bundle, so it "
                                  "cannot look members up by card number; use the member id"));
    }
    lookup = core::CardHash(*card_hash_key_, *card);
  }
  auto found = store.FindMember(lookup, history);
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

AdminReply AdminApi::Stores(storage::ServerStore& store) {
  auto statuses = store.StoreStatuses();
  if (!statuses) return ErrorReply(statuses.error());
  std::map<std::string, int> connected = sync_->ConnectedStores();
  v1::StoreList list;
  for (auto& s : *statuses) {
    s.set_connected(connected.count(s.store_id()) > 0);
    connected.erase(s.store_id());
    *list.add_stores() = std::move(s);
  }
  // A store connected for the first time, whose TouchStore has not run yet.
  for (const auto& [store_id, _] : connected) {
    v1::StoreStatus* s = list.add_stores();
    s->set_store_id(store_id);
    s->set_connected(true);
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
  if (auto s = core::ValidateOffer(offer); !s) return ErrorReply(s.error());
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

AdminReply AdminApi::Published(uint64_t version, const std::string& id) {
  sync_->FeedAdvanced(version);
  v1::PublishResponse response;
  response.set_feed_version(version);
  response.set_id(id);
  return Json(response);
}

}  // namespace loyalty::server

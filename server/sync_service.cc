#include "server/sync_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <boost/asio/post.hpp>
#include <vector>

#include "core/time_util.h"
#include "server/clock.h"
#include "sync/tls.h"

namespace loyalty::server {
namespace {

namespace net = boost::asio;

std::string Describe(const v1::EventId& id) {
  return id.store_id() + "/" + id.terminal_id() + "/" + std::to_string(id.epoch()) + "/" +
         std::to_string(id.seq());
}

// A keyed card hash as terminals send it: 64 lowercase hex digits.
bool IsCardHash(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

std::shared_ptr<SyncService> SyncService::Create(net::io_context& ioc, DbWorker& db,
                                                 ServerMetrics& metrics,
                                                 SyncServiceOptions options) {
  return std::shared_ptr<SyncService>(new SyncService(ioc, db, metrics, options));
}

SyncService::SyncService(net::io_context& ioc, DbWorker& db, ServerMetrics& metrics,
                         SyncServiceOptions options)
    : db_(db),
      metrics_(metrics),
      options_(options),
      strand_(net::make_strand(ioc)),
      push_timer_(strand_) {}

sync::ConnectionCallbacks SyncService::Callbacks() {
  auto self = shared_from_this();
  sync::ConnectionCallbacks callbacks;
  callbacks.on_open = [self](const sync::ConnectionPtr& c) { self->OnOpen(c); };
  callbacks.on_frame = [self](const sync::ConnectionPtr& c, v1::Frame f) {
    self->OnFrame(c, std::move(f));
  };
  callbacks.on_close = [self](const sync::ConnectionPtr& c, const core::Error& e) {
    self->OnClose(c, e);
  };
  return callbacks;
}

void SyncService::OnOpen(const sync::ConnectionPtr& connection) {
  const std::string store_id = connection->peer().id;
  {
    std::lock_guard lock(mu_);
    // A terminal that connects learns the feed by asking for changes; pushes
    // are only for what happens while it is connected.
    peers_[connection.get()] = Peer{connection, store_id, latest_version_,
                                    connection->peer_hello().terminal_id(),
                                    connection->peer_clock_offset_ms()};
  }
  metrics_.ConnectionOpened();
  spdlog::info("store {} terminal {} connected from {}", store_id,
               connection->peer_hello().terminal_id(),
               connection->remote_endpoint().address().to_string());
  if (const int64_t skew = connection->peer_clock_offset_ms();
      std::abs(skew) > sync::kClockSkewWarningMs) {
    spdlog::warn(
        "store {} terminal {}: its clock is {} s {} the server's; its events are stamped with "
        "it (points expiry, tier windows, segments): set its time right (NTP)",
        store_id, connection->peer_hello().terminal_id(), std::abs(skew) / 1000,
        skew > 0 ? "ahead of" : "behind");
  }
  const int64_t now = NowMs();
  if (!db_.Post([store_id, now](storage::ServerStore& store) {
        if (auto s = store.TouchStore(store_id, now); !s) {
          spdlog::error("cannot record that store {} connected: {} ({})", store_id,
                        s.error().message, s.error().code);
        }
      })) {
    spdlog::warn("database queue full; store {} last-seen time not updated", store_id);
  }
}

void SyncService::OnClose(const sync::ConnectionPtr& connection, const core::Error& reason) {
  bool was_open = false;
  std::string store_id;
  {
    std::lock_guard lock(mu_);
    auto it = peers_.find(connection.get());
    if (it != peers_.end()) {
      was_open = true;
      store_id = it->second.store_id;
      peers_.erase(it);
    }
  }
  const std::string from = connection->remote_endpoint().address().to_string();
  if (was_open) {
    metrics_.ConnectionClosed();
    spdlog::info("store {} disconnected ({}): {}", store_id, reason.code, reason.message);
    return;
  }
  // Never opened: the TLS handshake, the certificate's identity or the Hello
  // was refused. Say why, once, for the operator.
  metrics_.ConnectionRefused();
  spdlog::warn("sync connection from {} refused: {}: {}", from, reason.code, reason.message);
}

void SyncService::OnFrame(const sync::ConnectionPtr& connection, v1::Frame frame) {
  metrics_.FrameReceived();
  const uint64_t correlation_id = frame.correlation_id();
  switch (frame.message_case()) {
    case v1::Frame::kUploadBatch:
      return HandleUpload(connection, correlation_id, std::move(*frame.mutable_upload_batch()));
    case v1::Frame::kChangesRequest:
      return HandleChanges(connection, correlation_id, frame.changes_request());
    case v1::Frame::kMemberLookup:
      return HandleLookup(connection, correlation_id, frame.member_lookup());
    default:
      spdlog::warn("store {}: unexpected frame (field {}) ignored", connection->peer().id,
                   static_cast<int>(frame.message_case()));
      return SendError(connection, correlation_id,
                       core::MakeError("unexpected_frame",
                                       "the server accepts only UploadBatch, ChangesRequest and "
                                       "MemberLookup after the Hello"));
  }
}

void SyncService::HandleUpload(const sync::ConnectionPtr& connection, uint64_t correlation_id,
                               v1::UploadBatch batch) {
  // The uploader's identity comes from its verified certificate, never from
  // the frame (design invariant 8).
  const std::string store_id = connection->peer().id;
  std::weak_ptr<sync::Connection> weak = connection;
  auto self = shared_from_this();
  // Ingest takes a contiguous span; protobuf's repeated field is not one.
  std::vector<v1::Event> events(std::make_move_iterator(batch.mutable_events()->begin()),
                                std::make_move_iterator(batch.mutable_events()->end()));
  const uint64_t batch_id = batch.batch_id();
  auto job = [self, weak, store_id, correlation_id, batch_id,
              events = std::move(events)](storage::ServerStore& store) mutable {
    const auto started = std::chrono::steady_clock::now();
    const size_t count = events.size();
    auto outcome = store.Append(store_id, std::move(events), NowMs());
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    auto conn = weak.lock();
    if (!outcome) {
      spdlog::error("store {}: batch {} of {} events not ingested: {} ({})", store_id, batch_id,
                    count, outcome.error().message, outcome.error().code);
      if (conn) self->SendError(conn, correlation_id, outcome.error());
      return;
    }
    self->metrics_.BatchIngested(static_cast<int64_t>(outcome->acknowledged.size()),
                                 static_cast<int64_t>(outcome->rejected.size()), seconds);
    for (const v1::EventRejection& r : outcome->rejected) {
      if (r.code() == "wrong_store") {
        spdlog::warn("store {} uploaded event {} of another store; rejected (wrong_store): {}",
                     store_id, Describe(r.id()), r.message());
      } else {
        spdlog::warn("store {}: event {} rejected ({}): {}", store_id, Describe(r.id()), r.code(),
                     r.message());
      }
    }
    spdlog::debug("store {}: batch {} ingested: {} acknowledged, {} rejected", store_id, batch_id,
                  outcome->acknowledged.size(), outcome->rejected.size());
    // No push for member changes: every terminal pulls after its uploads
    // and on its sync interval anyway, and with every member replicated to
    // every terminal a push per upload would make each of N connected
    // terminals pull after each of their uploads (N x N pulls). Pushes are
    // for head office's changes.
    self->metrics_.Unfolded(store.UnfoldedEvents());
    if (!conn) return;  // the agent will resend; the effect is already durable
    v1::Frame answer;
    answer.set_correlation_id(correlation_id);
    v1::UploadAck* ack = answer.mutable_upload_ack();
    ack->set_batch_id(batch_id);
    for (auto& id : outcome->acknowledged) *ack->add_acknowledged() = std::move(id);
    for (auto& r : outcome->rejected) *ack->add_rejected() = std::move(r);
    self->Send(conn, std::move(answer));
  };
  if (!db_.PostUpload(std::move(job))) {
    SendError(connection, correlation_id,
              core::MakeError(core::code::kUnavailable, "the server is busy; retry later"));
  }
}

void SyncService::HandleChanges(const sync::ConnectionPtr& connection, uint64_t correlation_id,
                                const v1::ChangesRequest& request) {
  std::weak_ptr<sync::Connection> weak = connection;
  auto self = shared_from_this();
  const uint64_t after = request.after_version();
  const uint32_t max = request.max_changes();
  // The scope is the store of the certificate, never one named in a message.
  std::string scope;
  if (request.member_scope() == v1::MEMBER_SCOPE_STORE) scope = connection->peer().id;
  // Runs on a feed reader (a read connection of its own), once the events
  // acknowledged so far are folded, so that a terminal pulling after its
  // upload gets the snapshots that include it; on the database thread when
  // there is no feed reader.
  auto job = [self, weak, correlation_id, after, max, scope = std::move(scope)](auto& source) {
    auto conn = weak.lock();
    if (!conn) return;  // nobody to answer
    auto page = source.Changes(after, max, scope);
    if (!page) {
      spdlog::error("store {}: changes after {} failed: {} ({})", conn->peer().id, after,
                    page.error().message, page.error().code);
      return self->SendError(conn, correlation_id, page.error());
    }
    v1::Frame answer;
    answer.set_correlation_id(correlation_id);
    *answer.mutable_changes_page() = std::move(*page);
    self->Send(conn, std::move(answer));
  };
  if (!db_.PostFeedFolded(job) && !db_.Post(std::move(job))) {
    SendError(connection, correlation_id,
              core::MakeError(core::code::kUnavailable, "the server is busy; retry later"));
  }
}

void SyncService::HandleLookup(const sync::ConnectionPtr& connection, uint64_t correlation_id,
                               const v1::MemberLookup& request) {
  if (!IsCardHash(request.card_hash())) {
    return SendError(connection, correlation_id,
                     core::MakeError(core::code::kInvalidRequest,
                                     "MemberLookup.card_hash is not a keyed card hash"));
  }
  std::weak_ptr<sync::Connection> weak = connection;
  auto self = shared_from_this();
  const std::string store_id = connection->peer().id;
  auto job = [self, weak, correlation_id, store_id,
              card_hash = request.card_hash()](storage::ServerStore& store) {
    auto found = store.LookupForStore(card_hash, store_id);
    auto conn = weak.lock();
    if (!found) {
      spdlog::error("store {}: member lookup failed: {} ({})", store_id, found.error().message,
                    found.error().code);
      if (conn) self->SendError(conn, correlation_id, found.error());
      return;
    }
    self->metrics_.MemberLookup(found->has_value());
    if (!conn) return;
    v1::Frame answer;
    answer.set_correlation_id(correlation_id);
    v1::MemberLookupResult* result = answer.mutable_member_lookup_result();
    result->set_found(found->has_value());
    if (*found) *result->mutable_member() = std::move(**found);
    self->Send(conn, std::move(answer));
  };
  if (!db_.Post(std::move(job))) {
    SendError(connection, correlation_id,
              core::MakeError(core::code::kUnavailable, "the server is busy; retry later"));
  }
}

void SyncService::Send(const sync::ConnectionPtr& connection, v1::Frame frame) {
  metrics_.FrameSent();
  connection->Send(std::move(frame));
}

void SyncService::SendError(const sync::ConnectionPtr& connection, uint64_t correlation_id,
                            const core::Error& error) {
  v1::Frame frame;
  frame.set_correlation_id(correlation_id);
  frame.mutable_error()->set_code(error.code);
  frame.mutable_error()->set_message(error.message);
  frame.mutable_error()->set_fatal(false);
  Send(connection, std::move(frame));
}

void SyncService::FeedAdvanced(uint64_t version) {
  metrics_.FeedVersion(version);
  {
    std::lock_guard lock(mu_);
    if (version <= latest_version_) return;
    latest_version_ = version;
  }
  // Coalesce: the first advance arms the timer; advances until it fires
  // only raise latest_version_, and one push carries the newest.
  net::post(strand_, [self = shared_from_this()] {
    if (self->push_armed_) return;
    self->push_armed_ = true;
    self->push_timer_.expires_after(self->options_.push_delay);
    self->push_timer_.async_wait([self](boost::system::error_code ec) {
      self->push_armed_ = false;
      if (!ec) self->PushNow();
    });
  });
}

void SyncService::PushNow() {
  std::vector<sync::ConnectionPtr> targets;
  uint64_t version = 0;
  {
    std::lock_guard lock(mu_);
    version = latest_version_;
    for (auto& [_, peer] : peers_) {
      if (peer.pushed_version >= version) continue;
      if (auto c = peer.connection.lock()) {
        peer.pushed_version = version;
        targets.push_back(std::move(c));
      }
    }
  }
  for (const auto& c : targets) {
    v1::Frame frame;
    frame.set_correlation_id(0);
    frame.mutable_push()->set_latest_version(version);
    metrics_.PushSent();
    Send(c, std::move(frame));
  }
}

std::map<std::string, std::map<std::string, int64_t>> SyncService::ConnectedTerminals() const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::map<std::string, int64_t>> out;
  for (const auto& [_, peer] : peers_) out[peer.store_id][peer.terminal_id] = peer.clock_skew_ms;
  return out;
}

int SyncService::CloseRevoked(boost::asio::ssl::context& ctx) {
  std::vector<std::pair<sync::ConnectionPtr, std::string>> open;
  {
    std::lock_guard lock(mu_);
    for (auto& [_, peer] : peers_) {
      if (auto c = peer.connection.lock()) open.emplace_back(std::move(c), peer.store_id);
    }
  }
  int closed = 0;
  for (const auto& [c, store_id] : open) {
    if (c->peer_certificate() == nullptr ||
        sync::ClientCertificateStillVerifies(c->peer_certificate(), ctx)) {
      continue;
    }
    spdlog::warn(
        "store {}: its certificate is no longer valid (revoked or expired); closing its "
        "connection from {}",
        store_id, c->remote_endpoint().address().to_string());
    c->Close();
    ++closed;
  }
  return closed;
}

void SyncService::CloseAll() {
  std::vector<sync::ConnectionPtr> open;
  {
    std::lock_guard lock(mu_);
    for (auto& [_, peer] : peers_) {
      if (auto c = peer.connection.lock()) open.push_back(std::move(c));
    }
  }
  for (const auto& c : open) c->Close();
}

}  // namespace loyalty::server

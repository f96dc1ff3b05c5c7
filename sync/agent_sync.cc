#include <utility>  // before Asio (Boost 1.74)

#include "sync/agent_sync.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <thread>

#include "sync/framing.h"
#include "sync/outbox.h"
#include "sync/protocol.h"
#include "sync/tls.h"

namespace loyalty::sync {
namespace {

namespace net = boost::asio;
using core::MakeError;
using core::Result;
using Clock = std::chrono::steady_clock;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct AgentSync::State {
  AgentSyncOptions options;
  AgentSyncHost host;
  std::string server;  // host:port, for status and logs

  net::io_context ioc;
  net::executor_work_guard<net::io_context::executor_type> work{ioc.get_executor()};
  std::thread io_thread;
  std::thread sync_thread;

  // Sync thread only.
  std::unique_ptr<storage::AgentStore> reader;
  uint64_t next_correlation = 0;
  uint64_t next_batch_id = 0;
  std::mt19937_64 rng{std::random_device{}()};

  std::mutex status_mutex;  // guards status_reader
  std::unique_ptr<storage::AgentStore> status_reader;

  std::mutex mutex;
  std::condition_variable changed;
  // Guarded by mutex.
  bool stopping = false;
  ConnectionPtr conn;
  uint64_t conn_gen = 0;  // callbacks of older connections are ignored
  bool conn_open = false;
  bool conn_closed = true;
  core::Error close_reason;
  std::deque<v1::Frame> inbox;
  // Answers taken from the inbox while waiting for an earlier request of the
  // sync thread, by correlation id.
  std::map<uint64_t, v1::Frame> early;
  // LookupMember calls waiting for their answer, by correlation id; their
  // ids come from a range the sync thread's never reaches.
  std::map<uint64_t, std::optional<v1::Frame>> lookups;
  uint64_t next_lookup = uint64_t{1} << 62;
  bool trigger = false;        // a commit or the interval asks for a round
  bool pushed = false;         // the server announced new changes
  uint64_t requested_gen = 0;  // SyncNow calls so far
  uint64_t done_gen = 0;       // SyncNow calls the last finished round served
  std::optional<core::Error> last_error;
  std::optional<core::Error> last_round_error;
  int64_t last_success_ms = 0;
  std::optional<int64_t> clock_skew_ms;

  // ------------------------------------------------------------ rounds --

  void Run() {
    auto backoff = options.backoff_initial;
    std::unique_lock lock(mutex);
    while (!stopping) {
      const uint64_t gen = requested_gen;
      trigger = false;
      pushed = false;
      lock.unlock();
      Result<int64_t> result = Round();
      if (!result.ok()) DropConnection();
      lock.lock();
      done_gen = gen;
      if (result.ok()) {
        last_success_ms = *result;
        last_error.reset();
        last_round_error.reset();
        backoff = options.backoff_initial;
      } else {
        if (!last_error || last_error->code != result.error().code ||
            last_error->message != result.error().message) {
          spdlog::warn("sync with {} failed: {} ({}); retrying with backoff", server,
                       result.error().message, result.error().code);
        }
        last_error = result.error();
        last_round_error = result.error();
      }
      changed.notify_all();
      if (stopping) break;
      if (result.ok()) {
        // Online: the next round on a commit, a push, a manual request, a
        // dropped connection or the interval, whichever comes first.
        changed.wait_for(lock, options.interval, [&] {
          return stopping || trigger || pushed || requested_gen > gen || conn_closed;
        });
      } else {
        // Offline: only a manual request cuts the backoff short, so a busy
        // till does not hammer an unreachable server after every commit.
        std::uniform_int_distribution<int64_t> jitter(backoff.count() / 2, backoff.count());
        const std::chrono::milliseconds wait{jitter(rng)};
        backoff = std::min(backoff * 2, options.backoff_max);
        changed.wait_for(lock, wait, [&] { return stopping || requested_gen > gen; });
      }
    }
  }

  // One round; when it succeeds, the time it ended (as stored).
  Result<int64_t> Round() {
    if (auto s = EnsureConnected(); !s.ok()) return s.error();
    if (auto s = Upload(); !s.ok()) return s.error();
    return Download();
  }

  core::Status EnsureConnected() {
    {
      std::lock_guard lock(mutex);
      if (conn && conn_open && !conn_closed) return {};
    }
    // The bundle is read at every attempt, so a renewed one is picked up.
    auto bundle = pki::LoadBundle(options.tls_dir);
    if (!bundle.ok()) {
      return MakeError(code::kBadBundle, "cannot load the certificate bundle " +
                                             options.tls_dir.string() + ": " +
                                             bundle.error().message);
    }
    auto days = pki::BundleDaysUntilExpiry(*bundle);
    if (days.ok() && *days < 0) {
      return MakeError(code::kCertificateExpired,
                       "the store certificate in " + options.tls_dir.string() +
                           " has expired; renew it at head office with `loyaltyctl pki renew "
                           "--dir CA_DIR --bundle BUNDLE` and copy the bundle to " +
                           options.tls_dir.string() + " (picked up at the next attempt)");
    }
    auto ctx = MakeClientContext(*bundle);
    if (!ctx.ok()) return ctx.error();
    auto epoch = reader->GetMeta("epoch");
    if (!epoch.ok()) return epoch.error();
    v1::Hello hello;
    hello.set_agent_version("0.1.0");
    hello.set_terminal_id(options.terminal_id);
    hello.set_epoch(*epoch ? std::stoull(**epoch) : 1);

    uint64_t gen = 0;
    {
      std::lock_guard lock(mutex);
      gen = ++conn_gen;
      conn_open = false;
      conn_closed = false;
      inbox.clear();
      early.clear();
    }
    ConnectionCallbacks callbacks;
    callbacks.on_open = [this, gen](const ConnectionPtr& c) {
      std::lock_guard lock(mutex);
      if (gen != conn_gen) return;
      conn_open = true;
      const int64_t skew = -c->peer_clock_offset_ms();
      if (std::abs(skew) > kClockSkewWarningMs) {
        spdlog::warn(
            "sync: this terminal's clock is {} s {} the server's; events are stamped with it "
            "(points expiry, tier windows, offers' dates): set its time right (NTP)",
            std::abs(skew) / 1000, skew > 0 ? "ahead of" : "behind");
      }
      clock_skew_ms = skew;
      changed.notify_all();
    };
    callbacks.on_frame = [this, gen](const ConnectionPtr&, v1::Frame frame) {
      std::lock_guard lock(mutex);
      if (gen != conn_gen) return;
      if (auto it = lookups.find(frame.correlation_id());
          it != lookups.end() && frame.correlation_id() != 0) {
        it->second = std::move(frame);
      } else if (frame.has_push()) {
        pushed = true;
      } else {
        inbox.push_back(std::move(frame));
      }
      changed.notify_all();
    };
    callbacks.on_close = [this, gen](const ConnectionPtr&, const core::Error& error) {
      std::lock_guard lock(mutex);
      if (gen != conn_gen) return;
      conn_closed = true;
      close_reason = error;
      changed.notify_all();
    };
    const std::string name = options.server_name.empty() ? options.host : options.server_name;
    ConnectionPtr c = Connection::Connect(ioc.get_executor(), *ctx, options.host, options.port,
                                          name, hello, options.connection, std::move(callbacks));
    std::unique_lock lock(mutex);
    conn = c;
    const auto limit = options.connection.connect_timeout + options.connection.handshake_timeout;
    changed.wait_for(lock, limit, [&] { return stopping || conn_open || conn_closed; });
    if (conn_open && !conn_closed) {
      spdlog::info("sync: connected to {} as terminal {} (epoch {})", server, options.terminal_id,
                   hello.epoch());
      return {};
    }
    if (stopping) return MakeError(code::kStopped, "the sync client is stopping");
    if (conn_closed) return close_reason;
    return MakeError(code::kTimeout, "connecting to " + server + " timed out");
  }

  void DropConnection() {
    ConnectionPtr c;
    {
      std::lock_guard lock(mutex);
      c = std::move(conn);
      ++conn_gen;  // its late callbacks are ignored from now on
      conn_open = false;
      conn_closed = true;
      inbox.clear();
      early.clear();
    }
    if (c) c->Close();
  }

  // Sends `request` and waits for the frame with its correlation id.
  Result<v1::Frame> Call(v1::Frame request) {
    auto id = Send(std::move(request));
    if (!id.ok()) return id.error();
    return Await(*id);
  }

  // Sends `request` under a fresh correlation id, which it returns.
  Result<uint64_t> Send(v1::Frame request) {
    request.set_correlation_id(++next_correlation);
    const uint64_t id = request.correlation_id();
    auto c = OpenConnection();
    if (!c.ok()) return c.error();
    (*c)->Send(std::move(request));
    return id;
  }

  // The connection, or why it closed.
  Result<ConnectionPtr> OpenConnection() {
    std::lock_guard lock(mutex);
    if (!conn || conn_closed) return close_reason;
    return conn;
  }

  // Sends an UploadBatch of serialized events under a fresh correlation id,
  // which it returns.
  Result<uint64_t> SendUpload(uint64_t batch_id, std::span<const std::string> event_bodies) {
    const uint64_t id = ++next_correlation;
    auto encoded = EncodeUploadFrame(id, batch_id, event_bodies);
    if (!encoded.ok()) return encoded.error();
    auto c = OpenConnection();
    if (!c.ok()) return c.error();
    (*c)->SendEncoded(std::move(*encoded));
    return id;
  }

  // Waits for the answer to request `id`. Answers to this thread's other
  // requests still outstanding are kept for their own Await: an error the
  // server sends at once (busy) can overtake an earlier request's answer.
  Result<v1::Frame> Await(uint64_t id) {
    std::unique_lock lock(mutex);
    std::optional<v1::Frame> reply;
    if (auto it = early.find(id); it != early.end()) {
      reply = std::move(it->second);
      early.erase(it);
    }
    auto take = [&] {
      while (!reply && !inbox.empty()) {
        v1::Frame f = std::move(inbox.front());
        inbox.pop_front();
        if (f.correlation_id() == id) {
          reply = std::move(f);
        } else if (f.correlation_id() > id && f.correlation_id() <= next_correlation) {
          early.emplace(f.correlation_id(), std::move(f));
        } else if (f.has_error()) {
          spdlog::warn("sync: server error: {} ({})", f.error().message(), f.error().code());
        }
      }
      return reply.has_value();
    };
    if (!reply) {
      changed.wait_for(lock, options.request_timeout,
                       [&] { return stopping || take() || conn_closed; });
    }
    if (reply) {
      if (reply->has_error()) {
        return MakeError(reply->error().code(), "server: " + reply->error().message());
      }
      return std::move(*reply);
    }
    if (stopping) return MakeError(code::kStopped, "the sync client is stopping");
    if (conn_closed) return close_reason;
    return MakeError(code::kTimeout, "the server did not answer within the request timeout");
  }

  // Write `fn` through the host, passing its result out.
  template <typename T, typename Fn>
  Result<T> Write(Fn fn) {
    std::optional<Result<T>> out;
    core::Status s = host.write([&](storage::AgentStore& store) -> core::Status {
      Result<T> r = fn(store);
      if (!r.ok()) return r.error();
      out.emplace(std::move(r));
      return {};
    });
    if (!s.ok()) return s.error();
    return std::move(*out);
  }

  // An UploadBatch sent and not yet answered.
  struct SentBatch {
    uint64_t batch_id = 0;
    uint64_t correlation_id = 0;
    std::vector<storage::StoredEvent> events;
  };

  // Reads the next batch after `after_seq` and sends it; nullopt when the
  // outbox holds nothing more.
  // The events go as they are stored, serialized: the frame is put
  // together from the outbox rows without parsing them; only their ids are
  // read, to match the acknowledgement against (ApplyUploadAck).
  Result<std::optional<SentBatch>> SendNextBatch(uint64_t after_seq) {
    // Keep frames well below the size limit whatever the baskets hold.
    auto bodies = reader->UnackedEventBodies(after_seq, options.batch_events, options.batch_bytes);
    if (!bodies.ok()) return bodies.error();
    if (bodies->empty()) return std::optional<SentBatch>();
    SentBatch sent;
    sent.batch_id = ++next_batch_id;
    sent.events.reserve(bodies->size());
    std::vector<std::string> wire;
    wire.reserve(bodies->size());
    for (auto& b : *bodies) {
      auto id = EventIdOf(b.body);
      if (!id.ok()) {
        return MakeError(core::code::kInternal, "outbox event " + std::to_string(b.seq) + ": " +
                                              id.error().message);
      }
      storage::StoredEvent& e = sent.events.emplace_back();
      e.seq = b.seq;
      *e.event.mutable_id() = std::move(*id);
      wire.push_back(std::move(b.body));
    }
    auto id = SendUpload(sent.batch_id, wire);
    if (!id.ok()) return id.error();
    sent.correlation_id = *id;
    return std::optional<SentBatch>(std::move(sent));
  }

  Result<v1::UploadAck> AwaitAck(const SentBatch& sent) {
    auto reply = Await(sent.correlation_id);
    if (!reply.ok()) return reply.error();
    if (!reply->has_upload_ack() || reply->upload_ack().batch_id() != sent.batch_id) {
      return MakeError(code::kProtocolError, "the server answered an upload with something else");
    }
    return std::move(*reply->mutable_upload_ack());
  }

  static bool ReusesSequence(const v1::UploadAck& ack) {
    return std::any_of(ack.rejected().begin(), ack.rejected().end(),
                       [](const v1::EventRejection& r) { return r.code() == kSequenceReused; });
  }

  core::Status Upload() {
    const std::size_t max_in_flight =
        static_cast<std::size_t>(std::max(1, options.batches_in_flight));
    std::deque<SentBatch> flight;
    uint64_t after_seq = 0;  // the last event sent
    bool drained = false;
    for (;;) {
      while (!drained && flight.size() < max_in_flight) {
        auto sent = SendNextBatch(after_seq);
        if (!sent.ok()) return sent.error();
        if (!*sent) {
          drained = true;
          break;
        }
        after_seq = (*sent)->events.back().seq;
        flight.push_back(std::move(**sent));
      }
      if (flight.empty()) {
        // Events the server neither acknowledged nor rejected are still in
        // the outbox below after_seq: read it again from the start, as
        // stop-and-wait did, until nothing is left.
        if (after_seq == 0) return {};
        after_seq = 0;
        drained = false;
        continue;
      }
      SentBatch sent = std::move(flight.front());
      flight.pop_front();
      auto ack = AwaitAck(sent);
      if (!ack.ok()) return ack.error();
      if (ReusesSequence(*ack)) {
        // A new epoch re-keys every outbox event from the first collision
        // on. The batches behind this one may hold events the server has
        // applied under the old epoch: their acks are applied in the same
        // write, so that those leave the outbox instead of being re-keyed
        // and applied twice. Nothing is applied if one is missing.
        for (SentBatch& next : flight) {
          auto next_ack = AwaitAck(next);
          if (!next_ack.ok()) return next_ack.error();
          ack->MergeFrom(*next_ack);
          for (auto& e : next.events) sent.events.push_back(std::move(e));
        }
        flight.clear();
        after_seq = 0;  // the re-keyed events go up again
        drained = false;
      }
      if (auto s = ApplyAck(sent.events, *ack); !s.ok()) return s;
    }
  }

  core::Status ApplyAck(const std::vector<storage::StoredEvent>& events, const v1::UploadAck& ack) {
    auto epoch = reader->GetMeta("epoch");
    if (!epoch.ok()) return epoch.error();
    const uint64_t current = *epoch ? std::stoull(**epoch) : 1;
    // A new epoch must differ from every earlier one: the clock in ms is,
    // unless the clock went back, in which case current + 1 is.
    const uint64_t fresh = std::max<uint64_t>(static_cast<uint64_t>(NowMs()), current + 1);
    auto outcome = Write<AckOutcome>([&](storage::AgentStore& store) {
      return ApplyUploadAck(store, events, ack, fresh, NowMs());
    });
    if (!outcome.ok()) return outcome.error();
    for (const auto& r : outcome->rejections) {
      spdlog::error(
          "sync: the server refused event {} for good: {} ({}); kept in the "
          "dead-letter table",
          EventKey(r.id()), r.message(), r.code());
    }
    if (outcome->new_epoch != 0) {
      spdlog::warn(
          "sync: sequence numbers already used on the server (terminal restored or "
          "reinstalled?): started epoch {} and re-keyed {} pending events",
          outcome->new_epoch, outcome->rekeyed);
    }
    if (outcome->acknowledged + outcome->dead_lettered + outcome->rekeyed == 0) {
      return MakeError(code::kProtocolError, "the server acknowledged none of the " +
                                                 std::to_string(events.size()) +
                                                 " events uploaded");
    }
    return {};
  }

  // Records the member scope the cursor was reached with. A terminal whose
  // scope widens to ALL has skipped other stores' members so far: it starts
  // again from a full snapshot.
  core::Status CheckScope() {
    const std::string want = v1::MemberScope_Name(options.member_scope);
    auto stored = reader->GetMeta(kScopeKey);
    if (!stored.ok()) return stored.error();
    if (*stored && **stored == want) return {};
    const bool widened = *stored && options.member_scope == v1::MEMBER_SCOPE_ALL;
    auto done = Write<bool>([&](storage::AgentStore& store) -> Result<bool> {
      if (widened) {
        if (auto s = store.PutMeta(kCursorKey, "0"); !s.ok()) return s.error();
      }
      if (auto s = store.PutMeta(kScopeKey, want); !s.ok()) return s.error();
      return true;
    });
    if (!done.ok()) return done.error();
    if (widened) spdlog::info("sync: member scope widened to all members; downloading a full snapshot");
    return {};
  }

  // Downloads until the feed has nothing more; the time its last page
  // arrived, stored with that page as the end of the round.
  Result<int64_t> Download() {
    if (auto s = CheckScope(); !s.ok()) return s.error();
    auto cursor = LoadCursor(*reader);
    if (!cursor.ok()) return cursor.error();
    for (;;) {
      v1::Frame frame;
      frame.mutable_changes_request()->set_after_version(*cursor);
      frame.mutable_changes_request()->set_max_changes(options.page_changes);
      frame.mutable_changes_request()->set_member_scope(options.member_scope);
      auto reply = Call(std::move(frame));
      if (!reply.ok()) return reply.error();
      if (!reply->has_changes_page()) {
        return MakeError(code::kProtocolError,
                         "the server answered a changes request with "
                         "something else");
      }
      const v1::ChangesPage& page = reply->changes_page();
      const bool last = !page.has_more();
      const int64_t now = NowMs();
      auto outcome = Write<PageOutcome>([&](storage::AgentStore& store) -> Result<PageOutcome> {
        auto applied = ApplyChangesPage(store, page);
        if (!applied.ok() || !last) return applied;
        // In the last page's write: recording the round's end costs no sync
        // to disk of its own.
        if (auto s = store.PutMeta(kLastSuccessKey, std::to_string(now)); !s.ok()) {
          return s.error();
        }
        return applied;
      });
      if (!outcome.ok()) return outcome.error();
      if (outcome->catalogue_changed && host.catalogue_changed) host.catalogue_changed();
      if (!page.changes().empty()) {
        spdlog::debug("sync: applied {} changes, cursor {}", page.changes_size(), page.cursor());
      }
      if (last) return now;
      if (page.changes().empty()) {
        return MakeError(code::kProtocolError, "the server sent an empty page with has_more set");
      }
      *cursor = page.cursor();
    }
  }

  SyncStatus Snapshot() {
    SyncStatus out;
    out.server = server;
    {
      std::lock_guard lock(mutex);
      out.last_success_ms = last_success_ms;
      out.last_error = last_error;
      out.clock_skew_ms = clock_skew_ms;
      out.connected = conn && conn_open && !conn_closed;
    }
    std::lock_guard lock(status_mutex);
    storage::AgentStore& s = *status_reader;
    if (auto n = s.CountUnackedEvents(); n.ok()) out.pending_events = *n;
    if (auto n = s.CountDeadLetters(); n.ok()) out.dead_letters = *n;
    if (auto c = LoadCursor(s); c.ok()) out.cursor = *c;
    if (auto e = s.GetMeta("epoch"); e.ok() && *e) out.epoch = std::stoull(**e);
    if (out.dead_letters > 0) {
      if (auto d = s.DeadLetters(20); d.ok()) out.recent_dead_letters = std::move(*d);
    }
    return out;
  }
};

Result<std::unique_ptr<AgentSync>> AgentSync::Start(AgentSyncOptions options, AgentSyncHost host) {
  if (!host.write)
    return MakeError(core::code::kInvalidRequest, "AgentSyncHost::write is required");
  auto bundle = pki::LoadBundle(options.tls_dir);
  if (!bundle.ok()) {
    return MakeError(code::kBadBundle, "cannot load the certificate bundle " +
                                           options.tls_dir.string() + ": " +
                                           bundle.error().message);
  }
  if (auto days = pki::BundleDaysUntilExpiry(*bundle); days.ok()) {
    if (*days < 0) {
      spdlog::error(
          "sync: the store certificate in {} has expired; the agent works offline "
          "until it is renewed (loyaltyctl pki renew --dir CA_DIR --bundle BUNDLE at "
          "head office, then copy the bundle here)",
          options.tls_dir.string());
    } else if (*days < 30) {
      spdlog::warn(
          "sync: the store certificate in {} expires in {} days; renew it with "
          "loyaltyctl pki renew",
          options.tls_dir.string(), *days);
    }
  }
  storage::Database::Options read;
  read.read_only = true;
  read.durability = storage::Database::Durability::kNormal;
  auto reader = storage::AgentStore::Open(options.db_path, read);
  if (!reader.ok()) return reader.error();
  auto status_reader = storage::AgentStore::Open(options.db_path, read);
  if (!status_reader.ok()) return status_reader.error();

  auto state = std::make_unique<State>();
  // The last success survives a restart: after one while the server is down,
  // store IT still sees how stale the terminal is.
  if (auto stored = (*reader)->GetMeta(kLastSuccessKey); !stored.ok()) {
    spdlog::warn("sync: cannot read when the last sync succeeded: {}", stored.error().message);
  } else if (*stored) {
    const std::string& text = **stored;
    int64_t ms = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
    if (ec == std::errc() && end == text.data() + text.size() && ms > 0) {
      state->last_success_ms = ms;
    } else {
      spdlog::warn("sync: ignoring a malformed last sync time \"{}\"", text);
    }
  }
  state->server = options.host + ":" + std::to_string(options.port);
  state->options = std::move(options);
  state->host = std::move(host);
  state->reader = std::move(*reader);
  state->status_reader = std::move(*status_reader);
  State* s = state.get();
  s->io_thread = std::thread([s] { s->ioc.run(); });
  s->sync_thread = std::thread([s] { s->Run(); });
  return std::unique_ptr<AgentSync>(new AgentSync(std::move(state)));
}

AgentSync::AgentSync(std::unique_ptr<State> state) : state_(std::move(state)) {}

AgentSync::~AgentSync() { Stop(); }

void AgentSync::Trigger() {
  std::lock_guard lock(state_->mutex);
  state_->trigger = true;
  state_->changed.notify_all();
}

Result<SyncStatus> AgentSync::SyncNow(std::chrono::milliseconds timeout) {
  State& s = *state_;
  {
    std::unique_lock lock(s.mutex);
    const uint64_t mine = ++s.requested_gen;
    s.changed.notify_all();
    // A round serves this call only if it started after it: done_gen is the
    // request count a round saw when it began.
    if (!s.changed.wait_for(lock, timeout, [&] { return s.stopping || s.done_gen >= mine; })) {
      return MakeError(code::kTimeout,
                       "no sync round finished within " + std::to_string(timeout.count()) + " ms");
    }
    if (s.stopping && s.done_gen < mine) {
      return MakeError(code::kStopped, "the sync client is stopping");
    }
    if (s.last_round_error) return *s.last_round_error;
  }
  return s.Snapshot();
}

SyncStatus AgentSync::Status() { return state_->Snapshot(); }

Result<std::optional<v1::MemberSnapshot>> AgentSync::LookupMember(
    const std::string& card_hash, std::chrono::milliseconds timeout) {
  State& s = *state_;
  v1::Frame request;
  request.mutable_member_lookup()->set_card_hash(card_hash);
  ConnectionPtr c;
  uint64_t id = 0;
  {
    std::lock_guard lock(s.mutex);
    if (s.stopping || !s.conn || !s.conn_open || s.conn_closed) {
      return MakeError(code::kOffline, "not connected to " + s.server);
    }
    c = s.conn;
    id = s.next_lookup++;
    s.lookups.emplace(id, std::nullopt);
  }
  request.set_correlation_id(id);
  c->Send(std::move(request));
  std::optional<v1::Frame> reply;
  {
    std::unique_lock lock(s.mutex);
    s.changed.wait_for(lock, timeout, [&] {
      return s.stopping || s.lookups[id].has_value() || s.conn != c || s.conn_closed;
    });
    reply = std::move(s.lookups[id]);
    s.lookups.erase(id);
  }
  if (!reply) {
    std::lock_guard lock(s.mutex);
    if (s.stopping) return MakeError(code::kStopped, "the sync client is stopping");
    if (s.conn != c || s.conn_closed) {
      return MakeError(code::kOffline, "the connection to " + s.server + " closed");
    }
    return MakeError(code::kTimeout, "the server did not answer the member lookup within " +
                                         std::to_string(timeout.count()) + " ms");
  }
  if (reply->has_error()) {
    return MakeError(reply->error().code(), "server: " + reply->error().message());
  }
  if (!reply->has_member_lookup_result()) {
    return MakeError(code::kProtocolError, "the server answered a member lookup with something else");
  }
  const v1::MemberLookupResult& result = reply->member_lookup_result();
  if (!result.found()) return std::optional<v1::MemberSnapshot>();
  if (result.member().card_hash() != card_hash) {
    return MakeError(code::kProtocolError, "the server answered a lookup with another card's member");
  }
  auto installed = s.Write<bool>([&](storage::AgentStore& store) {
    return ApplyLookedUpMember(store, result.member());
  });
  if (!installed.ok()) return installed.error();
  return std::optional<v1::MemberSnapshot>(result.member());
}

void AgentSync::Stop() {
  State& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    if (s.stopping && !s.sync_thread.joinable()) return;
    s.stopping = true;
    s.changed.notify_all();
  }
  if (s.sync_thread.joinable()) s.sync_thread.join();
  s.DropConnection();
  s.work.reset();
  // Nothing waits for the TLS close: the server treats a cut connection like
  // any other (it only ever acts on whole frames).
  s.ioc.stop();
  if (s.io_thread.joinable()) s.io_thread.join();
}

}  // namespace loyalty::sync

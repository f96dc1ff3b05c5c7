// The SQLite ServerReader (storage/server_store.h): a read-only connection to
// the server ledger that the segmentation jobs, previews and KPIs scan from
// a thread of their own, so ingest on the database thread never waits.
//
// ScanMembers is the full pass's hot loop: one sequential pass over the
// events_facts covering index (member_id, occurred_ms, kind, amount, party,
// cats; the primary key event_key rides along in every index entry) as
// SELECT member_id, loyalty_member_fold(...) ... GROUP BY member_id, where
// the aggregate folds each member's facts into a reused core::FeatureFold
// (FoldStep); each member's row is then merged by member id with the sparse
// member_profiles table and, on request, member_segments and members.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>
#include <optional>

#include "core/features.h"
#include "core/programme.h"
#include "core/time_util.h"
#include "storage/change_feed.h"
#include "storage/protobuf_blob.h"
#include "storage/server_store.h"
#include "storage/sqlite.h"

namespace loyalty::storage {
namespace {

namespace v1 = loyalty::v1;
using core::MakeError;
using google::protobuf::internal::WireFormatLite;

// The length-delimited field `number` of the serialized message `bytes`
// (the last one, as protobuf parsing would keep), without parsing the rest.
std::string_view FieldBytes(std::string_view bytes, int number) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  std::string_view found;
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return found;
    if (WireFormatLite::GetTagFieldNumber(tag) == number &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t size = 0;
      if (!in.ReadVarint32(&size)) return found;
      const int at = in.CurrentPosition();
      if (size > bytes.size() - static_cast<size_t>(at)) return found;
      found = bytes.substr(static_cast<size_t>(at), size);
      if (!in.Skip(static_cast<int>(size))) return found;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return found;
    }
  }
}

// MemberLedger.snapshot (1) -> MemberSnapshot.tier (5).
std::string_view TierOf(std::string_view ledger) { return FieldBytes(FieldBytes(ledger, 1), 5); }

// The store of an event key ("store/terminal/epoch/seq").
std::string_view StoreOf(std::string_view event_key) {
  return event_key.substr(0, event_key.find('/'));
}

// A statement over a table in member id order, stepped alongside the events
// scan: Seek(id) positions it on the first row whose member id is >= id.
class MemberCursor {
 public:
  explicit MemberCursor(Statement* stmt) : stmt_(stmt) {}
  Status Start() { return Next(); }
  // True when the current row is `id`'s.
  Result<bool> Seek(std::string_view id) {
    while (valid_ && key() < id) {
      if (auto s = Next(); !s.ok()) return s.error();
    }
    return valid_ && key() == id;
  }
  Status Next() {
    auto row = stmt_->Step();
    if (!row.ok()) return row.error();
    valid_ = *row;
    return {};
  }
  bool valid() const { return valid_; }
  std::string_view key() const { return stmt_->ColumnBlob(0); }
  Statement& row() { return *stmt_; }

 private:
  Statement* stmt_;
  bool valid_ = false;
};

// One member's facts folded so far, and their visits per store.
struct MemberAccumulator {
  explicit MemberAccumulator(const core::FeatureContext& ctx) : fold(ctx) {}
  void Reset() {
    fold.Reset();
    stores_used = 0;
  }
  void CountStoreVisit(std::string_view store, int64_t age_ms) {
    if (age_ms >= 365 * core::kMillisPerDay) return;
    StoreVisits* v = nullptr;
    for (size_t i = 0; i < stores_used && v == nullptr; ++i) {
      if (stores[i].first == store) v = &stores[i].second;
    }
    if (v == nullptr) {
      if (stores_used == stores.size()) stores.emplace_back();
      auto& slot = stores[stores_used++];
      slot.first.assign(store);
      slot.second = StoreVisits{};
      v = &slot.second;
    }
    ++v->visits_365d;
    if (age_ms < 30 * core::kMillisPerDay) ++v->visits_30d;
  }

  core::FeatureFold fold;
  std::vector<std::pair<std::string, StoreVisits>> stores;  // reused across members
  size_t stores_used = 0;
};

// What the loyalty_member_fold aggregate works on during a scan.
struct FoldState {
  FoldState(const core::FeatureContext& ctx, bool count_stores)
      : now_ms(ctx.now_ms), stores(count_stores), current(ctx), completed(ctx) {}
  const int64_t now_ms;
  const bool stores;
  MemberAccumulator current;    // the member being folded
  MemberAccumulator completed;  // the last member whose group ended
};

class SqliteServerReader final : public ServerReader {
 public:
  SqliteServerReader(std::unique_ptr<Database> db, std::string path,
                     const SegmentationOptions& options)
      : db_(std::move(db)), path_(std::move(path)), options_(options) {}

  // Registers loyalty_member_fold on the connection (see FoldStep).
  Status Init() {
    const int rc = sqlite3_create_function_v2(
        db_->handle(), "loyalty_member_fold", -1, SQLITE_UTF8 | SQLITE_DIRECTONLY, this, nullptr,
        &FoldStep, &FoldFinal, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_->handle(), rc, "create loyalty_member_fold");
    return {};
  }

  Status BeginSnapshot() override {
    if (snapshot_) return MakeError(core::code::kInternal, "a read snapshot is already open");
    auto txn = Transaction::Begin(*db_, Transaction::Mode::kDeferred);
    if (!txn.ok()) return txn.error();
    snapshot_.emplace(std::move(*txn));
    // A deferred transaction starts reading at its first statement: read now.
    if (auto v = LatestVersion(); !v.ok()) {
      snapshot_.reset();
      return v.error();
    }
    return {};
  }

  void EndSnapshot() override { snapshot_.reset(); }

  Result<v1::ChangesPage> Changes(uint64_t after_version, uint32_t max_changes,
                                  const std::string& scope_store) override {
    if (snapshot_) return MakeError(core::code::kInternal, "a read snapshot is open");
    if (scope_store.empty()) return ReadChangesPage(*db_, after_version, max_changes, {});
    return scoped_feed_.Read(*db_, after_version, max_changes, scope_store);
  }

  Result<uint64_t> LatestVersion() override { return ReadLatestVersion(*db_); }

  Result<std::vector<v1::SegmentDefinition>> Segments() override {
    return ParseAll<v1::SegmentDefinition>("SELECT body FROM segments ORDER BY id", "segment");
  }

  Result<v1::CutPoints> CutPoints() override {
    auto value = Meta("cut_points");
    if (!value.ok()) return value.error();
    if (!*value) return v1::CutPoints();
    return ParseBlob<v1::CutPoints>(**value, "cut points");
  }

  Result<v1::Programme> Programme() override {
    auto value = Meta("programme");
    if (!value.ok()) return value.error();
    if (!*value) return core::DefaultProgramme();
    return ParseBlob<v1::Programme>(**value, "programme");
  }

  Result<std::vector<v1::Offer>> Offers() override {
    return ParseAll<v1::Offer>("SELECT body FROM offers WHERE retired = 0 ORDER BY id", "offer");
  }

  Result<std::vector<OfferUse>> OfferUses() override {
    auto stmt = db_->Prepare("SELECT member_id, body FROM events WHERE kind = 2");
    if (!stmt.ok()) return stmt.error();
    std::vector<OfferUse> out;
    for (;;) {
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      auto e = ParseBlob<v1::Event>((*stmt)->ColumnBlob(1), "event");
      if (!e.ok()) return e.error();
      for (const auto& o : e->purchase().offers()) {
        out.push_back(OfferUse{(*stmt)->ColumnText(0), o.offer_id(), o.discount(), o.points()});
      }
    }
    return out;
  }

  Result<std::map<std::string, std::pair<int64_t, int64_t>>> SegmentMoves(
      int64_t since_ms) override {
    auto stmt = db_->Prepare(
        "SELECT segment_id, sum(entered), sum(1 - entered) FROM segment_moves WHERE at_ms >= ? "
        "GROUP BY segment_id");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, since_ms);
    std::map<std::string, std::pair<int64_t, int64_t>> out;
    for (;;) {
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      out[(*stmt)->ColumnText(0)] = {(*stmt)->ColumnInt(1), (*stmt)->ColumnInt(2)};
    }
    return out;
  }

  Result<std::unique_ptr<ServerReader>> OpenAnother() override {
    return OpenSqliteServerReader(path_, options_);
  }

  Result<std::optional<std::pair<std::string, std::string>>> MemberIdBounds() override {
    using Bounds = std::optional<std::pair<std::string, std::string>>;
    std::string bounds[2];
    for (int i = 0; i < 2; ++i) {
      auto stmt = db_->Prepare(i == 0 ? "SELECT member_id FROM events INDEXED BY events_facts "
                                        "ORDER BY member_id LIMIT 1"
                                      : "SELECT member_id FROM events INDEXED BY events_facts "
                                        "ORDER BY member_id DESC LIMIT 1");
      if (!stmt.ok()) return stmt.error();
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) return Bounds();
      bounds[i] = std::string((*stmt)->ColumnBlob(0));
      (*stmt)->Reset();
    }
    return Bounds(std::make_pair(std::move(bounds[0]), std::move(bounds[1])));
  }

  Status ScanMembers(const MemberScanOptions& options,
                     const std::function<void(const ScannedMember&)>& visit) override {
    // One snapshot for the whole scan, unless the caller holds one.
    const bool own_snapshot = !snapshot_;
    if (own_snapshot) {
      if (auto s = BeginSnapshot(); !s.ok()) return s;
    }
    Status status = Scan(options, visit);
    // Rewind what the scan left open, so no statement outlives the snapshot.
    for (Statement* stmt : scan_statements_) stmt->Reset();
    scan_statements_.clear();
    if (own_snapshot) EndSnapshot();
    return status;
  }

 private:
  Status Scan(const MemberScanOptions& options,
              const std::function<void(const ScannedMember&)>& visit) {
    auto cuts = CutPoints();
    if (!cuts.ok()) return cuts.error();
    FoldState state(core::FeatureContext{options.now_ms, options_.utc_offset_minutes, &*cuts},
                    options.stores);

    // Every query reads the same range of member ids, in member id order.
    const bool bounded = !options.to_member.empty();
    const std::string range = bounded ? " WHERE member_id >= ?1 AND member_id < ?2"
                                      : " WHERE member_id >= ?1";
    auto prepare = [&](const std::string& sql) -> Result<Statement*> {
      auto stmt = db_->Prepare(sql);
      if (!stmt.ok()) return stmt.error();
      (*stmt)->Bind(1, options.from_member);
      if (bounded) (*stmt)->Bind(2, options.to_member);
      scan_statements_.push_back(*stmt);
      return *stmt;
    };
    auto events = prepare(
        std::string("SELECT member_id, loyalty_member_fold(occurred_ms, kind, amount, party, cats") +
        (options.stores ? ", event_key" : "") + ") FROM events INDEXED BY events_facts" + range +
        " GROUP BY member_id");
    if (!events.ok()) return events.error();
    auto profiles_stmt = prepare(
        "SELECT member_id, erased, consent, age_band, sex, region FROM member_profiles" + range +
        " ORDER BY member_id");
    if (!profiles_stmt.ok()) return profiles_stmt.error();
    MemberCursor profiles(*profiles_stmt);
    if (auto s = profiles.Start(); !s.ok()) return s;
    std::optional<MemberCursor> segments, ledgers;
    if (options.segment_rows) {
      auto stmt = prepare("SELECT member_id, segment_id FROM member_segments" + range +
                          " ORDER BY member_id, segment_id");
      if (!stmt.ok()) return stmt.error();
      segments.emplace(*stmt);
      if (auto s = segments->Start(); !s.ok()) return s;
    }
    if (options.tier) {
      auto stmt = prepare("SELECT member_id, ledger FROM members" + range + " ORDER BY member_id");
      if (!stmt.ok()) return stmt.error();
      ledgers.emplace(*stmt);
      if (auto s = ledgers->Start(); !s.ok()) return s;
    }

    core::FeatureValues values;
    // The member's saved segment ids: their bytes one after another (no
    // allocation per row once warm), then views.
    std::string segment_bytes;
    std::vector<size_t> segment_ends;
    std::vector<std::string_view> segment_rows;
    std::vector<StoreVisits> store_views;

    fold_state_ = &state;
    struct Clear {
      FoldState*& state;
      ~Clear() { state = nullptr; }
    } clear{fold_state_};
    Statement& row = **events;
    for (;;) {
      auto more = row.Step();  // folds one member's events (FoldStep, FoldFinal)
      if (!more.ok()) return more.error();
      if (!*more) break;
      const std::string_view member = row.ColumnBlob(0);
      const MemberAccumulator& folded = state.completed;
      auto has_profile = profiles.Seek(member);
      if (!has_profile.ok()) return has_profile.error();
      core::Demographics demographics;
      if (*has_profile) {
        Statement& p = profiles.row();
        if (p.ColumnInt(1) != 0) continue;  // erased
        if (p.ColumnInt(2) != 0) {
          demographics = {true, p.ColumnBlob(3), p.ColumnBlob(4), p.ColumnBlob(5)};
        }
      }
      folded.fold.Finish(demographics, &values);
      segment_bytes.clear();
      segment_ends.clear();
      segment_rows.clear();
      if (segments) {
        auto found = segments->Seek(member);
        if (!found.ok()) return found.error();
        while (segments->valid() && segments->key() == member) {
          segment_bytes.append(segments->row().ColumnBlob(1));
          segment_ends.push_back(segment_bytes.size());
          if (auto s = segments->Next(); !s.ok()) return s;
        }
        size_t begin = 0;
        for (size_t end : segment_ends) {
          segment_rows.push_back(std::string_view(segment_bytes).substr(begin, end - begin));
          begin = end;
        }
      }
      std::string_view tier;
      if (ledgers) {
        auto found = ledgers->Seek(member);
        if (!found.ok()) return found.error();
        if (*found) tier = TierOf(ledgers->row().ColumnBlob(1));
      }
      store_views.clear();
      for (size_t i = 0; i < folded.stores_used; ++i) {
        StoreVisits v = folded.stores[i].second;
        v.store_id = folded.stores[i].first;
        store_views.push_back(v);
      }
      visit(ScannedMember{member, values, segment_rows, tier, store_views});
    }
    return {};
  }

  // The aggregate loyalty_member_fold(occurred_ms, kind, amount, party,
  // cats[, event_key]): folds a member's facts into FoldState::current;
  // at the end of the member's group the fold moves to `completed`, where
  // Scan reads it with the row. Running the fold as an aggregate of a
  // GROUP BY member_id query leaves the grouping and the decoding of the
  // columns to SQLite's virtual machine: a row then costs about what a row
  // of the bare aggregation costs, where reading five columns per row
  // through sqlite3_column_* costs as much again.
  static void FoldStep(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
    FoldState* state = static_cast<SqliteServerReader*>(sqlite3_user_data(ctx))->fold_state_;
    if (state == nullptr || argc < 5 || (state->stores && argc < 6)) {
      sqlite3_result_error(ctx, "loyalty_member_fold: not inside a member scan", -1);
      return;
    }
    auto* started = static_cast<bool*>(sqlite3_aggregate_context(ctx, sizeof(bool)));
    if (started == nullptr) {
      sqlite3_result_error_nomem(ctx);
      return;
    }
    MemberAccumulator& m = state->current;
    if (!*started) {
      m.Reset();
      *started = true;
    }
    const int64_t occurred_ms = sqlite3_value_int64(argv[0]);
    const auto kind = static_cast<core::FactKind>(sqlite3_value_int64(argv[1]));
    switch (kind) {  // only the values this kind uses
      case core::FactKind::kVisit:
        m.fold.Add(occurred_ms, kind, 0, sqlite3_value_int64(argv[3]), {});
        if (state->stores) {
          const auto* key = static_cast<const char*>(sqlite3_value_blob(argv[5]));
          const auto size = static_cast<size_t>(sqlite3_value_bytes(argv[5]));
          m.CountStoreVisit(StoreOf(std::string_view(key != nullptr ? key : "", size)),
                            state->now_ms - occurred_ms);
        }
        break;
      case core::FactKind::kPurchase: {
        const auto* cats = static_cast<const char*>(sqlite3_value_blob(argv[4]));
        const auto size = static_cast<size_t>(sqlite3_value_bytes(argv[4]));
        m.fold.Add(occurred_ms, kind, sqlite3_value_int64(argv[2]), 0,
                   std::string_view(cats != nullptr ? cats : "", size));
        break;
      }
      case core::FactKind::kReversal:
        m.fold.Add(occurred_ms, kind, sqlite3_value_int64(argv[2]), 0, {});
        break;
      default:
        m.fold.Add(occurred_ms, kind, 0, 0, {});
        break;
    }
  }

  static void FoldFinal(sqlite3_context* ctx) {
    FoldState* state = static_cast<SqliteServerReader*>(sqlite3_user_data(ctx))->fold_state_;
    if (state == nullptr || sqlite3_aggregate_context(ctx, 0) == nullptr) {
      sqlite3_result_null(ctx);
      return;
    }
    std::swap(state->current, state->completed);
    sqlite3_result_int(ctx, 1);
  }

  Result<std::optional<std::string>> Meta(const char* key) {
    auto stmt = db_->Prepare("SELECT value FROM meta WHERE key = ?");
    if (!stmt.ok()) return stmt.error();
    (*stmt)->Bind(1, std::string_view(key));
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    if (!*row) return std::optional<std::string>();
    std::string value((*stmt)->ColumnBlob(0));
    (*stmt)->Reset();
    return std::optional<std::string>(std::move(value));
  }

  template <typename Message>
  Result<std::vector<Message>> ParseAll(std::string_view sql, const char* what) {
    auto stmt = db_->Prepare(sql);
    if (!stmt.ok()) return stmt.error();
    std::vector<Message> out;
    for (;;) {
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      auto m = ParseBlob<Message>((*stmt)->ColumnBlob(0), what);
      if (!m.ok()) return m.error();
      out.push_back(std::move(*m));
    }
    return out;
  }

  std::unique_ptr<Database> db_;
  const std::string path_;
  ScopedFeedCache scoped_feed_;  // pulls of MEMBER_SCOPE_STORE terminals
  const SegmentationOptions options_;
  std::optional<Transaction> snapshot_;
  std::vector<Statement*> scan_statements_;  // of the scan running now
  FoldState* fold_state_ = nullptr;          // during a scan
};

}  // namespace

Result<std::unique_ptr<ServerReader>> OpenSqliteServerReader(const std::string& path,
                                                             const SegmentationOptions& options) {
  Database::Options db_options;
  db_options.read_only = true;
  db_options.create = false;
  db_options.durability = Database::Durability::kNormal;
  auto db = Database::Open(path, db_options);
  if (!db.ok()) return db.error();
  auto reader = std::make_unique<SqliteServerReader>(std::move(*db), path, options);
  if (auto s = reader->Init(); !s.ok()) return s.error();
  return std::unique_ptr<ServerReader>(std::move(reader));
}

}  // namespace loyalty::storage

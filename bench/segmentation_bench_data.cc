#include "bench/segmentation_bench_data.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <thread>

#include "core/features.h"
#include "core/member_state.h"
#include "core/programme.h"
#include "core/time_util.h"
#include "loyalty/v1/server.pb.h"
#include "storage/server_store.h"
#include "storage/sqlite.h"

namespace loyalty::bench {
namespace {

namespace v1 = loyalty::v1;
using core::kMillisPerDay;
using core::MakeError;
using core::Status;
using storage::Database;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kHistoryDays = 730;
constexpr int kTerminalsPerStore = 4;
constexpr int kOffers = 20;

constexpr std::array<const char*, 30> kCategories = {
    "Bakery",  "Coffee",   "Dairy",      "Fruit",     "Vegetables", "Meat",    "Fish",
    "Deli",    "Frozen",   "Snacks",     "Drinks",    "Wine",       "Beer",    "Tea",
    "Cereal",  "Pasta",    "Rice",       "Canned",    "Sauces",     "Spices",  "Sweets",
    "Baby",    "Pet",      "Household",  "Cleaning",  "Beauty",     "Health",  "Flowers",
    "Toys",    "Stationery"};
constexpr std::array<const char*, 6> kAgeBands = {"18-24", "25-34", "35-44",
                                                   "45-54", "55-64", "65+"};
constexpr std::array<const char*, 3> kSexes = {"f", "m", "x"};
constexpr std::array<const char*, 5> kRegions = {"North", "South", "East", "West", "Central"};

// splitmix64: small, fast and good enough for synthetic data.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  int64_t Below(int64_t n) { return static_cast<int64_t>(Next() % static_cast<uint64_t>(n)); }
  double Normal() {
    const double u = std::max(Uniform(), 1e-12), v = Uniform();
    return std::sqrt(-2 * std::log(u)) * std::cos(2 * M_PI * v);
  }

 private:
  uint64_t s_;
};

enum Kind : uint8_t { kEnrol, kVisit, kPurchase, kRedemption, kReversal };

struct MemberGen {
  int64_t enrol_ms = 0;
  int64_t active_until_ms = 0;
  uint32_t first_event = 0;
  uint32_t events = 0;
  uint16_t home_store = 0;
  uint8_t favourites[3] = {0, 0, 0};
  uint8_t favourite_count = 1;
  bool weekend = false;
  uint8_t band = 0;  // preferred time of day: morning, afternoon, evening
};

// One event, compactly; BuildEvent makes the message from it.
struct Ev {
  int64_t ms = 0;
  uint32_t member = 0;
  uint32_t checkout = 0;  // seeds the basket, names the transaction
  uint32_t seq = 0;
  uint32_t aux = 0;  // visit: party size; redemption: points
  uint16_t store = 0;
  uint8_t terminal = 0;
  Kind kind = kVisit;
};

struct Line {
  uint8_t category;
  uint8_t sku;
  int64_t quantity;
  int64_t unit_price;
};

struct Basket {
  std::array<Line, 5> lines;
  int count = 0;
  int64_t total = 0;
  int64_t points = 0;
  int offer = 0;  // 1..kOffers, 0 for none
  int64_t offer_points = 0;
};

// Category popularity: Zipf-like.
class CategoryPicker {
 public:
  CategoryPicker() {
    double sum = 0;
    for (size_t i = 0; i < kCategories.size(); ++i) {
      sum += 1.0 / std::pow(static_cast<double>(i + 1), 0.9);
      cumulative_[i] = sum;
    }
    for (double& c : cumulative_) c /= sum;
  }
  uint8_t Pick(Rng& rng) const {
    const double u = rng.Uniform();
    return static_cast<uint8_t>(std::lower_bound(cumulative_.begin(), cumulative_.end(), u) -
                                cumulative_.begin());
  }

 private:
  std::array<double, kCategories.size()> cumulative_{};
};

const CategoryPicker& Categories() {
  static const CategoryPicker picker;
  return picker;
}

Basket MakeBasket(uint32_t checkout, const MemberGen& m) {
  Rng rng(uint64_t{checkout} * 0x2545f4914f6cdd1dull + 7);
  Basket b;
  const double u = rng.Uniform();
  b.count = u < 0.35 ? 1 : u < 0.65 ? 2 : u < 0.85 ? 3 : u < 0.95 ? 4 : 5;
  for (int i = 0; i < b.count; ++i) {
    Line& l = b.lines[static_cast<size_t>(i)];
    l.category = rng.Uniform() < 0.7 ? m.favourites[rng.Below(m.favourite_count)]
                                     : Categories().Pick(rng);
    l.sku = static_cast<uint8_t>(rng.Below(50));
    l.quantity = rng.Uniform() < 0.2 ? 2 + rng.Below(2) : 1;
    l.unit_price = std::clamp<int64_t>(std::llround(std::exp(5.8 + 0.8 * rng.Normal())), 50, 20000);
    const int64_t net = l.quantity * l.unit_price;
    b.total += net;
    b.points += net / 100;  // 1 point per unit, rounded down per line
  }
  if (rng.Uniform() < 0.05) {
    b.offer = 1 + static_cast<int>(rng.Below(kOffers));
    b.offer_points = 10;
  }
  return b;
}

std::string StoreId(int store) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "s%04d", store);
  return buf;
}

std::string Hex(uint64_t v, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4) out[static_cast<size_t>(i)] = kHex[v & 15];
  return out;
}

// Member ids "p-" + 10 hex digits, distinct: a bijection of 40-bit numbers.
std::string MemberIdOf(uint64_t i) {
  constexpr uint64_t kMask = (uint64_t{1} << 40) - 1;
  uint64_t x = (i * 0x5deece66dull) & kMask;
  x ^= x >> 17;
  x = (x * 0x9e3779b1ull) & kMask;
  x ^= x >> 19;
  return "p-" + Hex(x, 10);
}

std::string CardHashOf(uint64_t member) {
  Rng rng(member * 31 + 17);
  return Hex(member, 16) + Hex(rng.Next(), 16) + Hex(rng.Next(), 16) + Hex(rng.Next(), 16);
}

std::string Uuid(uint32_t checkout, Kind kind) {
  Rng rng(uint64_t{checkout} * 8 + kind);
  const uint64_t a = rng.Next(), b = rng.Next();
  std::string h = Hex(a, 16) + Hex(b, 16);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-4" + h.substr(13, 3) + "-a" + h.substr(17, 3) +
         "-" + h.substr(20, 12);
}

v1::Event BuildEvent(const Ev& e, const MemberGen& m, uint64_t member_index,
                     const std::string& member_id) {
  v1::Event event;
  auto* id = event.mutable_id();
  id->set_store_id(StoreId(e.store));
  id->set_terminal_id("t" + std::to_string(e.terminal));
  id->set_epoch(1);
  id->set_seq(e.seq);
  id->set_uuid(Uuid(e.checkout, e.kind));
  event.set_occurred_at_ms(e.ms);
  event.set_member_id(member_id);
  const std::string txn = "c" + std::to_string(e.checkout);
  switch (e.kind) {
    case kEnrol: {
      auto* en = event.mutable_enrolment();
      en->set_card_hash(CardHashOf(member_index));
      en->set_display_name("Member " + std::to_string(member_index));
      en->set_language("en");
      break;
    }
    case kVisit:
      event.mutable_visit()->set_pos_txn_id(txn);
      event.mutable_visit()->set_party_size(e.aux);
      break;
    case kPurchase: {
      const Basket b = MakeBasket(e.checkout, m);
      auto* p = event.mutable_purchase();
      p->set_pos_txn_id(txn);
      for (int i = 0; i < b.count; ++i) {
        const Line& l = b.lines[static_cast<size_t>(i)];
        auto* line = p->add_lines();
        line->mutable_line()->set_sku("SKU-" + std::to_string(l.category) + "-" +
                                      std::to_string(l.sku));
        line->mutable_line()->set_category(kCategories[l.category]);
        line->mutable_line()->set_quantity(l.quantity);
        line->mutable_line()->set_unit_price(l.unit_price);
        line->set_gross(l.quantity * l.unit_price);
        line->set_net(l.quantity * l.unit_price);
        line->set_points(l.quantity * l.unit_price / 100);
      }
      if (b.offer != 0) {
        auto* o = p->add_offers();
        o->set_offer_id("promo-" + std::to_string(b.offer));
        o->set_name("Promotion " + std::to_string(b.offer));
        o->set_points(b.offer_points);
      }
      p->set_subtotal(b.total);
      p->set_total(b.total);
      p->set_points_earned(b.points + b.offer_points);
      p->set_qualifying_spend(b.total);
      break;
    }
    case kRedemption: {
      auto* r = event.mutable_redemption();
      r->set_redemption_id("r" + std::to_string(e.checkout));
      r->set_pos_txn_id(txn);
      r->set_points(e.aux);
      r->set_value(e.aux);
      r->set_mode(v1::Redemption::DISCOUNT);
      break;
    }
    case kReversal: {
      const Basket b = MakeBasket(e.checkout, m);
      auto* r = event.mutable_reversal();
      r->set_pos_txn_id(txn);
      r->set_reversal_id("v" + std::to_string(e.checkout));
      r->set_points_reversed(b.points + b.offer_points);
      r->set_refund(b.total);
      r->set_qualifying_spend_reversed(b.total);
      if (b.offer != 0) r->add_offers_released("promo-" + std::to_string(b.offer));
      r->set_complete(true);
      break;
    }
  }
  return event;
}

// A time of day in the member's habits, on `day` (UTC = store time here).
int64_t TimeOnDay(int64_t day, const MemberGen& m, Rng& rng) {
  int hour;
  if (rng.Uniform() < 0.6) {
    static constexpr int kFrom[3] = {8, 12, 17}, kSpan[3] = {4, 5, 4};
    hour = kFrom[m.band] + static_cast<int>(rng.Below(kSpan[m.band]));
  } else {
    hour = 7 + static_cast<int>(rng.Below(15));
  }
  return day * kMillisPerDay + hour * 3'600'000 + rng.Below(3'600'000);
}

int Weekday(int64_t day) { return static_cast<int>(((day % 7) + 11) % 7); }  // 0 = Sunday

struct Generated {
  std::vector<std::string> member_ids;  // sorted: index = member
  std::vector<MemberGen> members;
  std::vector<Ev> events;  // member-major, by time within a member
  int stores = 0;
  int64_t now_ms = 0;
};

Generated Draw(const LedgerShape& shape, int64_t now_ms) {
  Generated g;
  g.now_ms = now_ms;
  const auto members = static_cast<size_t>(shape.members);
  g.stores = static_cast<int>(std::max<int64_t>(10, shape.members / 5000));
  g.member_ids.reserve(members);
  for (size_t i = 0; i < members; ++i) g.member_ids.push_back(MemberIdOf(i + 1));
  std::sort(g.member_ids.begin(), g.member_ids.end());

  Rng rng(20240615);
  const int64_t now_day = now_ms / kMillisPerDay;
  g.members.resize(members);
  std::vector<double> weight(members);
  double total_weight = 0;
  for (size_t i = 0; i < members; ++i) {
    MemberGen& m = g.members[i];
    m.enrol_ms = now_ms - 3'600'000 - rng.Below(kHistoryDays * kMillisPerDay);
    m.active_until_ms = now_ms - kMinute;
    if (rng.Uniform() < 0.35) {  // stopped coming at some point
      m.active_until_ms =
          m.enrol_ms + static_cast<int64_t>(std::pow(rng.Uniform(), 0.7) *
                                            static_cast<double>(now_ms - kMinute - m.enrol_ms));
    }
    m.home_store = static_cast<uint16_t>(1 + rng.Below(g.stores));
    m.favourite_count = static_cast<uint8_t>(1 + rng.Below(3));
    for (auto& f : m.favourites) f = Categories().Pick(rng);
    m.weekend = rng.Uniform() < 0.3;
    m.band = static_cast<uint8_t>(rng.Below(3));
    const double active_days =
        std::max(1.0, static_cast<double>(m.active_until_ms - m.enrol_ms) / kMillisPerDay);
    weight[i] = std::exp(1.1 * rng.Normal()) * active_days;
    total_weight += weight[i];
  }
  // About 2.05 events per checkout (visit, purchase, a redemption now and
  // then, a void rarely) besides the enrolment.
  const double checkouts = static_cast<double>(shape.events - shape.members) / 2.05;
  g.events.reserve(static_cast<size_t>(shape.events + shape.events / 50));
  uint32_t checkout = 0;
  std::vector<int64_t> times;
  for (size_t i = 0; i < members; ++i) {
    MemberGen& m = g.members[i];
    m.first_event = static_cast<uint32_t>(g.events.size());
    const size_t begin = g.events.size();
    Ev enrol;
    enrol.ms = m.enrol_ms;
    enrol.member = static_cast<uint32_t>(i);
    enrol.checkout = ++checkout;
    enrol.store = m.home_store;
    enrol.terminal = static_cast<uint8_t>(1 + rng.Below(kTerminalsPerStore));
    enrol.kind = kEnrol;
    g.events.push_back(enrol);

    const double expected = weight[i] / total_weight * checkouts;
    const auto n = std::min<int64_t>(
        3000, static_cast<int64_t>(expected) + (rng.Uniform() < expected - std::floor(expected)));
    times.clear();
    const int64_t first_day = m.enrol_ms / kMillisPerDay, last_day = m.active_until_ms / kMillisPerDay;
    for (int64_t c = 0; c < n; ++c) {
      int64_t day = first_day + rng.Below(last_day - first_day + 1);
      const int wd = Weekday(day);
      if (m.weekend && wd != 0 && wd != 6 && rng.Uniform() < 0.65) {
        day += 6 - wd + (rng.Uniform() < 0.5 ? 1 : 0);  // that week's Saturday or Sunday
      } else if (!m.weekend && (wd == 0 || wd == 6) && rng.Uniform() < 0.5) {
        day += wd == 0 ? 1 : -1;  // Monday or Friday instead
      }
      if (day > now_day) day -= 7;
      const int64_t t = std::clamp(TimeOnDay(day, m, rng), m.enrol_ms + kMinute, now_ms - kMinute);
      times.push_back(t);
    }
    std::sort(times.begin(), times.end());
    int64_t balance = 0;
    for (int64_t t : times) {
      Ev e;
      e.ms = t;
      e.member = static_cast<uint32_t>(i);
      e.checkout = ++checkout;
      e.store = rng.Uniform() < 0.85 ? m.home_store : static_cast<uint16_t>(1 + rng.Below(g.stores));
      e.terminal = static_cast<uint8_t>(1 + rng.Below(kTerminalsPerStore));
      const double p = rng.Uniform();
      e.kind = kVisit;
      e.aux = p < 0.1 ? 0 : p < 0.65 ? 1 : p < 0.9 ? 2 : static_cast<uint32_t>(3 + rng.Below(3));
      g.events.push_back(e);
      e.kind = kPurchase;
      e.aux = 0;
      g.events.push_back(e);
      const Basket b = MakeBasket(e.checkout, m);
      balance += b.points + b.offer_points;
      if (balance >= 300 && rng.Uniform() < 0.06) {
        Ev r = e;
        r.kind = kRedemption;
        r.ms = t + 1;
        r.aux = static_cast<uint32_t>(100 * (1 + rng.Below(std::min<int64_t>(5, balance / 100))));
        balance -= r.aux;
        g.events.push_back(r);
      }
      if (rng.Uniform() < 0.01) {
        Ev v = e;
        v.kind = kReversal;
        v.ms = std::min(now_ms - kMinute, t + 10 * kMinute + rng.Below(2 * kMillisPerDay));
        v.terminal = static_cast<uint8_t>(1 + rng.Below(kTerminalsPerStore));
        balance -= b.points + b.offer_points;
        g.events.push_back(v);
      }
    }
    std::stable_sort(g.events.begin() + static_cast<std::ptrdiff_t>(begin), g.events.end(),
                     [](const Ev& a, const Ev& b) { return a.ms < b.ms; });
    m.events = static_cast<uint32_t>(g.events.size() - begin);
  }
  // Sequence numbers: per terminal, in time order, as terminals number them.
  std::vector<uint32_t> order(g.events.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const Ev &x = g.events[a], &y = g.events[b];
    if (x.store != y.store) return x.store < y.store;
    if (x.terminal != y.terminal) return x.terminal < y.terminal;
    return x.ms != y.ms ? x.ms < y.ms : a < b;
  });
  uint32_t seq = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const Ev& e = g.events[order[i]];
    if (i == 0 || e.store != g.events[order[i - 1]].store ||
        e.terminal != g.events[order[i - 1]].terminal) {
      seq = 0;
    }
    g.events[order[i]].seq = ++seq;
  }
  return g;
}

// The ledger ApplyToMember would have built from the member's events.
std::string BuildLedger(const Generated& g, size_t member, const v1::Programme& programme) {
  const MemberGen& m = g.members[member];
  const std::string& member_id = g.member_ids[member];
  std::vector<v1::Event> events;
  events.reserve(m.events);
  for (uint32_t i = 0; i < m.events; ++i) {
    events.push_back(BuildEvent(g.events[m.first_event + i], m, member, member_id));
  }
  const core::MemberState state = core::FoldMember(programme, nullptr, events, g.now_ms);
  v1::MemberLedger ledger;
  ledger.set_enrolled_at_ms(m.enrol_ms);
  std::map<int64_t, v1::DailyActivity> days;
  const int64_t first_day =
      g.now_ms / kMillisPerDay - static_cast<int64_t>(core::QualifyingWindowDays(programme)) + 1;
  int64_t visits = 0, spend = 0;
  for (const v1::Event& e : events) {
    const int64_t day = e.occurred_at_ms() / kMillisPerDay;
    if (day < first_day) continue;
    v1::DailyActivity& d = days[day];
    d.set_day(day);
    if (e.has_visit()) {
      d.set_visits(d.visits() + 1);
      ++visits;
    }
    if (e.has_purchase()) {
      d.set_spend(d.spend() + e.purchase().qualifying_spend());
      spend += e.purchase().qualifying_spend();
    }
    if (e.has_reversal()) {
      d.set_spend(d.spend() - e.reversal().qualifying_spend_reversed());
      spend -= e.reversal().qualifying_spend_reversed();
    }
  }
  for (auto& [_, d] : days) *ledger.add_activity() = d;
  spend = std::max<int64_t>(0, spend);
  const core::TierDecision tier =
      core::DecideTier(programme, programme.tiers(0).name(), 0, visits, spend, g.now_ms);
  v1::MemberSnapshot* snap = ledger.mutable_snapshot();
  snap->set_member_id(member_id);
  snap->set_card_hash(CardHashOf(member));
  snap->set_display_name("Member " + std::to_string(member));
  snap->set_language("en");
  snap->set_tier(tier.tier);
  snap->set_tier_kept_until_ms(tier.kept_until_ms);
  snap->set_points_balance(state.points_balance);
  for (const auto& lot : state.lots) *snap->add_lots() = lot;
  snap->set_qualifying_visits(visits);
  snap->set_qualifying_spend(spend);
  for (const auto& [offer, uses] : state.offer_uses) (*snap->mutable_offer_uses())[offer] = uses;
  snap->set_as_of_ms(g.now_ms);
  snap->set_version(member + 1);
  for (const v1::Event& e : events) {
    const std::string key =
        e.id().store_id() + "/" + e.id().terminal_id() + "/" + std::to_string(e.id().epoch());
    auto& seq = (*snap->mutable_included_seq())[key];
    seq = std::max<uint64_t>(seq, e.id().seq());
  }
  return ledger.SerializeAsString();
}

// Lexicographic order of decimal strings, as one integer: the digits packed
// from the most significant byte, shorter strings first on a common prefix.
uint64_t PackedDecimal(uint32_t n) {
  char buf[12];
  const int len = std::snprintf(buf, sizeof buf, "%u", n);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | (i < len ? static_cast<uint8_t>(buf[i]) : 0);
  return v;
}

Status Run(Database& db, std::string_view sql) { return db.Exec(sql); }

template <typename F>
Status InTransaction(Database& db, F&& body) {
  if (auto s = db.Exec("BEGIN"); !s.ok()) return s;
  if (auto s = body(); !s.ok()) {
    (void)db.Exec("ROLLBACK");
    return s;
  }
  return db.Exec("COMMIT");
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

core::Result<LedgerSummary> GenerateLedger(const std::string& path, const LedgerShape& shape) {
  const auto started = std::chrono::steady_clock::now();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  {
    auto store = storage::OpenSqliteServerStore(path);  // the real schema
    if (!store.ok()) return store.error();
  }
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  std::cerr << "generating " << shape.members << " members, about " << shape.events
            << " events into " << path << "\n";
  Generated g = Draw(shape, now_ms);
  std::cerr << "  drew " << g.events.size() << " events in " << Seconds(started) << " s\n";

  Database::Options options;
  options.durability = Database::Durability::kNormal;
  options.cache_size_kib = 1 << 20;
  auto opened = Database::Open(path, options);
  if (!opened.ok()) return opened.error();
  Database& db = **opened;
  // A bulk load: no journal, no fsync; the indexes are rebuilt at the end
  // (sorting once is much faster than 20 million random index inserts).
  if (auto s = Run(db, "PRAGMA journal_mode=DELETE; PRAGMA journal_mode=OFF; "
                       "PRAGMA synchronous=OFF; PRAGMA temp_store=MEMORY; PRAGMA threads=2;");
      !s.ok()) {
    return s.error();
  }
  std::vector<std::string> index_sql;
  {
    auto stmt = db.Prepare(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND "
        "sql IS NOT NULL");
    if (!stmt.ok()) return stmt.error();
    std::vector<std::string> names;
    for (;;) {
      auto row = (*stmt)->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      names.push_back((*stmt)->ColumnText(0));
      index_sql.push_back((*stmt)->ColumnText(1));
    }
    for (const auto& name : names) {
      if (auto s = db.Exec("DROP INDEX " + name); !s.ok()) return s.error();
    }
  }

  // Ledgers on a second thread while this one inserts the events.
  const v1::Programme programme = core::DefaultProgramme();
  std::vector<std::string> ledgers(g.members.size());
  std::thread ledger_thread([&] {
    for (size_t i = 0; i < g.members.size(); ++i) ledgers[i] = BuildLedger(g, i, programme);
  });

  // Insert in primary key order ("store/terminal/1/seq" as text), so the
  // table's B-tree is appended to rather than split at random.
  std::vector<uint64_t> packed(g.events.size());
  for (size_t i = 0; i < packed.size(); ++i) packed[i] = PackedDecimal(g.events[i].seq);
  std::vector<uint32_t> order(g.events.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const Ev &x = g.events[a], &y = g.events[b];
    if (x.store != y.store) return x.store < y.store;
    if (x.terminal != y.terminal) return x.terminal < y.terminal;
    return packed[a] < packed[b];
  });
  Status inserted = InTransaction(db, [&]() -> Status {
    auto stmt = db.Prepare(
        "INSERT INTO events(event_key, uuid, member_id, occurred_ms, body, kind, amount, party, "
        "cats) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!stmt.ok()) return stmt.error();
    std::string body;
    for (uint32_t i : order) {
      const Ev& e = g.events[i];
      const v1::Event event = BuildEvent(e, g.members[e.member], e.member, g.member_ids[e.member]);
      const core::EventFacts facts = core::FactsOf(event);
      const std::string key = event.id().store_id() + "/" + event.id().terminal_id() + "/1/" +
                              std::to_string(e.seq);
      event.SerializeToString(&body);
      (*stmt)->Reset();  // Run leaves a statement done, not rewound
      (*stmt)
          ->Bind(1, key)
          .Bind(2, event.id().uuid())
          .Bind(3, event.member_id())
          .Bind(4, event.occurred_at_ms())
          .BindBlob(5, body)
          .Bind(6, static_cast<int64_t>(facts.kind))
          .Bind(7, facts.amount)
          .Bind(8, facts.party)
          .Bind(9, facts.categories);
      if (auto s = (*stmt)->Run(); !s.ok()) return s;
    }
    return {};
  });
  ledger_thread.join();
  if (!inserted.ok()) return inserted.error();
  std::cerr << "  inserted events at " << Seconds(started) << " s\n";
  for (const auto& sql : index_sql) {
    if (auto s = db.Exec(sql); !s.ok()) return s.error();
  }
  std::cerr << "  indexed events at " << Seconds(started) << " s\n";

  Status rest = InTransaction(db, [&]() -> Status {
    auto member = db.Prepare("INSERT INTO members(member_id, card_hash, ledger) VALUES(?, ?, ?)");
    auto change = db.Prepare("INSERT INTO changes(kind, key, version) VALUES(?, ?, ?)");
    auto profile = db.Prepare(
        "INSERT INTO member_profiles(member_id, consent, age_band, sex, region) "
        "VALUES(?, 1, ?, ?, ?)");
    if (!member.ok()) return member.error();
    if (!change.ok()) return change.error();
    if (!profile.ok()) return profile.error();
    Rng rng(7);
    for (size_t i = 0; i < g.members.size(); ++i) {
      const std::string& id = g.member_ids[i];
      (*member)->Reset();
      (*member)->Bind(1, id).Bind(2, CardHashOf(i)).BindBlob(3, ledgers[i]);
      if (auto s = (*member)->Run(); !s.ok()) return s;
      (*change)->Reset();
      (*change)->Bind(1, std::string_view("member")).Bind(2, id).Bind(3, static_cast<int64_t>(i + 1));
      if (auto s = (*change)->Run(); !s.ok()) return s;
      if (rng.Uniform() < 0.2) {
        (*profile)->Reset();
        (*profile)
            ->Bind(1, id)
            .Bind(2, std::string_view(kAgeBands[rng.Below(kAgeBands.size())]))
            .Bind(3, std::string_view(kSexes[rng.Below(kSexes.size())]))
            .Bind(4, std::string_view(kRegions[rng.Below(kRegions.size())]));
        if (auto s = (*profile)->Run(); !s.ok()) return s;
      }
    }
    // Promotions aimed at segments, tiers or stores, for previews and KPIs.
    auto offer = db.Prepare("INSERT INTO offers(id, body) VALUES(?, ?)");
    if (!offer.ok()) return offer.error();
    for (int k = 1; k <= kOffers; ++k) {
      v1::Offer o;
      o.set_id("promo-" + std::to_string(k));
      o.set_name("Promotion " + std::to_string(k));
      o.set_bonus_points(10);
      if (k % 3 == 0) o.add_segment_ids(k % 2 ? "some-visits" : "rfm-at-risk");
      if (k % 3 == 1) o.add_tiers(k % 2 ? "Silver" : "Gold");
      if (k % 3 == 2) o.add_store_ids(StoreId(k));
      (*offer)->Reset();
      (*offer)->Bind(1, o.id()).BindBlob(2, o.SerializeAsString());
      if (auto s = (*offer)->Run(); !s.ok()) return s;
      (*change)->Reset();
      (*change)->Bind(1, std::string_view("offer")).Bind(2, o.id()).Bind(
          3, static_cast<int64_t>(g.members.size() + static_cast<size_t>(k)));
      if (auto s = (*change)->Run(); !s.ok()) return s;
    }
    // Terminals and stores as ingest leaves them.
    std::map<std::pair<int, int>, uint32_t> last_seq;
    std::map<int, std::pair<int64_t, int64_t>> per_store;  // events, last event
    for (const Ev& e : g.events) {
      auto& seq = last_seq[{e.store, e.terminal}];
      seq = std::max(seq, e.seq);
      auto& s = per_store[e.store];
      ++s.first;
      s.second = std::max(s.second, e.ms);
    }
    auto terminal = db.Prepare(
        "INSERT INTO terminals(store_id, terminal_id, epoch, last_seq) VALUES(?, ?, 1, ?)");
    if (!terminal.ok()) return terminal.error();
    for (const auto& [key, seq] : last_seq) {
      (*terminal)->Reset();
      (*terminal)->Bind(1, StoreId(key.first)).Bind(2, "t" + std::to_string(key.second)).Bind(
          3, int64_t{seq});
      if (auto s = (*terminal)->Run(); !s.ok()) return s;
    }
    auto store = db.Prepare(
        "INSERT INTO stores(store_id, last_seen_ms, events_received, last_event_ms) "
        "VALUES(?, ?, ?, ?)");
    if (!store.ok()) return store.error();
    for (const auto& [id, s] : per_store) {
      (*store)->Reset();
      (*store)->Bind(1, StoreId(id)).Bind(2, g.now_ms).Bind(3, s.first).Bind(4, s.second);
      if (auto st = (*store)->Run(); !st.ok()) return st;
    }
    return {};
  });
  if (!rest.ok()) return rest.error();
  // Tables later migrations add (member_stores: members per store) are
  // filled the way their migration fills them.
  {
    auto stmt = db.Prepare(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'member_stores'");
    if (!stmt.ok()) return stmt.error();
    if (auto row = (*stmt)->Step(); !row.ok()) return row.error();
    const bool has_member_stores = (*stmt)->ColumnInt(0) > 0;
    (*stmt)->Reset();
    if (has_member_stores) {
      if (auto s = db.Exec(
              "INSERT OR IGNORE INTO member_stores(store_id, member_id) SELECT DISTINCT "
              "substr(event_key, 1, instr(event_key, '/') - 1), member_id FROM events");
          !s.ok()) {
        return s.error();
      }
    }
  }
  if (auto s = Run(db, "PRAGMA journal_mode=WAL;"); !s.ok()) return s.error();
  LedgerSummary summary;
  summary.members = static_cast<int64_t>(g.members.size());
  summary.events = static_cast<int64_t>(g.events.size());
  summary.generated_at_ms = now_ms;
  summary.seconds = Seconds(started);
  return summary;
}

// ------------------------------------------------------------ uploads --

core::Result<UploadMaker> UploadMaker::Open(const std::string& path) {
  Database::Options options;
  options.read_only = true;
  options.create = false;
  auto db = Database::Open(path, options);
  if (!db.ok()) return db.error();
  auto stmt = (*db)->Prepare("SELECT member_id FROM members");
  if (!stmt.ok()) return stmt.error();
  UploadMaker maker;
  for (;;) {
    auto row = (*stmt)->Step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    maker.member_ids_.push_back((*stmt)->ColumnText(0));
  }
  if (maker.member_ids_.empty()) return MakeError(core::code::kNotFound, "no members in " + path);
  return maker;
}

std::vector<v1::Event> UploadMaker::Batch(const std::string& store_id,
                                          const std::string& terminal_id, int events,
                                          int64_t now_ms) {
  Rng rng(rng_state_);
  rng_state_ = rng.Next();
  std::vector<v1::Event> out;
  out.reserve(static_cast<size_t>(events));
  auto base = [&](const std::string& member, int64_t at) {
    v1::Event e;
    e.mutable_id()->set_store_id(store_id);
    e.mutable_id()->set_terminal_id(terminal_id);
    e.mutable_id()->set_epoch(1);
    e.mutable_id()->set_seq(++seq_);
    e.mutable_id()->set_uuid(terminal_id + "-" + std::to_string(seq_));
    e.set_occurred_at_ms(at);
    e.set_member_id(member);
    return e;
  };
  while (static_cast<int>(out.size()) < events) {
    const std::string& member = member_ids_[static_cast<size_t>(rng.Below(
        static_cast<int64_t>(member_ids_.size())))];
    const int64_t at = now_ms - rng.Below(15 * kMinute);
    const std::string txn = terminal_id + "-" + std::to_string(seq_ + 1);
    v1::Event visit = base(member, at);
    visit.mutable_visit()->set_pos_txn_id(txn);
    visit.mutable_visit()->set_party_size(static_cast<uint32_t>(1 + rng.Below(3)));
    out.push_back(std::move(visit));
    if (static_cast<int>(out.size()) == events) break;
    v1::Event purchase = base(member, at);
    auto* p = purchase.mutable_purchase();
    p->set_pos_txn_id(txn);
    int64_t total = 0;
    const int64_t lines = 1 + rng.Below(4);
    for (int64_t i = 0; i < lines; ++i) {
      const int64_t price = 100 + rng.Below(2000);
      auto* line = p->add_lines();
      line->mutable_line()->set_sku("SKU-" + std::to_string(rng.Below(500)));
      line->mutable_line()->set_category(kCategories[Categories().Pick(rng)]);
      line->mutable_line()->set_quantity(1);
      line->mutable_line()->set_unit_price(price);
      line->set_gross(price);
      line->set_net(price);
      line->set_points(price / 100);
      total += price;
    }
    p->set_subtotal(total);
    p->set_total(total);
    p->set_points_earned(total / 100);
    p->set_qualifying_spend(total);
    out.push_back(std::move(purchase));
  }
  return out;
}

}  // namespace loyalty::bench

#include "bench/bench_data.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "core/card.h"
#include "core/programme.h"
#include "storage/agent_store.h"

namespace loyalty::bench {

std::string CardNumber(int64_t i) {
  std::string payload = std::to_string(700000000000000 + i);  // 15 digits
  return payload + core::LuhnCheckDigit(payload);
}

core::Result<std::string> EnsureCardHashKey(const std::string& data_dir) {
  std::filesystem::create_directories(data_dir);
  const std::string path = (std::filesystem::path(data_dir) / "card-hash.key").string();
  if (!std::filesystem::exists(path)) {
    std::string key(32, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), 32);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ::write(fd, key.data(), key.size()) != static_cast<ssize_t>(key.size())) {
      return core::MakeError(core::code::kUnavailable, "cannot write " + path);
    }
    ::close(fd);
  }
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

namespace {

std::vector<v1::Offer> MakeOffers(int count, int segments) {
  static const char* kTiers[] = {"Member", "Silver", "Gold", "Platinum"};
  static const char* kCategories[] = {"Coffee", "Bakery", "Dairy", "Produce", "Snacks"};
  std::vector<v1::Offer> out;
  for (int i = 0; i < count; ++i) {
    v1::Offer o;
    o.set_id("bench-" + std::to_string(i));
    o.set_name("Offer " + std::to_string(i));
    o.set_priority(i % 10);
    o.set_stackable(true);
    const int kind = i % 50;
    if (kind == 0) {
      // everybody
    } else if (kind <= 4) {
      o.add_tiers(kTiers[i % 4]);
    } else {
      o.add_segment_ids("seg-" + std::to_string(i % segments));
    }
    // Mostly product-specific offers, as a real catalogue of 1,000 has.
    const char* category = kCategories[i % 5];
    const std::string sku = "SKU-" + std::to_string((i * 7919) % 5000);
    switch (i % 8) {
      case 0:
        o.set_points_multiplier_pct(200);
        o.mutable_scope()->set_kind(v1::OfferScope::CATEGORY);
        o.mutable_scope()->set_value(category);
        break;
      case 1:
        o.set_amount_off(100);
        o.set_min_spend(2000 + 100 * (i % 30));
        break;
      case 2:
      case 3:
        o.set_bonus_points(10 + i % 90);
        o.set_required_sku(sku);
        break;
      case 4:
      case 5:
        o.set_percent_off(5 + i % 20);
        o.mutable_scope()->set_kind(v1::OfferScope::SKU);
        o.mutable_scope()->set_value(sku);
        break;
      case 6:
        o.mutable_buy_x_get_y()->set_buy(2);
        o.mutable_buy_x_get_y()->set_get(1);
        o.mutable_scope()->set_kind(v1::OfferScope::SKU);
        o.mutable_scope()->set_value(sku);
        break;
      default:
        o.set_percent_off(5);
        o.mutable_scope()->set_kind(v1::OfferScope::CATEGORY);
        o.mutable_scope()->set_value(category);
        o.set_per_member_limit(3);
        break;
    }
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace

core::Status Seed(const SeedOptions& options) {
  auto key = EnsureCardHashKey(options.data_dir);
  if (!key.ok()) return key.error();
  storage::Database::Options db_options;
  db_options.durability = storage::Database::Durability::kNormal;
  db_options.cache_size_kib = 64 * 1024;
  auto store = storage::AgentStore::Open(
      (std::filesystem::path(options.data_dir) / "agent.db").string(), db_options);
  if (!store.ok()) return store.error();
  storage::AgentStore& s = **store;

  auto txn = storage::Transaction::Begin(s.db());
  if (!txn.ok()) return txn.error();
  if (auto p = s.LoadProgramme(); p.ok() && !p->has_value()) {
    if (auto st = s.SaveProgramme(core::DefaultProgramme()); !st.ok()) return st;
  }
  if (auto st = s.ReplaceOffers(MakeOffers(options.offers, options.segments)); !st.ok()) return st;
  static const char* kTiers[] = {"Member", "Silver", "Gold", "Platinum"};
  std::mt19937_64 rng(42);
  auto stmt = s.db().Prepare(
      "INSERT OR IGNORE INTO members(card_hash, member_id, display_name, snapshot) "
      "VALUES(?, ?, ?, ?)");
  if (!stmt.ok()) return stmt.error();
  for (int64_t i = 0; i < options.members; ++i) {
    v1::MemberSnapshot snap;
    snap.set_member_id("M" + std::to_string(i));
    snap.set_card_hash(core::CardHash(*key, CardNumber(i)));
    snap.set_display_name("Member " + std::to_string(i));
    snap.set_tier(kTiers[rng() % 4]);
    const int64_t points = static_cast<int64_t>(rng() % 20000);
    snap.set_points_balance(points);
    auto* lot = snap.add_lots();
    lot->set_earned_at_ms(1'750'000'000'000);
    lot->set_points(points);
    snap.set_qualifying_visits(static_cast<int64_t>(rng() % 30));
    snap.set_qualifying_spend(static_cast<int64_t>(rng() % 200000));
    snap.add_segment_ids("seg-" + std::to_string(rng() % options.segments));
    snap.add_segment_ids("seg-" + std::to_string(rng() % options.segments));
    snap.set_version(1);
    (*stmt)->Reset();
    if (auto st = (*stmt)
                      ->Bind(1, snap.card_hash())
                      .Bind(2, snap.member_id())
                      .Bind(3, snap.display_name())
                      .BindBlob(4, snap.SerializeAsString())
                      .Run();
        !st.ok()) {
      return st;
    }
  }
  return txn->Commit();
}

}  // namespace loyalty::bench

// Builders of loyalty.v1.Event values for the server tests: each returns a
// valid event of one kind, so a test states only what it is about.
#pragma once

#include <chrono>
#include <string>

#include "loyalty/v1/domain.pb.h"

namespace loyalty::server::testing {

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A 64-hex-character card hash, distinct per `n`.
inline std::string HashOf(int n) {
  std::string s = std::to_string(n);
  return std::string(64 - s.size(), 'a') + s;
}

inline v1::Event BaseEvent(const std::string& store, const std::string& terminal, uint64_t seq,
                           const std::string& member) {
  v1::Event e;
  e.mutable_id()->set_store_id(store);
  e.mutable_id()->set_terminal_id(terminal);
  e.mutable_id()->set_epoch(1);
  e.mutable_id()->set_seq(seq);
  e.mutable_id()->set_uuid("uuid-" + store + "-" + terminal + "-" + std::to_string(seq));
  e.set_occurred_at_ms(NowMs() - 60'000 + static_cast<int64_t>(seq));
  e.set_member_id(member);
  return e;
}

inline v1::Event Enrol(const std::string& store, uint64_t seq, const std::string& member,
                       const std::string& card_hash, const std::string& terminal = "till-1") {
  v1::Event e = BaseEvent(store, terminal, seq, member);
  e.mutable_enrolment()->set_card_hash(card_hash);
  e.mutable_enrolment()->set_display_name("Ana");
  e.mutable_enrolment()->set_language("en");
  return e;
}

inline v1::Event Purchase(const std::string& store, uint64_t seq, const std::string& member,
                          int64_t points, const std::string& terminal = "till-1") {
  v1::Event e = BaseEvent(store, terminal, seq, member);
  auto* p = e.mutable_purchase();
  p->set_pos_txn_id("txn-" + store + "-" + terminal + "-" + std::to_string(seq));
  p->set_subtotal(points * 100);
  p->set_total(points * 100);
  p->set_points_earned(points);
  p->set_qualifying_spend(points * 100);
  auto* line = p->add_lines();
  line->mutable_line()->set_sku("SKU-1");
  line->mutable_line()->set_category("Coffee");
  line->mutable_line()->set_quantity(1);
  line->mutable_line()->set_unit_price(points * 100);
  line->set_gross(points * 100);
  line->set_net(points * 100);
  line->set_points(points);
  return e;
}

inline v1::Event Redeem(const std::string& store, uint64_t seq, const std::string& member,
                        int64_t points, const std::string& terminal = "till-1") {
  v1::Event e = BaseEvent(store, terminal, seq, member);
  auto* r = e.mutable_redemption();
  r->set_redemption_id("red-" + store + "-" + terminal + "-" + std::to_string(seq));
  r->set_points(points);
  r->set_value(points);
  r->set_mode(v1::Redemption::DISCOUNT);
  return e;
}

}  // namespace loyalty::server::testing

// A member's loyalty position as a fold over events (design invariant 1 and
// 5): the last server snapshot plus this terminal's events that the snapshot
// does not include yet, computed with the same rules the server uses.
// Value type; the functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "loyalty/v1/api.pb.h"
#include "loyalty/v1/domain.pb.h"

namespace loyalty::core {

// What a terminal needs to void or return a purchase it recorded.
struct TxnState {
  loyalty::v1::Purchase purchase;
  std::vector<loyalty::v1::Reversal> reversals;  // in order
  int64_t points_redeemed = 0;                   // redeemed with this transaction
};

struct MemberState {
  std::string member_id;
  std::string card_hash;
  std::string display_name;
  std::string language;
  bool provisional = false;  // no server snapshot yet
  std::string tier;
  int64_t points_balance = 0;     // spendable now, after expiry at `now`
  int64_t pending_points = 0;     // net effect of the local events on the balance
  int64_t qualifying_visits = 0;  // within the programme's window at `now`
  int64_t qualifying_spend = 0;
  std::vector<loyalty::v1::PointLot> lots;  // remaining points, oldest first
  std::map<std::string, uint32_t> offer_uses;
  std::vector<std::string> segment_ids;
  int64_t last_visit_ms = 0;
};

// Folds `events` (this member's local events not included in `snapshot`, in
// sequence order) over `snapshot` (nullptr for a member the server has not
// confirmed yet) at instant `now_ms`:
// - purchases add a point lot and qualifying spend, count offer uses;
// - visits count toward tier qualification;
// - redemptions and negative adjustments consume lots oldest first;
// - reversals take back earned points (from the newest lots), give back
//   redeemed points (as a new lot), and release offer uses;
// - lots older than programme.points_expiry_months expire;
// - the tier is the highest one the qualifying visits or spend within the
//   rolling window reach, never lower than the snapshot's tier (the server
//   decides downgrades, after the grace period).
MemberState FoldMember(const loyalty::v1::Programme& programme,
                       const loyalty::v1::MemberSnapshot* snapshot,
                       std::span<const loyalty::v1::Event> events, int64_t now_ms);

// The purchase recorded under `pos_txn_id` in `events`, with the reversals
// of it (in order) and the points redeemed with it (Redemption events with the
// same pos_txn_id); nullopt when no purchase has that id. This is what
// PlanReversal needs to void or return it.
std::optional<TxnState> FindTxn(std::span<const loyalty::v1::Event> events,
                                const std::string& pos_txn_id);

// The member as the local API shows it: tier, balances, progress to the next
// tier (absent at the top), the next points expiry (absent when nothing
// expires).
loyalty::v1::MemberView MakeMemberView(const loyalty::v1::Programme& programme,
                                       const MemberState& state, int64_t now_ms);

}  // namespace loyalty::core

#include "core/member_state.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "core/programme.h"
#include "core/time_util.h"

namespace loyalty::core {
namespace {

using loyalty::v1::Event;
using loyalty::v1::PointLot;
using loyalty::v1::Programme;

// The member's points as lots, oldest first, plus any debt: points taken that
// no lot covered (an offline overdraw or a reversal of points already spent).
// The debt is kept, not dropped, so the balance stays exact (design
// invariant 7); later earnings pay it off first.
class LotBook {
 public:
  void Earn(int64_t at_ms, int64_t points) {
    const int64_t repaid = std::min(points, debt_);
    debt_ -= repaid;
    points -= repaid;
    if (points <= 0) return;
    PointLot lot;
    lot.set_earned_at_ms(at_ms);
    lot.set_points(points);
    const auto pos =
        std::upper_bound(lots_.begin(), lots_.end(), at_ms,
                         [](int64_t t, const PointLot& l) { return t < l.earned_at_ms(); });
    lots_.insert(pos, std::move(lot));
  }

  // Redemptions and negative adjustments use the points closest to expiry.
  void SpendOldest(int64_t points) {
    auto it = lots_.begin();
    while (points > 0 && it != lots_.end()) {
      const int64_t used = std::min(points, it->points());
      it->set_points(it->points() - used);
      points -= used;
      ++it;
    }
    debt_ += points;
    Compact();
  }

  // A reversal takes back the points the purchase added, which are the
  // newest ones.
  void TakeNewest(int64_t points) {
    for (auto it = lots_.rbegin(); points > 0 && it != lots_.rend(); ++it) {
      const int64_t used = std::min(points, it->points());
      it->set_points(it->points() - used);
      points -= used;
    }
    debt_ += points;
    Compact();
  }

  void ExpireAt(const Programme& programme, int64_t at_ms) {
    const int months = static_cast<int>(programme.points_expiry_months());
    if (months == 0) return;
    std::erase_if(
        lots_, [&](const PointLot& lot) { return AddMonths(lot.earned_at_ms(), months) <= at_ms; });
  }

  int64_t Balance() const {
    return std::accumulate(lots_.begin(), lots_.end(), int64_t{0},
                           [](int64_t s, const PointLot& l) { return s + l.points(); }) -
           debt_;
  }

  void AddDebt(int64_t points) { debt_ += points; }
  std::vector<PointLot>& lots() { return lots_; }

 private:
  void Compact() {
    std::erase_if(lots_, [](const PointLot& l) { return l.points() <= 0; });
  }

  std::vector<PointLot> lots_;
  int64_t debt_ = 0;
};

}  // namespace

MemberState FoldMember(const Programme& programme, const loyalty::v1::MemberSnapshot* snapshot,
                       std::span<const Event> events, int64_t now_ms) {
  MemberState state;
  LotBook book;
  if (snapshot != nullptr) {
    state.member_id = snapshot->member_id();
    state.card_hash = snapshot->card_hash();
    state.display_name = snapshot->display_name();
    state.language = snapshot->language();
    state.tier = snapshot->tier();
    state.qualifying_visits = snapshot->qualifying_visits();
    state.qualifying_spend = snapshot->qualifying_spend();
    state.segment_ids.assign(snapshot->segment_ids().begin(), snapshot->segment_ids().end());
    for (const auto& [id, uses] : snapshot->offer_uses()) state.offer_uses[id] = uses;
    int64_t in_lots = 0;
    for (const auto& lot : snapshot->lots()) {
      if (lot.points() <= 0) continue;
      book.Earn(lot.earned_at_ms(), lot.points());
      in_lots += lot.points();
    }
    // The balance is the authority; lots that do not add up to it are
    // reconciled so that the balance is kept exactly.
    const int64_t gap = snapshot->points_balance() - in_lots;
    if (gap > 0) book.Earn(snapshot->as_of_ms(), gap);
    if (gap < 0) book.AddDebt(-gap);
  } else {
    state.provisional = true;
  }

  const int64_t window_ms = int64_t{QualifyingWindowDays(programme)} * kMillisPerDay;
  const auto in_window = [&](int64_t at_ms) { return now_ms - at_ms < window_ms; };
  // Whether each local purchase's spend was counted, so that its reversal
  // takes back only what was added.
  std::map<std::string, bool> local_purchase_counted;

  for (const Event& event : events) {
    const int64_t at = event.occurred_at_ms();
    // Points that expired before this event are gone before it can use them.
    book.ExpireAt(programme, at);
    switch (event.body_case()) {
      case Event::kEnrolment:
        if (snapshot == nullptr) {
          state.member_id = event.member_id();
          state.card_hash = event.enrolment().card_hash();
          state.display_name = event.enrolment().display_name();
          state.language = event.enrolment().language();
        }
        break;
      case Event::kVisit:
        if (in_window(at)) ++state.qualifying_visits;
        state.last_visit_ms = std::max(state.last_visit_ms, at);
        break;
      case Event::kPurchase: {
        const auto& purchase = event.purchase();
        if (purchase.points_earned() > 0) book.Earn(at, purchase.points_earned());
        state.pending_points += purchase.points_earned();
        const bool counted = in_window(at);
        if (counted) state.qualifying_spend += purchase.qualifying_spend();
        local_purchase_counted[purchase.pos_txn_id()] = counted;
        for (const auto& offer : purchase.offers()) ++state.offer_uses[offer.offer_id()];
        state.last_visit_ms = std::max(state.last_visit_ms, at);
        break;
      }
      case Event::kReversal: {
        const auto& reversal = event.reversal();
        book.TakeNewest(reversal.points_reversed());
        if (reversal.points_restored() > 0) book.Earn(at, reversal.points_restored());
        state.pending_points += reversal.points_restored() - reversal.points_reversed();
        const auto local = local_purchase_counted.find(reversal.pos_txn_id());
        const bool counted = local != local_purchase_counted.end() ? local->second : in_window(at);
        if (counted) {
          state.qualifying_spend =
              std::max<int64_t>(0, state.qualifying_spend - reversal.qualifying_spend_reversed());
        }
        for (const auto& id : reversal.offers_released()) {
          auto it = state.offer_uses.find(id);
          if (it == state.offer_uses.end()) continue;
          if (it->second <= 1) {
            state.offer_uses.erase(it);
          } else {
            --it->second;
          }
        }
        break;
      }
      case Event::kRedemption:
        book.SpendOldest(event.redemption().points());
        state.pending_points -= event.redemption().points();
        break;
      case Event::kAdjustment: {
        const int64_t points = event.adjustment().points();
        if (points >= 0) {
          book.Earn(at, points);
        } else {
          book.SpendOldest(-points);
        }
        state.pending_points += points;
        break;
      }
      case Event::BODY_NOT_SET:
        break;
    }
  }
  book.ExpireAt(programme, now_ms);
  state.points_balance = book.Balance();
  state.lots = std::move(book.lots());

  if (programme.tiers_size() > 0) {
    const int qualified =
        QualifiedTierIndex(programme, state.qualifying_visits, state.qualifying_spend);
    const int held = snapshot != nullptr ? TierIndex(programme, snapshot->tier()) : -1;
    // A snapshot tier the programme no longer has is kept unless the member
    // qualifies above the base tier: only the server renames members' tiers.
    if (!(held < 0 && qualified == 0 && !state.tier.empty())) {
      state.tier = programme.tiers(std::max(qualified, held)).name();
    }
  }
  return state;
}

std::optional<TxnState> FindTxn(std::span<const Event> events, const std::string& pos_txn_id) {
  TxnState txn;
  bool found = false;
  for (const Event& event : events) {
    switch (event.body_case()) {
      case Event::kPurchase:
        if (!found && event.purchase().pos_txn_id() == pos_txn_id) {
          txn.purchase = event.purchase();
          found = true;
        }
        break;
      case Event::kReversal:
        if (event.reversal().pos_txn_id() == pos_txn_id) txn.reversals.push_back(event.reversal());
        break;
      case Event::kRedemption:
        if (!pos_txn_id.empty() && event.redemption().pos_txn_id() == pos_txn_id) {
          txn.points_redeemed += event.redemption().points();
        }
        break;
      default:
        break;
    }
  }
  if (!found) return std::nullopt;
  return txn;
}

loyalty::v1::MemberView MakeMemberView(const Programme& programme, const MemberState& state,
                                       int64_t now_ms) {
  loyalty::v1::MemberView view;
  view.set_member_id(state.member_id);
  view.set_display_name(state.display_name);
  view.set_tier(state.tier);
  view.set_points_balance(state.points_balance);
  view.set_pending_points(state.pending_points);
  view.set_qualifying_visits(state.qualifying_visits);
  view.set_qualifying_spend(state.qualifying_spend);
  view.set_provisional(state.provisional);
  view.set_language(state.language.empty() ? programme.default_language() : state.language);
  for (const auto& id : state.segment_ids) view.add_segment_ids(id);

  int current = TierIndex(programme, state.tier);
  if (current < 0) {
    current = QualifiedTierIndex(programme, state.qualifying_visits, state.qualifying_spend);
  }
  if (current + 1 < programme.tiers_size()) {
    const auto& next = programme.tiers(current + 1);
    auto* nt = view.mutable_next_tier();
    nt->set_name(next.name());
    uint32_t progress = 0;
    const auto route = [&](int64_t have, int64_t need) -> int64_t {
      if (need <= 0) return 0;
      const int64_t clamped = std::clamp<int64_t>(have, 0, need);
      progress = std::max(progress, static_cast<uint32_t>(clamped * 100 / need));
      return need - clamped;
    };
    nt->set_visits_needed(route(state.qualifying_visits, next.min_visits()));
    nt->set_spend_needed(route(state.qualifying_spend, next.min_spend()));
    nt->set_progress_pct(progress);
  }

  const int months = static_cast<int>(programme.points_expiry_months());
  if (months > 0) {
    // Lots are oldest first, but the earliest expiry is searched for anyway so
    // that an unordered list from elsewhere cannot mislead.
    // Lots expiring on the same day count together.
    std::string first;  // the earliest expiry date so far
    int64_t points = 0;
    bool any = false;
    for (const auto& lot : state.lots) {
      if (lot.points() <= 0) continue;
      const int64_t expires = AddMonths(lot.earned_at_ms(), months);
      if (expires <= now_ms) continue;
      std::string date = FormatDate(expires);
      if (!any || date < first) {
        first = std::move(date);
        points = 0;
        any = true;
        points += lot.points();
      } else if (date == first) {
        points += lot.points();
      }
    }
    if (any) {
      view.mutable_next_expiry()->set_date(first);
      view.mutable_next_expiry()->set_points(points);
    }
  }
  return view;
}

}  // namespace loyalty::core

#include "core/reversal.h"

#include <algorithm>
#include <vector>

#include "core/int_math.h"

namespace loyalty::core {
namespace {

using loyalty::v1::Purchase;
using loyalty::v1::Reversal;

Error BadRequest(std::string message) {
  return MakeError(code::kInvalidRequest, std::move(message));
}

// What a purchase gives back once `returned[i]` units of each line are
// returned in total. Every figure is a floor of the cumulative share, so it
// is the same however the returns were split.
struct Cumulative {
  int64_t points = 0;
  int64_t refund = 0;
  int64_t qualifying_spend = 0;
};

Cumulative CumulativeFor(const Purchase& purchase, const std::vector<int64_t>& returned,
                         bool complete) {
  Cumulative c;
  int64_t net_returned = 0;
  int64_t net_total = 0;
  for (int i = 0; i < purchase.lines_size(); ++i) {
    const auto& line = purchase.lines(i);
    const int64_t quantity = line.line().quantity();
    if (quantity <= 0) continue;
    c.points += MulDivFloor(line.points(), returned[i], quantity);
    // Points redeemed against the line come back as points, not money.
    c.refund += MulDivFloor(line.net() - line.redeemed_value(), returned[i], quantity);
    net_returned += MulDivFloor(line.net(), returned[i], quantity);
    net_total += line.net();
  }
  int64_t bonus = 0;
  for (const auto& offer : purchase.offers()) bonus += offer.points();
  // Basket-level figures follow the share of the net amount returned; with
  // nothing paid there is no share to follow, so they go back at the end.
  if (net_total > 0) {
    c.points += MulDivFloor(bonus, net_returned, net_total);
    c.qualifying_spend = MulDivFloor(purchase.qualifying_spend(), net_returned, net_total);
  } else if (complete) {
    c.points += bonus;
    c.qualifying_spend = purchase.qualifying_spend();
  }
  return c;
}

}  // namespace

Result<Reversal> PlanReversal(const TxnState& txn, std::span<const loyalty::v1::LineReturn> lines,
                              const std::string& reversal_id) {
  const Purchase& purchase = txn.purchase;
  const int n = purchase.lines_size();
  std::vector<int64_t> returned(n, 0);
  Cumulative before;
  int64_t restored_before = 0;
  for (const Reversal& prior : txn.reversals) {
    // A reversal without lines (recorded elsewhere) returned everything left.
    if (prior.complete() || prior.lines().empty()) {
      return MakeError(code::kAlreadyReversed, "Transaction " + purchase.pos_txn_id() +
                                                   " has already been fully reversed.");
    }
    for (const auto& r : prior.lines()) {
      if (r.line_index() < static_cast<uint32_t>(n)) returned[r.line_index()] += r.quantity();
    }
    before.points += prior.points_reversed();
    before.refund += prior.refund();
    before.qualifying_spend += prior.qualifying_spend_reversed();
    restored_before += prior.points_restored();
  }

  std::vector<int64_t> left(n);
  bool anything_left = false;
  for (int i = 0; i < n; ++i) {
    left[i] = std::max<int64_t>(0, purchase.lines(i).line().quantity() - returned[i]);
    anything_left = anything_left || left[i] > 0;
  }
  if (!anything_left) {
    return MakeError(code::kAlreadyReversed, "Everything in transaction " + purchase.pos_txn_id() +
                                                 " has already been returned.");
  }

  std::vector<int64_t> now(n, 0);
  if (lines.empty()) {
    now = left;
  } else {
    for (const auto& r : lines) {
      const std::string name = "lines[" + std::to_string(r.line_index()) + "]";
      if (r.line_index() >= static_cast<uint32_t>(n)) {
        return BadRequest("Return of " + name + ": the purchase has only " + std::to_string(n) +
                          " lines.");
      }
      if (r.quantity() <= 0) {
        return BadRequest("Return of " + name + ": quantity must be at least 1.");
      }
      if (now[r.line_index()] > 0) {
        return BadRequest("Return of " + name + ": the line is named twice.");
      }
      if (r.quantity() > left[r.line_index()]) {
        return BadRequest("Return of " + name + ": quantity " + std::to_string(r.quantity()) +
                          " is more than the " + std::to_string(left[r.line_index()]) +
                          " not yet returned.");
      }
      now[r.line_index()] = r.quantity();
    }
  }

  Reversal reversal;
  reversal.set_pos_txn_id(purchase.pos_txn_id());
  reversal.set_reversal_id(reversal_id);
  bool complete = true;
  for (int i = 0; i < n; ++i) {
    // The lines are always written out, so that the record says what was
    // returned even for a void.
    if (now[i] > 0) {
      auto* r = reversal.add_lines();
      r->set_line_index(static_cast<uint32_t>(i));
      r->set_quantity(now[i]);
    }
    returned[i] += now[i];
    complete = complete && returned[i] >= purchase.lines(i).line().quantity();
  }
  const Cumulative after = CumulativeFor(purchase, returned, complete);
  // Never negative: a reversal never earns, even if earlier records differ.
  reversal.set_points_reversed(std::max<int64_t>(0, after.points - before.points));
  reversal.set_refund(std::max<int64_t>(0, after.refund - before.refund));
  reversal.set_qualifying_spend_reversed(
      std::max<int64_t>(0, after.qualifying_spend - before.qualifying_spend));
  reversal.set_complete(complete);
  if (complete) {
    reversal.set_points_restored(std::max<int64_t>(0, txn.points_redeemed - restored_before));
    for (const auto& offer : purchase.offers()) reversal.add_offers_released(offer.offer_id());
  }
  return reversal;
}

}  // namespace loyalty::core

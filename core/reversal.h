// Voids and returns: the exact reversal of a recorded purchase. Pure,
// thread-safe.
//
// A void (no lines) reverses everything not yet returned. A return reverses
// the given quantities of the given lines. Amounts are reversed
// cumulatively: after returns of q1, q2, ... of a line with quantity Q, the
// points taken back total floor(points * (q1+q2+...) / Q) (likewise the
// refund and qualifying spend), so returning everything piecewise reverses
// exactly what a single void would. Basket-level bonus points from offers are
// taken back in proportion to the net amount returned, the same way.
// Redeemed points are given back, and offer uses released, only when the
// transaction becomes completely reversed. A reversal never earns points.
#pragma once

#include <span>
#include <string>

#include "core/member_state.h"
#include "core/result.h"
#include "loyalty/v1/domain.pb.h"

namespace loyalty::core {

// Errors: "already_reversed" when nothing is left to reverse,
// "invalid_request" for a line index out of range, a non-positive quantity,
// a quantity above what is left of the line, or a line named twice.
Result<loyalty::v1::Reversal> PlanReversal(const TxnState& txn,
                                           std::span<const loyalty::v1::LineReturn> lines,
                                           const std::string& reversal_id);

}  // namespace loyalty::core

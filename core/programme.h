// The loyalty programme as data: the built-in default and its validation.
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"
#include "loyalty/v1/domain.pb.h"

namespace loyalty::core {

// The programme an agent runs with when it is given none: EUR, 1 point per
// euro, tiers Member / Silver / Gold / Platinum qualified over 365 days by
// visits or spend, 30 days' downgrade grace, points expiring after 24 months,
// 100 points worth 1.00, an offline reserve of 0 points.
loyalty::v1::Programme DefaultProgramme();

// Checks every rule a programme must satisfy (at least one tier, tiers[0]
// needs nothing, thresholds ascending, unique names, minor units a power of
// ten up to 10000, positive rates, multipliers within 1..10000 %, sane windows). Error code
// "invalid_programme", naming the offending field.
Status ValidateProgramme(const loyalty::v1::Programme& programme);

// Index of the tier named `name`, or -1.
int TierIndex(const loyalty::v1::Programme& programme, std::string_view name);

// The rolling qualification window in days; 0 in the programme means the
// default of 365.
uint32_t QualifyingWindowDays(const loyalty::v1::Programme& programme);

// Index of the highest tier that `visits` OR `spend` (within the window)
// reach. A tier threshold of 0 on one route means that route cannot qualify
// for it (the base tier, 0 on both, always qualifies). 0 for a programme
// without tiers.
int QualifiedTierIndex(const loyalty::v1::Programme& programme, int64_t visits, int64_t spend);

// The server's tier decision at `now_ms` for a member holding
// `current_tier` (grace ending at `kept_until_ms`, 0 if none). Upgrades are
// immediate. A member who stops qualifying keeps the tier for
// downgrade_grace_days (the grace starts now if it had not started), then
// drops straight to the tier they qualify for. The terminal never calls this:
// it never downgrades (see FoldMember).
struct TierDecision {
  std::string tier;
  int64_t kept_until_ms = 0;  // grace end, 0 when the member qualifies for `tier`
};
TierDecision DecideTier(const loyalty::v1::Programme& programme, std::string_view current_tier,
                        int64_t kept_until_ms, int64_t visits, int64_t spend, int64_t now_ms);

// `minor` minor units in the programme's currency for people: "EUR 12.50",
// "-EUR 1.25", "JPY 300" when minor_units is 1.
std::string FormatMoney(const loyalty::v1::Programme& programme, int64_t minor);

}  // namespace loyalty::core

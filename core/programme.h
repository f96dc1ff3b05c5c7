// The loyalty programme as data: the built-in default and its validation.
// Pure functions, thread-safe.
#pragma once

#include "core/result.h"
#include "loyalty/v1/domain.pb.h"

namespace loyalty::core {

// The programme an agent runs with when it is given none: EUR, 1 point per
// euro, tiers Member / Silver / Gold / Platinum qualified over 365 days by
// visits or spend, 30 days' downgrade grace, points expiring after 24 months,
// 100 points worth 1.00, an offline reserve of 0 points.
loyalty::v1::Programme DefaultProgramme();

// Checks every rule a programme must satisfy (at least one tier, tiers[0]
// needs nothing, thresholds ascending, unique names, positive minor units
// and rates, multipliers within 1..10000 %, sane windows). Error code
// "invalid_programme", naming the offending field.
Status ValidateProgramme(const loyalty::v1::Programme& programme);

// Index of the tier named `name`, or -1.
int TierIndex(const loyalty::v1::Programme& programme, std::string_view name);

}  // namespace loyalty::core

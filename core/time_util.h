// Calendar arithmetic on UTC millisecond instants: what expiry dates, rolling
// windows and offer time windows need. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace loyalty::core {

inline constexpr int64_t kMillisPerDay = 86'400'000;

// `ms` plus `months` calendar months (UTC); the day is clamped to the end of
// a shorter month (31 Jan + 1 month = 28/29 Feb).
int64_t AddMonths(int64_t ms, int months);

// "YYYY-MM-DD" of the UTC day containing `ms`.
std::string FormatDate(int64_t ms);

// "YYYY-MM-DD HH:MM:SSZ" of `ms` (UTC), for people reading status output.
std::string FormatDateTime(int64_t ms);

// Day of week (0 = Sunday .. 6 = Saturday) and hour (0..23) of `ms` shifted
// by `utc_offset_minutes` (the store's local time).
int LocalWeekday(int64_t ms, int utc_offset_minutes);
int LocalHour(int64_t ms, int utc_offset_minutes);

}  // namespace loyalty::core

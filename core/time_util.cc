#include "core/time_util.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace loyalty::core {
namespace {

namespace chr = std::chrono;
using Millis = chr::sys_time<chr::milliseconds>;

Millis ToTime(int64_t ms) { return Millis(chr::milliseconds(ms)); }

chr::sys_days DayOf(int64_t ms) { return chr::floor<chr::days>(ToTime(ms)); }

}  // namespace

int64_t AddMonths(int64_t ms, int months) {
  const chr::sys_days day = DayOf(ms);
  const chr::milliseconds time_of_day = ToTime(ms) - Millis(day);
  const chr::year_month_day ymd(day);
  const chr::year_month target = chr::year_month(ymd.year(), ymd.month()) + chr::months(months);
  const chr::day last =
      chr::year_month_day_last(target.year(), chr::month_day_last(target.month())).day();
  const chr::sys_days result = chr::sys_days(target / std::min(ymd.day(), last));
  return (Millis(result) + time_of_day).time_since_epoch().count();
}

std::string FormatDate(int64_t ms) {
  const chr::year_month_day ymd(DayOf(ms));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

std::string FormatDateTime(int64_t ms) {
  const chr::sys_days day = DayOf(ms);
  const chr::hh_mm_ss<chr::seconds> t(
      chr::floor<chr::seconds>(ToTime(ms) - Millis(day)));
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s %02d:%02d:%02dZ", FormatDate(ms).c_str(),
                static_cast<int>(t.hours().count()), static_cast<int>(t.minutes().count()),
                static_cast<int>(t.seconds().count()));
  return buf;
}

int LocalWeekday(int64_t ms, int utc_offset_minutes) {
  const int64_t local = ms + int64_t{utc_offset_minutes} * 60'000;
  return static_cast<int>(chr::weekday(DayOf(local)).c_encoding());
}

int LocalHour(int64_t ms, int utc_offset_minutes) {
  const int64_t local = ms + int64_t{utc_offset_minutes} * 60'000;
  const chr::milliseconds since_midnight = ToTime(local) - Millis(DayOf(local));
  return static_cast<int>(chr::duration_cast<chr::hours>(since_midnight).count());
}

}  // namespace loyalty::core

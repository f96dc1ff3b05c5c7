#include "core/time_util.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace loyalty::core {
namespace {

using testing::Ms;

TEST(AddMonths, KeepsTheDayAndTimeOfDay) {
  EXPECT_EQ(AddMonths(Ms(2024, 1, 15, 13, 45), 1), Ms(2024, 2, 15, 13, 45));
  EXPECT_EQ(AddMonths(Ms(2024, 1, 15, 13, 45) + 123, 1), Ms(2024, 2, 15, 13, 45) + 123);
}

TEST(AddMonths, ClampsThe31stToTheEndOfFebruary) {
  EXPECT_EQ(AddMonths(Ms(2024, 1, 31), 1), Ms(2024, 2, 29));  // leap year
  EXPECT_EQ(AddMonths(Ms(2023, 1, 31), 1), Ms(2023, 2, 28));
  EXPECT_EQ(AddMonths(Ms(2024, 3, 31), 1), Ms(2024, 4, 30));
}

TEST(AddMonths, LeapDayPlusAYearIsTheLastOfFebruary) {
  EXPECT_EQ(AddMonths(Ms(2024, 2, 29), 12), Ms(2025, 2, 28));
  EXPECT_EQ(AddMonths(Ms(2024, 2, 29), 48), Ms(2028, 2, 29));
  EXPECT_EQ(AddMonths(Ms(2000, 2, 29), 1200), Ms(2100, 2, 28));  // 2100 is not leap
}

TEST(AddMonths, CrossesYearEndsBothWays) {
  EXPECT_EQ(AddMonths(Ms(2023, 12, 31), 2), Ms(2024, 2, 29));
  EXPECT_EQ(AddMonths(Ms(2024, 3, 31), -1), Ms(2024, 2, 29));
  EXPECT_EQ(AddMonths(Ms(2024, 1, 10), -13), Ms(2022, 12, 10));
  EXPECT_EQ(AddMonths(Ms(2024, 1, 10), 24), Ms(2026, 1, 10));
  EXPECT_EQ(AddMonths(Ms(2024, 1, 10), 0), Ms(2024, 1, 10));
}

TEST(AddMonths, WorksBeforeTheEpoch) {
  EXPECT_EQ(AddMonths(Ms(1969, 12, 31, 23), 1), Ms(1970, 1, 31, 23));
  EXPECT_EQ(AddMonths(-1, 1), Ms(1970, 2, 1) - 1);  // 1969-12-31 23:59:59.999
}

TEST(FormatDate, IsTheUtcDay) {
  EXPECT_EQ(FormatDate(0), "1970-01-01");
  EXPECT_EQ(FormatDate(Ms(2024, 2, 29, 23, 59)), "2024-02-29");
  EXPECT_EQ(FormatDate(Ms(2024, 3, 1) - 1), "2024-02-29");
  EXPECT_EQ(FormatDate(-1), "1969-12-31");
}

TEST(FormatDateTime, IsTheUtcInstantToTheSecond) {
  EXPECT_EQ(FormatDateTime(0), "1970-01-01 00:00:00Z");
  EXPECT_EQ(FormatDateTime(Ms(2024, 2, 29, 23, 59) + 59'999), "2024-02-29 23:59:59Z");
  EXPECT_EQ(FormatDateTime(-1), "1969-12-31 23:59:59Z");
}

TEST(LocalTime, WeekdayAndHourFollowTheStoreOffset) {
  const int64_t monday_2330_utc = Ms(2024, 5, 13, 23, 30);  // a Monday
  EXPECT_EQ(LocalWeekday(monday_2330_utc, 0), 1);
  EXPECT_EQ(LocalHour(monday_2330_utc, 0), 23);
  EXPECT_EQ(LocalWeekday(monday_2330_utc, 60), 2);  // already Tuesday in UTC+1
  EXPECT_EQ(LocalHour(monday_2330_utc, 60), 0);
  EXPECT_EQ(LocalWeekday(Ms(2024, 5, 13, 1), -120), 0);  // still Sunday in UTC-2
  EXPECT_EQ(LocalHour(Ms(2024, 5, 13, 1), -120), 23);
  EXPECT_EQ(LocalWeekday(Ms(2024, 5, 12), 0), 0);  // Sunday
  EXPECT_EQ(LocalWeekday(Ms(2024, 5, 18), 0), 6);  // Saturday
}

}  // namespace
}  // namespace loyalty::core

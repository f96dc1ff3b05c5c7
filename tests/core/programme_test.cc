#include "core/programme.h"

#include <gtest/gtest.h>

#include <functional>

#include "test_util.h"

namespace loyalty::core {
namespace {

using loyalty::v1::Programme;

void ExpectInvalid(const std::function<void(Programme&)>& change, const std::string& field) {
  Programme p = DefaultProgramme();
  change(p);
  const Status status = ValidateProgramme(p);
  ASSERT_FALSE(status.ok()) << "accepted a programme with a bad " << field;
  EXPECT_EQ(status.error().code, code::kInvalidProgramme);
  EXPECT_NE(status.error().message.find(field), std::string::npos) << status.error().message;
}

TEST(DefaultProgramme, IsTheDocumentedDemoProgramme) {
  const Programme p = DefaultProgramme();
  EXPECT_EQ(p.name(), "Demo Rewards");
  EXPECT_EQ(p.currency(), "EUR");
  EXPECT_EQ(p.minor_units(), 100u);
  ASSERT_EQ(p.tiers_size(), 4);
  EXPECT_EQ(p.tiers(0).name(), "Member");
  EXPECT_EQ(p.tiers(1).name(), "Silver");
  EXPECT_EQ(p.tiers(1).min_visits(), 5);
  EXPECT_EQ(p.tiers(1).min_spend(), 25'000);
  EXPECT_EQ(p.tiers(2).earn_multiplier_pct(), 150u);
  EXPECT_EQ(p.tiers(3).name(), "Platinum");
  EXPECT_EQ(p.tiers(3).min_spend(), 300'000);
  EXPECT_EQ(p.qualifying_window_days(), 365u);
  EXPECT_EQ(p.downgrade_grace_days(), 30u);
  EXPECT_EQ(p.points_per_unit(), 1);
  EXPECT_EQ(p.points_expiry_months(), 24u);
  EXPECT_EQ(p.redemption_points(), 100);
  EXPECT_EQ(p.redemption_value(), 100);
  EXPECT_EQ(p.default_language(), "en");
  EXPECT_EQ(p.version(), 1u);
  EXPECT_TRUE(ValidateProgramme(p).ok());
}

TEST(ValidateProgramme, RejectsNoTiers) {
  ExpectInvalid([](Programme& p) { p.clear_tiers(); }, "tiers");
}

TEST(ValidateProgramme, RejectsABaseTierThatNeedsSomething) {
  ExpectInvalid([](Programme& p) { p.mutable_tiers(0)->set_min_visits(1); }, "tiers[0]");
}

TEST(ValidateProgramme, RejectsThresholdsThatDoNotAscend) {
  ExpectInvalid([](Programme& p) { p.mutable_tiers(2)->set_min_visits(5); }, "tiers[2].min_visits");
  ExpectInvalid([](Programme& p) { p.mutable_tiers(3)->set_min_spend(50'000); },
                "tiers[3].min_spend");
}

TEST(ValidateProgramme, RejectsAHigherTierThatNeedsNothing) {
  ExpectInvalid(
      [](Programme& p) {
        p.mutable_tiers(1)->set_min_visits(0);
        p.mutable_tiers(1)->set_min_spend(0);
      },
      "tiers[1].min_visits");
}

TEST(ValidateProgramme, AcceptsATierReachableBySpendOnly) {
  Programme p = DefaultProgramme();
  p.mutable_tiers(3)->set_min_visits(0);
  EXPECT_TRUE(ValidateProgramme(p).ok());
}

TEST(ValidateProgramme, RejectsDuplicateOrEmptyTierNames) {
  ExpectInvalid([](Programme& p) { p.mutable_tiers(2)->set_name("Silver"); }, "tiers[2].name");
  ExpectInvalid([](Programme& p) { p.mutable_tiers(1)->set_name(""); }, "tiers[1].name");
}

TEST(ValidateProgramme, RejectsMultipliersOutOfRange) {
  ExpectInvalid([](Programme& p) { p.mutable_tiers(1)->set_earn_multiplier_pct(0); },
                "earn_multiplier_pct");
  ExpectInvalid([](Programme& p) { p.mutable_tiers(1)->set_earn_multiplier_pct(10'001); },
                "earn_multiplier_pct");
  ExpectInvalid(
      [](Programme& p) {
        auto* cm = p.add_category_multipliers();
        cm->set_category("Coffee");
        cm->set_multiplier_pct(0);
      },
      "category_multipliers[0].multiplier_pct");
}

TEST(ValidateProgramme, RejectsDuplicateCategoryMultipliers) {
  ExpectInvalid(
      [](Programme& p) {
        for (int i = 0; i < 2; ++i) {
          auto* cm = p.add_category_multipliers();
          cm->set_category("Coffee");
          cm->set_multiplier_pct(200);
        }
      },
      "category_multipliers[1].category");
}

TEST(ValidateProgramme, RejectsBadCurrencyAndMinorUnits) {
  ExpectInvalid([](Programme& p) { p.set_currency("euro"); }, "currency");
  ExpectInvalid([](Programme& p) { p.set_currency(""); }, "currency");
  ExpectInvalid([](Programme& p) { p.set_minor_units(0); }, "minor_units");
  ExpectInvalid([](Programme& p) { p.set_minor_units(60); }, "minor_units");
}

TEST(ValidateProgramme, RejectsNonPositiveRates) {
  ExpectInvalid([](Programme& p) { p.set_points_per_unit(0); }, "points_per_unit");
  ExpectInvalid([](Programme& p) { p.set_points_per_unit(-1); }, "points_per_unit");
  ExpectInvalid([](Programme& p) { p.set_redemption_points(0); }, "redemption_points");
  ExpectInvalid([](Programme& p) { p.set_redemption_value(-5); }, "redemption_value");
  ExpectInvalid([](Programme& p) { p.set_offline_reserve_points(-1); }, "offline_reserve_points");
}

TEST(ValidateProgramme, RejectsInsaneWindows) {
  ExpectInvalid([](Programme& p) { p.set_qualifying_window_days(100'000); },
                "qualifying_window_days");
  ExpectInvalid([](Programme& p) { p.set_downgrade_grace_days(100'000); }, "downgrade_grace_days");
  ExpectInvalid([](Programme& p) { p.set_points_expiry_months(5000); }, "points_expiry_months");
  ExpectInvalid([](Programme& p) { p.set_name(""); }, "name");
}

TEST(ValidateProgramme, ZeroWindowMeansTheDefault365Days) {
  Programme p = DefaultProgramme();
  p.set_qualifying_window_days(0);
  EXPECT_TRUE(ValidateProgramme(p).ok());
  EXPECT_EQ(QualifyingWindowDays(p), 365u);
}

TEST(TierIndex, FindsByExactName) {
  const Programme p = DefaultProgramme();
  EXPECT_EQ(TierIndex(p, "Member"), 0);
  EXPECT_EQ(TierIndex(p, "Gold"), 2);
  EXPECT_EQ(TierIndex(p, "gold"), -1);
  EXPECT_EQ(TierIndex(p, ""), -1);
}

TEST(QualifiedTier, VisitsOrSpendEitherQualify) {
  const Programme p = DefaultProgramme();
  EXPECT_EQ(QualifiedTierIndex(p, 0, 0), 0);
  EXPECT_EQ(QualifiedTierIndex(p, 4, 24'999), 0);
  EXPECT_EQ(QualifiedTierIndex(p, 5, 0), 1);
  EXPECT_EQ(QualifiedTierIndex(p, 0, 25'000), 1);
  EXPECT_EQ(QualifiedTierIndex(p, 15, 0), 2);
  EXPECT_EQ(QualifiedTierIndex(p, 5, 300'000), 3);
  EXPECT_EQ(QualifiedTierIndex(p, 40, 0), 3);
}

TEST(QualifiedTier, AClosedRouteNeverQualifies) {
  Programme p = DefaultProgramme();
  p.mutable_tiers(3)->set_min_visits(0);
  EXPECT_EQ(QualifiedTierIndex(p, 1000, 0), 2);
}

TEST(DecideTier, UpgradesImmediately) {
  const auto d = DecideTier(DefaultProgramme(), "Member", 0, 15, 0, testing::Ms(2024, 1, 1));
  EXPECT_EQ(d.tier, "Gold");
  EXPECT_EQ(d.kept_until_ms, 0);
}

TEST(DecideTier, KeepsTheTierThroughTheGraceThenDropsToWhatQualifies) {
  const Programme p = DefaultProgramme();
  const int64_t now = testing::Ms(2024, 1, 1);
  const auto start = DecideTier(p, "Gold", 0, 5, 0, now);
  EXPECT_EQ(start.tier, "Gold");
  EXPECT_EQ(start.kept_until_ms, now + 30 * kMillisPerDay);
  const auto during = DecideTier(p, "Gold", start.kept_until_ms, 5, 0, start.kept_until_ms - 1);
  EXPECT_EQ(during.tier, "Gold");
  EXPECT_EQ(during.kept_until_ms, start.kept_until_ms);
  const auto after = DecideTier(p, "Gold", start.kept_until_ms, 5, 0, start.kept_until_ms);
  EXPECT_EQ(after.tier, "Silver");
  EXPECT_EQ(after.kept_until_ms, 0);
}

TEST(DecideTier, QualifyingAgainEndsTheGrace) {
  const auto d = DecideTier(DefaultProgramme(), "Gold", testing::Ms(2024, 1, 20), 15, 0,
                            testing::Ms(2024, 1, 10));
  EXPECT_EQ(d.tier, "Gold");
  EXPECT_EQ(d.kept_until_ms, 0);
}

TEST(DecideTier, NoGraceMeansImmediateDowngrade) {
  Programme p = DefaultProgramme();
  p.set_downgrade_grace_days(0);
  EXPECT_EQ(DecideTier(p, "Gold", 0, 0, 0, testing::Ms(2024, 1, 1)).tier, "Member");
}

TEST(FormatMoney, UsesTheCurrencyAndMinorUnits) {
  Programme p = DefaultProgramme();
  EXPECT_EQ(FormatMoney(p, 1250), "EUR 12.50");
  EXPECT_EQ(FormatMoney(p, 5), "EUR 0.05");
  EXPECT_EQ(FormatMoney(p, -125), "-EUR 1.25");
  EXPECT_EQ(FormatMoney(p, 0), "EUR 0.00");
  p.set_currency("JPY");
  p.set_minor_units(1);
  EXPECT_EQ(FormatMoney(p, 300), "JPY 300");
  p.set_currency("KWD");
  p.set_minor_units(1000);
  EXPECT_EQ(FormatMoney(p, 1005), "KWD 1.005");
}

}  // namespace
}  // namespace loyalty::core

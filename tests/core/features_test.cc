// Member features and segment expressions (core/features.h,
// core/segment_expr.h) on hand-computed fixtures.
#include <gtest/gtest.h>

#include "core/features.h"
#include "core/segment_expr.h"
#include "core/time_util.h"

namespace loyalty::core {
namespace {

namespace v1 = loyalty::v1;

// 2024-06-15 (a Saturday) 12:00 UTC.
constexpr int64_t kNow = 1718452800000;
constexpr int64_t kDay = kMillisPerDay;

EventFacts Visit(int64_t ms, int64_t party = 1) { return {ms, FactKind::kVisit, 0, party, {}}; }
EventFacts Buy(int64_t ms, int64_t amount, const std::string& category = "Coffee") {
  return {ms, FactKind::kPurchase, amount, 0, EncodeCategories({{category, amount}})};
}
EventFacts Enrolled(int64_t ms) { return {ms, FactKind::kEnrolment, 0, 0, {}}; }

v1::MemberFeatures Features(const std::vector<EventFacts>& facts, int offset = 0,
                            const v1::CutPoints* cuts = nullptr) {
  return ComputeFeatures("m", facts, FeatureContext{kNow, offset, cuts}, nullptr);
}

TEST(FeaturesTest, WindowsIncludeExactly30DaysMinusOneMillisecond) {
  auto f = Features({Enrolled(kNow - 400 * kDay), Visit(kNow - 30 * kDay),
                     Visit(kNow - 30 * kDay + 1), Visit(kNow - 90 * kDay + 1),
                     Visit(kNow - 365 * kDay), Buy(kNow - 10 * kDay, 1000),
                     Buy(kNow - 100 * kDay, 500)});
  EXPECT_EQ(f.visits_since_enrolment(), 4);
  EXPECT_EQ(f.visits_30d(), 1);   // exactly 30 days ago is outside
  EXPECT_EQ(f.visits_90d(), 3);
  EXPECT_EQ(f.visits_365d(), 3);  // exactly 365 days ago is outside
  EXPECT_EQ(f.spend_30d(), 1000);
  EXPECT_EQ(f.spend_90d(), 1000);
  EXPECT_EQ(f.spend_365d(), 1500);
  EXPECT_EQ(f.spend_since_enrolment(), 1500);
  EXPECT_EQ(f.avg_basket(), 750);
  EXPECT_EQ(f.days_since_enrolment(), 400);
  EXPECT_EQ(f.days_since_last_visit(), 29);  // 30 days minus 1 ms, whole days
  // First visit 365 days ago, last 30 days - 1 ms ago: 335 days / 3 gaps.
  EXPECT_EQ(f.purchase_frequency_days(), 111);
}

TEST(FeaturesTest, CategoriesShareOfSpend) {
  auto f = Features({Enrolled(kNow - 40 * kDay), Buy(kNow - kDay, 600, "Tea"),
                     Buy(kNow - 2 * kDay, 300, "Coffee"), Buy(kNow - 3 * kDay, 100, "Cake")});
  ASSERT_EQ(f.top_categories_size(), 3);
  EXPECT_EQ(f.top_category(), "Tea");
  EXPECT_EQ(f.top_category_share_pct(), 60);
  EXPECT_EQ(f.top_categories(1).category(), "Coffee");
  EXPECT_EQ(f.top_categories(1).share_pct(), 30);
}

TEST(FeaturesTest, WeekdayAndHourUseStoreLocalTime) {
  // Saturday 23:30 UTC is Sunday 00:30 at UTC+1: weekend both ways, but the
  // weekday and band differ.
  const int64_t sat_2330 = kNow + 11 * 3600'000 + 30 * 60'000;
  auto utc = Features({Enrolled(kNow - 40 * kDay), Visit(sat_2330)}, 0);
  EXPECT_EQ(utc.preferred_weekday(), 6);
  EXPECT_EQ(utc.preferred_hour_band(), "evening");
  auto local = Features({Enrolled(kNow - 40 * kDay), Visit(sat_2330)}, 60);
  EXPECT_EQ(local.preferred_weekday(), 0);
  EXPECT_EQ(local.preferred_hour_band(), "night");
  // Friday 23:30 UTC is Saturday at UTC+1: weekend share flips.
  auto fri = Features({Enrolled(kNow - 40 * kDay), Visit(sat_2330 - kDay)}, 60);
  EXPECT_EQ(fri.weekend_visit_share_pct(), 100);
  EXPECT_EQ(Features({Enrolled(kNow - 40 * kDay), Visit(sat_2330 - kDay)}, 0)
                .weekend_visit_share_pct(),
            0);
}

TEST(FeaturesTest, CompanionShareCountsPartiesAboveOne) {
  auto f = Features({Enrolled(kNow - 40 * kDay), Visit(kNow - kDay, 1), Visit(kNow - kDay, 2),
                     Visit(kNow - kDay, 0), Visit(kNow - kDay, 4)});
  EXPECT_EQ(f.companion_visit_share_pct(), 50);
}

TEST(FeaturesTest, LifecycleThresholds) {
  EXPECT_EQ(Features({Enrolled(kNow - 29 * kDay)}).lifecycle(), "new");
  EXPECT_EQ(Features({Enrolled(kNow - 30 * kDay)}).lifecycle(), "developing");
  EXPECT_EQ(Features({Enrolled(kNow - 300 * kDay), Visit(kNow - 61 * kDay)}).lifecycle(), "at_risk");
  EXPECT_EQ(Features({Enrolled(kNow - 300 * kDay), Visit(kNow - 60 * kDay)}).lifecycle(),
            "developing");
  EXPECT_EQ(Features({Enrolled(kNow - 300 * kDay), Visit(kNow - 181 * kDay)}).lifecycle(), "lapsed");
  std::vector<EventFacts> ten = {Enrolled(kNow - 300 * kDay)};
  for (int i = 0; i < 10; ++i) ten.push_back(Visit(kNow - (i + 1) * kDay));
  EXPECT_EQ(Features(ten).lifecycle(), "loyal");
}

TEST(FeaturesTest, LifetimeValueIsHistoryPlusThreeRetainedYears) {
  // 365 days enrolled, 36500 spent, developing (60 %): 36500 + 3 * 36500 * 0.6.
  auto f = Features({Enrolled(kNow - 365 * kDay), Visit(kNow - kDay), Buy(kNow - kDay, 36500)});
  EXPECT_EQ(f.lifecycle(), "developing");
  EXPECT_EQ(f.clv(), 36500 + 65700);
}

TEST(FeaturesTest, QuintilesFromCutPoints) {
  std::vector<v1::MemberFeatures> all;
  for (int i = 1; i <= 10; ++i) {
    v1::MemberFeatures f;
    f.set_spend_365d(i * 100);
    f.set_visits_365d(i);
    f.set_days_since_last_visit(10 - i);
    all.push_back(f);
  }
  const v1::CutPoints cuts = ComputeCutPoints(all, kNow);
  ASSERT_EQ(cuts.monetary_size(), 4);
  EXPECT_EQ(cuts.monetary(0), 201);  // 20th percentile is 200: above it scores 2
  v1::MemberFeatures top = all.back(), bottom = all.front();
  ScoreFeatures(&cuts, &top);
  ScoreFeatures(&cuts, &bottom);
  EXPECT_EQ(top.rfm_m(), 5);
  EXPECT_EQ(top.rfm_f(), 5);
  EXPECT_EQ(top.rfm_r(), 5);
  EXPECT_EQ(top.spend_percentile_band(), 3);
  EXPECT_EQ(bottom.rfm_m(), 1);
  EXPECT_EQ(bottom.rfm_r(), 1);
  EXPECT_EQ(bottom.spend_percentile_band(), 1);
}

TEST(FeaturesTest, DemographicsOnlyWithConsent) {
  v1::MemberConsent c;
  c.set_age_band("25-34");
  c.set_region("North");
  auto without = ComputeFeatures("m", {}, FeatureContext{kNow, 0, nullptr}, &c);
  EXPECT_FALSE(without.consent());
  EXPECT_EQ(without.age_band(), "");
  c.set_consent(true);
  auto with = ComputeFeatures("m", {}, FeatureContext{kNow, 0, nullptr}, &c);
  EXPECT_EQ(with.age_band(), "25-34");
  EXPECT_EQ(with.region(), "North");
}

TEST(SegmentExprTest, EvaluatesComparisonsAndLogic) {
  auto e = SegmentExpr::Parse(
      "visits_since_enrolment >= 3 and visits_since_enrolment < 10 or lifecycle in ('lapsed')");
  ASSERT_TRUE(e.ok()) << e.error().message;
  v1::MemberFeatures f;
  f.set_visits_since_enrolment(3);
  EXPECT_TRUE(e->Matches(f));
  f.set_visits_since_enrolment(10);
  EXPECT_FALSE(e->Matches(f));
  f.set_lifecycle("lapsed");
  EXPECT_TRUE(e->Matches(f));
  auto n = SegmentExpr::Parse("not (consent == 1) and region != \"North\"");
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_TRUE(n->Matches(f));
}

TEST(SegmentExprTest, InvalidDefinitionsNamePositionAndReason) {
  auto unknown = SegmentExpr::Parse("visits >= 3");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, "invalid_segment");
  EXPECT_EQ(unknown.error().message, "position 1: unknown feature 'visits'");
  auto type = SegmentExpr::Parse("lifecycle >= 'new'");
  ASSERT_FALSE(type.ok());
  EXPECT_EQ(type.error().message,
            "position 11: 'lifecycle' is text: only '==', '!=' and 'in' apply");
  auto value = SegmentExpr::Parse("spend_30d > 'a'");
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.error().message.substr(0, 12), "position 13:");
  auto eq = SegmentExpr::Parse("rfm_r = 5");
  ASSERT_FALSE(eq.ok());
  EXPECT_EQ(eq.error().message, "position 7: '=' is not an operator; use '=='");
  EXPECT_FALSE(SegmentExpr::Parse("rfm_r == 5 and").ok());
  EXPECT_FALSE(SegmentExpr::Parse("(rfm_r == 5").ok());
  EXPECT_FALSE(SegmentExpr::Parse("").ok());
}

// A definition nested 100,000 deep crashed the server that parsed it (its
// stack overflowed); nesting is bounded, and what a person writes fits.
TEST(SegmentExprTest, NestingIsBoundedSoNoDefinitionCanOverflowTheStack) {
  auto nested = [](int depth, const std::string& open, const std::string& close) {
    std::string text;
    for (int i = 0; i < depth; ++i) text += open;
    text += "rfm_r == 5";
    for (int i = 0; i < depth; ++i) text += close;
    return text;
  };
  for (const auto& [open, close] : {std::pair<std::string, std::string>{"(", ")"},
                                    std::pair<std::string, std::string>{"not ", ""},
                                    std::pair<std::string, std::string>{"not (", ")"}}) {
    SCOPED_TRACE(open);
    auto deep = SegmentExpr::Parse(nested(100'000, open, close));
    ASSERT_FALSE(deep.ok());
    EXPECT_EQ(deep.error().code, "invalid_segment");
    EXPECT_NE(deep.error().message.find("nest more than 64 deep"), std::string::npos)
        << deep.error().message;
    EXPECT_FALSE(SegmentExpr::Parse(nested(65, open, close)).ok());
  }
  auto fits = SegmentExpr::Parse(nested(64, "(", ")"));
  ASSERT_TRUE(fits.ok()) << fits.error().message;
  v1::MemberFeatures features;
  features.set_rfm_r(5);
  EXPECT_TRUE(fits->Matches(features));
  auto negated = SegmentExpr::Parse(nested(64, "not ", ""));
  ASSERT_TRUE(negated.ok()) << negated.error().message;
  EXPECT_TRUE(negated->Matches(features));  // an even number of "not"s
}

TEST(SegmentExprTest, DefaultSegmentsAreValidAndHandComputedMembersFit) {
  for (const auto& d : DefaultSegments()) {
    EXPECT_TRUE(ValidateSegment(d).ok()) << d.id();
  }
  const SegmentSet set(DefaultSegments());
  auto ids = [&](const v1::MemberFeatures& f) { return set.Evaluate(f); };
  auto has = [&](const v1::MemberFeatures& f, const std::string& id) {
    auto v = ids(f);
    return std::find(v.begin(), v.end(), id) != v.end();
  };
  v1::CutPoints cuts;  // quintile cuts 2,3,4,5; spend percentiles 400, 800
  cuts.set_members(100);
  for (int64_t c : {-40, -30, -20, -10}) cuts.add_recency_days(c);
  for (int64_t c : {2, 3, 4, 5}) cuts.add_frequency(c);
  for (int64_t c : {200, 400, 600, 800}) cuts.add_monetary(c);
  cuts.add_spend_percentiles(400);
  cuts.add_spend_percentiles(800);
  std::vector<EventFacts> champion = {Enrolled(kNow - 100 * kDay)};
  for (int i = 0; i < 12; ++i) {
    champion.push_back(Visit(kNow - (i + 1) * kDay - 3 * 3600'000));  // Friday-ish mix
    champion.push_back(Buy(kNow - (i + 1) * kDay, 100, i < 8 ? "Tea" : "Cake"));
  }
  auto c = Features(champion, 0, &cuts);
  EXPECT_TRUE(has(c, "many-visits"));
  EXPECT_TRUE(has(c, "heavy-users"));
  EXPECT_TRUE(has(c, "rfm-champions"));
  EXPECT_FALSE(has(c, "rfm-loyal"));
  EXPECT_TRUE(has(c, "category-lovers"));  // Tea is 800 of 1200
  EXPECT_FALSE(has(c, "new-members"));

  auto fresh = Features({Enrolled(kNow - 2 * kDay), Visit(kNow - kDay), Buy(kNow - kDay, 50)}, 0,
                        &cuts);
  EXPECT_TRUE(has(fresh, "few-visits"));
  EXPECT_TRUE(has(fresh, "new-members"));
  EXPECT_TRUE(has(fresh, "low-users"));
  EXPECT_TRUE(has(fresh, "weekday-shoppers"));  // Friday

  std::vector<EventFacts> lapsing = {Enrolled(kNow - 300 * kDay)};
  for (int i = 0; i < 5; ++i) lapsing.push_back(Visit(kNow - (100 + i) * kDay));
  lapsing.push_back(Buy(kNow - 100 * kDay, 500));
  auto l = Features(lapsing, 0, &cuts);
  EXPECT_TRUE(has(l, "some-visits"));
  EXPECT_TRUE(has(l, "rfm-at-risk"));
  EXPECT_TRUE(has(l, "medium-users"));
  std::vector<EventFacts> sleepy = {Enrolled(kNow - 300 * kDay), Visit(kNow - 200 * kDay),
                                    Visit(kNow - 199 * kDay + 2 * kDay)};
  auto h = Features(sleepy, 0, &cuts);
  EXPECT_TRUE(has(h, "rfm-hibernating"));
}

}  // namespace
}  // namespace loyalty::core

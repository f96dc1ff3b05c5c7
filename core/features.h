// Member features for segmentation: a fold over a member's events (design
// invariant 1) computed the same way by the full pass and by the incremental
// update after each ingested batch, so both give the same answer.
//
// Inputs are compact per-event facts (FactsOf), which the server stores as
// columns beside each event so the full pass reads one covering index in
// member order without parsing event blobs.
//
// Definitions (windows are rolling, in milliseconds before `now`: an event
// is inside the 30-day window when now - 30 days < occurred_at <= now):
//   visits_*                 Visit events (since enrolment, 30/90/365 days)
//   spend_*                  qualifying spend of purchases minus qualifying
//                            spend reversed by voids/returns, minor units
//   purchases_since_enrolment  Purchase events
//   days_since_last_visit    whole days since the last visit; without visits,
//                            days since enrolment
//   days_since_enrolment     whole days since the enrolment event
//   avg_basket               spend_since_enrolment / purchases, rounded down
//   purchase_frequency_days  mean whole days between first and last visit:
//                            (last - first) / (visits - 1); 0 below 2 visits
//   top_categories           net line spend per category of purchases (returns
//                            are not attributed to categories), top 3, share
//                            of the summed category spend, rounded down
//   preferred_weekday / preferred_hour_band  the most frequent local weekday
//                            (0 = Sunday) and hour band of visits (night
//                            0-5, morning 6-11, afternoon 12-16, evening
//                            17-23) in store local time (utc_offset_minutes);
//                            ties go to the smaller weekday / earlier band
//   weekend_visit_share_pct  visits on local Saturday or Sunday, % rounded down
//   companion_visit_share_pct visits with party_size > 1, % rounded down
//   rfm_r / rfm_f / rfm_m    quintile scores 1..5 within the programme from
//                            days_since_last_visit (fewer days score higher),
//                            visits_365d and spend_365d, using the CutPoints of
//                            the last full pass (all 3 without cut points):
//                            one point plus one for each of the 20/40/60/80th
//                            percentile values the member's value is above
//   spend_percentile_band    1 low (spend_365d at or below the programme's
//                            40th percentile), 2 medium, 3 heavy (above the
//                            80th percentile); 2 without cut points
//   lifecycle                new: enrolled < 30 days ago; else lapsed: no
//                            visit for > 180 days; else at_risk: > 60 days;
//                            else loyal: >= 10 visits in 365 days; else
//                            developing
//   clv                      spend_since_enrolment + 3 years of the member's
//                            annual spend rate (spend_since_enrolment * 365 /
//                            max(days_since_enrolment, 30)) times a lifecycle
//                            retention (new 50 %, developing 60 %, loyal 85 %,
//                            at_risk 30 %, lapsed 5 %), integer minor units,
//                            undiscounted
//   consent, age_band, sex, region  only with the member's consent
//
// Cut points are computed over every member by the full pass (nearest-rank
// percentiles; a cut is stored as that value + 1) and stored; incremental
// updates reuse them until the next full pass, so a member's scores move
// when their own values move, not when others' do.
//
// Pure functions and value types; thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "loyalty/v1/domain.pb.h"
#include "loyalty/v1/segments.pb.h"

namespace loyalty::core {

enum class FactKind : int { kOther = 0, kVisit = 1, kPurchase = 2, kReversal = 3, kEnrolment = 4 };

// What segmentation needs of one event.
struct EventFacts {
  int64_t occurred_ms = 0;
  FactKind kind = FactKind::kOther;
  int64_t amount = 0;  // signed qualifying spend
  int64_t party = 0;   // Visit.party_size
  // Net spend per category, encoded "category\tamount\n..." (EncodeCategories).
  std::string categories;
};

EventFacts FactsOf(const loyalty::v1::Event& event);
std::string EncodeCategories(const std::map<std::string, int64_t>& spend);
void DecodeCategories(std::string_view encoded, std::map<std::string, int64_t>* spend);

struct FeatureContext {
  int64_t now_ms = 0;
  int utc_offset_minutes = 0;
  const loyalty::v1::CutPoints* cut_points = nullptr;  // nullptr: neutral scores
};

// Accumulates one member's facts in any order, then computes the features.
class FeatureFold {
 public:
  explicit FeatureFold(const FeatureContext& context) : ctx_(context) {}
  void Add(const EventFacts& facts);
  void Add(int64_t occurred_ms, FactKind kind, int64_t amount, int64_t party,
           std::string_view categories);
  // The features of member `member_id` with `consent` (nullptr: none).
  loyalty::v1::MemberFeatures Finish(const std::string& member_id,
                                     const loyalty::v1::MemberConsent* consent) const;

 private:
  FeatureContext ctx_;
  int64_t enrolled_ms_ = 0;
  int64_t visits_[4] = {0, 0, 0, 0};  // since enrolment, 30, 90, 365 days
  int64_t spend_[4] = {0, 0, 0, 0};
  int64_t purchases_ = 0;
  int64_t first_visit_ms_ = 0;
  int64_t last_visit_ms_ = 0;
  int64_t weekday_[7] = {0, 0, 0, 0, 0, 0, 0};
  int64_t band_[4] = {0, 0, 0, 0};
  int64_t companions_ = 0;
  std::map<std::string, int64_t> categories_;
};

// Convenience: the features of one member from its events.
loyalty::v1::MemberFeatures ComputeFeatures(const std::string& member_id,
                                            std::span<const EventFacts> facts,
                                            const FeatureContext& context,
                                            const loyalty::v1::MemberConsent* consent);

// Sets rfm_* and spend_percentile_band (and the lifecycle-independent
// scores) from `cuts` (nullptr: neutral 3 / 2).
void ScoreFeatures(const loyalty::v1::CutPoints* cuts, loyalty::v1::MemberFeatures* features);

// Programme-wide cut points over `features` (every member).
loyalty::v1::CutPoints ComputeCutPoints(std::span<const loyalty::v1::MemberFeatures> features,
                                        int64_t now_ms);

}  // namespace loyalty::core

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
// Two representations: FeatureValues, a plain struct the full pass keeps for
// every member and segment expressions evaluate (no allocation per member),
// and loyalty.v1.MemberFeatures, the message the admin API shows. ToProto
// and FromProto convert exactly; the proto overloads below are wrappers.
//
// Pure functions and value types; thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
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

// Every feature a segment expression may name, by value. Text features are
// views: lifecycle and preferred_hour_band point to static strings; the
// others into the FeatureFold or Demographics they came from (or a
// TextPool, see Intern), so a FeatureValues must not outlive its source.
struct FeatureValues {
  int64_t visits_since_enrolment = 0;
  int64_t visits_30d = 0;
  int64_t visits_90d = 0;
  int64_t visits_365d = 0;
  int64_t spend_since_enrolment = 0;
  int64_t spend_30d = 0;
  int64_t spend_90d = 0;
  int64_t spend_365d = 0;
  int64_t days_since_last_visit = 0;
  int64_t days_since_enrolment = 0;
  int64_t purchases_since_enrolment = 0;
  int64_t avg_basket = 0;
  int64_t purchase_frequency_days = 0;
  int64_t top_category_share_pct = 0;
  int64_t preferred_weekday = 0;
  int64_t weekend_visit_share_pct = 0;
  int64_t companion_visit_share_pct = 0;
  int64_t rfm_r = 0;
  int64_t rfm_f = 0;
  int64_t rfm_m = 0;
  int64_t clv = 0;
  int64_t spend_percentile_band = 0;
  int64_t consent = 0;  // 0 or 1
  std::string_view top_category;
  std::string_view preferred_hour_band;
  std::string_view lifecycle;
  std::string_view age_band;
  std::string_view sex;
  std::string_view region;
};

// A feature name (the MemberFeatures field name) and where its value lives
// in FeatureValues: exactly one of `number` and `text` is set.
struct FeatureField {
  std::string_view name;
  int64_t FeatureValues::*number = nullptr;
  std::string_view FeatureValues::*text = nullptr;
};

// Every feature, in MemberFeatures field order.
std::span<const FeatureField> FeatureFields();
// The feature called `name`, or nullptr.
const FeatureField* FindFeature(std::string_view name);

// The demographics a member consented to (consent false: none are used).
struct Demographics {
  bool consent = false;
  std::string_view age_band;
  std::string_view sex;
  std::string_view region;
};

struct CategorySpend {
  std::string_view category;
  int64_t spend = 0;
  int64_t share_pct = 0;
};

// Owns copies of text values so FeatureValues can outlive their sources;
// each distinct text is stored once. Not thread-safe.
class TextPool {
 public:
  std::string_view Intern(std::string_view text);

 private:
  std::set<std::string, std::less<>> texts_;  // nodes never move: views stay valid
};

// Points the views of `values` that do not refer to static strings into `pool`.
void Intern(TextPool& pool, FeatureValues* values);

struct FeatureContext {
  int64_t now_ms = 0;
  int utc_offset_minutes = 0;
  const loyalty::v1::CutPoints* cut_points = nullptr;  // nullptr: neutral scores
};

// Accumulates one member's facts in any order, then computes the features.
// Reset() starts the next member and keeps the allocations, so one fold can
// serve a whole scan.
class FeatureFold {
 public:
  explicit FeatureFold(const FeatureContext& context) : ctx_(context) {}
  void Reset();
  void Reset(const FeatureContext& context) {
    ctx_ = context;
    Reset();
  }
  void Add(const EventFacts& facts);
  void Add(int64_t occurred_ms, FactKind kind, int64_t amount, int64_t party,
           std::string_view categories);
  // The features so far, scored with the context's cut points. Text views
  // point into this fold (valid until the next Add or Reset) and into
  // `demographics`. `top` (optional) receives up to 3 categories by spend.
  void Finish(const Demographics& demographics, FeatureValues* out,
              std::vector<CategorySpend>* top = nullptr) const;
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
  // Net spend per category. Names are interned per fold (a scan meets a few
  // dozen names millions of times), so adding is a hash lookup and an index.
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::unordered_map<std::string, uint32_t, NameHash, std::equal_to<>> category_ids_;
  std::vector<std::string_view> category_names_;  // by id; views of category_ids_' keys
  std::vector<int64_t> category_spend_;           // by id, for the ids in categories_
  std::vector<uint32_t> category_member_;         // by id: the member_ that last used it
  std::vector<uint32_t> categories_;              // the member's ids, first seen first
  uint32_t member_ = 1;                           // counts Reset()s
};

// The message form (as_of_ms = `as_of_ms`, no segment ids).
loyalty::v1::MemberFeatures ToProto(const FeatureValues& values, const std::string& member_id,
                                    int64_t as_of_ms, std::span<const CategorySpend> top);
// Views into `features`.
FeatureValues FromProto(const loyalty::v1::MemberFeatures& features);

// Convenience: the features of one member from its events.
loyalty::v1::MemberFeatures ComputeFeatures(const std::string& member_id,
                                            std::span<const EventFacts> facts,
                                            const FeatureContext& context,
                                            const loyalty::v1::MemberConsent* consent);

// Sets rfm_* and spend_percentile_band from `cuts` (nullptr or no members:
// neutral 3 / 2).
void ScoreFeatures(const loyalty::v1::CutPoints* cuts, FeatureValues* features);
void ScoreFeatures(const loyalty::v1::CutPoints* cuts, loyalty::v1::MemberFeatures* features);

// Programme-wide cut points over every member's features.
loyalty::v1::CutPoints ComputeCutPoints(std::span<const FeatureValues> features, int64_t now_ms);
// The same, from members added one by one (from several places).
class CutPointsBuilder {
 public:
  void Reserve(size_t members);
  void Add(const FeatureValues& features);
  loyalty::v1::CutPoints Build(int64_t now_ms) &&;

 private:
  std::vector<int64_t> recency_, frequency_, monetary_;
};
loyalty::v1::CutPoints ComputeCutPoints(std::span<const loyalty::v1::MemberFeatures> features,
                                        int64_t now_ms);

}  // namespace loyalty::core

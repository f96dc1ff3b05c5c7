#include "core/features.h"

#include <algorithm>

#include "core/int_math.h"
#include "core/time_util.h"

namespace loyalty::core {
namespace {

namespace v1 = loyalty::v1;

constexpr int64_t kWindowMillis[4] = {0, 30 * kMillisPerDay, 90 * kMillisPerDay,
                                      365 * kMillisPerDay};
constexpr std::string_view kBands[4] = {"night", "morning", "afternoon", "evening"};
constexpr int64_t kMillisPerHour = 3'600'000;

int HourBand(int64_t hour) {
  if (hour < 6) return 0;
  if (hour < 12) return 1;
  if (hour < 17) return 2;
  return 3;
}

// Local day number (floor) of a UTC instant; LocalWeekday / LocalHour of
// time_util.h without the calendar types, for the fold's inner loop.
int64_t LocalDay(int64_t local_ms) {
  return local_ms >= 0 ? local_ms / kMillisPerDay : -1 - (-local_ms - 1) / kMillisPerDay;
}

int64_t Pct(int64_t part, int64_t whole) { return whole > 0 ? part * 100 / whole : 0; }

// 1 + the number of thresholds <= v (1..5 for 4 quintile cuts).
int64_t Score(const google::protobuf::RepeatedField<int64_t>& cuts, int64_t v) {
  int64_t s = 1;
  for (int64_t c : cuts) s += v >= c ? 1 : 0;
  return s;
}

// Nearest-rank percentile `p` (0..100) of sorted `values`.
int64_t Percentile(const std::vector<int64_t>& sorted, int p) {
  if (sorted.empty()) return 0;
  size_t rank = (sorted.size() * static_cast<size_t>(p) + 99) / 100;
  if (rank == 0) rank = 1;
  return sorted[std::min(rank, sorted.size()) - 1];
}

// Calls `add(category, amount)` for every entry of an EncodeCategories text
// ("category\tamount\n"; entries without a tab are skipped, an amount
// without digits counts 0). One pass over the bytes: the full pass runs
// this for every purchase in the ledger.
template <typename Add>
void ForEachCategory(std::string_view encoded, Add&& add) {
  const char* p = encoded.data();
  const char* const end = p + encoded.size();
  while (p < end) {
    const char* const name = p;
    while (p < end && *p != '\t' && *p != '\n') ++p;
    if (p == end) return;
    if (*p == '\n') {  // no tab
      ++p;
      continue;
    }
    const std::string_view category(name, static_cast<size_t>(p - name));
    ++p;
    const bool negative = p < end && *p == '-';
    if (negative) ++p;
    int64_t amount = 0;
    for (int digits = 0; p < end && *p >= '0' && *p <= '9' && digits < 18; ++p, ++digits) {
      amount = amount * 10 + (*p - '0');
    }
    while (p < end && *p != '\n') ++p;
    if (p < end) ++p;
    add(category, negative ? -amount : amount);
  }
}

v1::CutPoints CutPointsOf(std::vector<int64_t> recency, std::vector<int64_t> frequency,
                          std::vector<int64_t> monetary, int64_t now_ms) {
  std::sort(recency.begin(), recency.end());
  std::sort(frequency.begin(), frequency.end());
  std::sort(monetary.begin(), monetary.end());
  v1::CutPoints cuts;
  cuts.set_computed_at_ms(now_ms);
  cuts.set_members(static_cast<int64_t>(recency.size()));
  if (recency.empty()) return cuts;
  // A value at the p-th percentile cut scores above the members below it;
  // the cut is the smallest value strictly above the p-th percentile rank,
  // so ties stay in one quintile.
  for (int p : {20, 40, 60, 80}) {
    cuts.add_recency_days(Percentile(recency, p) + 1);
    cuts.add_frequency(Percentile(frequency, p) + 1);
    cuts.add_monetary(Percentile(monetary, p) + 1);
  }
  cuts.add_spend_percentiles(Percentile(monetary, 40) + 1);
  cuts.add_spend_percentiles(Percentile(monetary, 80) + 1);
  return cuts;
}

#define LOYALTY_NUMBER(name) FeatureField{#name, &FeatureValues::name, nullptr}
#define LOYALTY_TEXT(name) FeatureField{#name, nullptr, &FeatureValues::name}

// In MemberFeatures field order; features_test checks it against the message.
constexpr FeatureField kFeatureFields[] = {
    LOYALTY_NUMBER(visits_since_enrolment),
    LOYALTY_NUMBER(visits_30d),
    LOYALTY_NUMBER(visits_90d),
    LOYALTY_NUMBER(visits_365d),
    LOYALTY_NUMBER(spend_since_enrolment),
    LOYALTY_NUMBER(spend_30d),
    LOYALTY_NUMBER(spend_90d),
    LOYALTY_NUMBER(spend_365d),
    LOYALTY_NUMBER(days_since_last_visit),
    LOYALTY_NUMBER(days_since_enrolment),
    LOYALTY_NUMBER(purchases_since_enrolment),
    LOYALTY_NUMBER(avg_basket),
    LOYALTY_NUMBER(purchase_frequency_days),
    LOYALTY_TEXT(top_category),
    LOYALTY_NUMBER(top_category_share_pct),
    LOYALTY_NUMBER(preferred_weekday),
    LOYALTY_TEXT(preferred_hour_band),
    LOYALTY_NUMBER(weekend_visit_share_pct),
    LOYALTY_NUMBER(companion_visit_share_pct),
    LOYALTY_NUMBER(rfm_r),
    LOYALTY_NUMBER(rfm_f),
    LOYALTY_NUMBER(rfm_m),
    LOYALTY_TEXT(lifecycle),
    LOYALTY_NUMBER(clv),
    LOYALTY_NUMBER(spend_percentile_band),
    LOYALTY_NUMBER(consent),
    LOYALTY_TEXT(age_band),
    LOYALTY_TEXT(sex),
    LOYALTY_TEXT(region),
};

#undef LOYALTY_NUMBER
#undef LOYALTY_TEXT

}  // namespace

EventFacts FactsOf(const v1::Event& event) {
  EventFacts f;
  f.occurred_ms = event.occurred_at_ms();
  switch (event.body_case()) {
    case v1::Event::kEnrolment:
      f.kind = FactKind::kEnrolment;
      break;
    case v1::Event::kVisit:
      f.kind = FactKind::kVisit;
      f.party = event.visit().party_size();
      break;
    case v1::Event::kPurchase: {
      f.kind = FactKind::kPurchase;
      f.amount = event.purchase().qualifying_spend();
      std::map<std::string, int64_t> spend;
      for (const auto& line : event.purchase().lines()) {
        if (!line.line().category().empty()) spend[line.line().category()] += line.net();
      }
      f.categories = EncodeCategories(spend);
      break;
    }
    case v1::Event::kReversal:
      f.kind = FactKind::kReversal;
      f.amount = -event.reversal().qualifying_spend_reversed();
      break;
    default:
      break;
  }
  return f;
}

std::string EncodeCategories(const std::map<std::string, int64_t>& spend) {
  std::string out;
  for (const auto& [category, amount] : spend) {
    for (char c : category) out.push_back(c == '\t' || c == '\n' ? ' ' : c);
    out.push_back('\t');
    out += std::to_string(amount);
    out.push_back('\n');
  }
  return out;
}

void DecodeCategories(std::string_view encoded, std::map<std::string, int64_t>* spend) {
  ForEachCategory(encoded, [&](std::string_view category, int64_t amount) {
    (*spend)[std::string(category)] += amount;
  });
}

std::span<const FeatureField> FeatureFields() { return kFeatureFields; }

const FeatureField* FindFeature(std::string_view name) {
  for (const FeatureField& f : kFeatureFields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string_view TextPool::Intern(std::string_view text) {
  auto it = texts_.find(text);
  if (it == texts_.end()) it = texts_.emplace(text).first;
  return *it;
}

void Intern(TextPool& pool, FeatureValues* v) {
  for (std::string_view* text : {&v->top_category, &v->age_band, &v->sex, &v->region}) {
    if (!text->empty()) *text = pool.Intern(*text);
  }
}

// ------------------------------------------------------------- the fold --

void FeatureFold::Reset() {
  enrolled_ms_ = 0;
  std::fill(std::begin(visits_), std::end(visits_), 0);
  std::fill(std::begin(spend_), std::end(spend_), 0);
  purchases_ = 0;
  first_visit_ms_ = 0;
  last_visit_ms_ = 0;
  std::fill(std::begin(weekday_), std::end(weekday_), 0);
  std::fill(std::begin(band_), std::end(band_), 0);
  companions_ = 0;
  categories_.clear();
  ++member_;
}

void FeatureFold::Add(const EventFacts& f) {
  Add(f.occurred_ms, f.kind, f.amount, f.party, f.categories);
}

void FeatureFold::Add(int64_t occurred_ms, FactKind kind, int64_t amount, int64_t party,
                      std::string_view categories) {
  const int64_t age = ctx_.now_ms - occurred_ms;
  auto add_windows = [&](int64_t* totals, int64_t value) {
    totals[0] += value;
    for (int w = 1; w < 4; ++w) {
      if (age < kWindowMillis[w]) totals[w] += value;
    }
  };
  switch (kind) {
    case FactKind::kEnrolment:
      if (enrolled_ms_ == 0 || occurred_ms < enrolled_ms_) enrolled_ms_ = occurred_ms;
      break;
    case FactKind::kVisit: {
      add_windows(visits_, 1);
      if (first_visit_ms_ == 0 || occurred_ms < first_visit_ms_) first_visit_ms_ = occurred_ms;
      last_visit_ms_ = std::max(last_visit_ms_, occurred_ms);
      const int64_t local = occurred_ms + int64_t{ctx_.utc_offset_minutes} * 60'000;
      const int64_t day = LocalDay(local);
      ++weekday_[((day % 7) + 11) % 7];  // day 0, 1970-01-01, was a Thursday
      ++band_[HourBand((local - day * kMillisPerDay) / kMillisPerHour)];
      if (party > 1) ++companions_;
      break;
    }
    case FactKind::kPurchase:
      ++purchases_;
      add_windows(spend_, amount);
      ForEachCategory(categories, [&](std::string_view category, int64_t spend) {
        auto it = category_ids_.find(category);
        if (it == category_ids_.end()) {
          const auto id = static_cast<uint32_t>(category_names_.size());
          it = category_ids_.emplace(std::string(category), id).first;
          category_names_.push_back(it->first);  // nodes never move
          category_spend_.push_back(0);
          category_member_.push_back(0);
        }
        const uint32_t id = it->second;
        if (category_member_[id] != member_) {
          category_member_[id] = member_;
          category_spend_[id] = 0;
          categories_.push_back(id);
        }
        category_spend_[id] += spend;
      });
      break;
    case FactKind::kReversal:
      add_windows(spend_, amount);
      break;
    case FactKind::kOther:
      break;
  }
}

void FeatureFold::Finish(const Demographics& demographics, FeatureValues* out,
                         std::vector<CategorySpend>* top) const {
  FeatureValues& f = *out;
  f = FeatureValues{};
  f.visits_since_enrolment = visits_[0];
  f.visits_30d = visits_[1];
  f.visits_90d = visits_[2];
  f.visits_365d = visits_[3];
  f.spend_since_enrolment = spend_[0];
  f.spend_30d = spend_[1];
  f.spend_90d = spend_[2];
  f.spend_365d = spend_[3];
  const int64_t enrolled = enrolled_ms_ > 0 ? enrolled_ms_ : first_visit_ms_;
  const int64_t days_enrolled =
      enrolled > 0 ? std::max<int64_t>(0, (ctx_.now_ms - enrolled) / kMillisPerDay) : 0;
  f.days_since_enrolment = days_enrolled;
  f.days_since_last_visit =
      last_visit_ms_ > 0 ? std::max<int64_t>(0, (ctx_.now_ms - last_visit_ms_) / kMillisPerDay)
                         : days_enrolled;
  f.purchases_since_enrolment = purchases_;
  f.avg_basket = purchases_ > 0 ? static_cast<int64_t>(FloorDiv(spend_[0], purchases_)) : 0;
  f.purchase_frequency_days =
      visits_[0] >= 2 ? (last_visit_ms_ - first_visit_ms_) / kMillisPerDay / (visits_[0] - 1) : 0;

  // Top categories by spend (ties by name); only categories with spend count.
  uint32_t best[3] = {0, 0, 0};
  int found = 0;
  int64_t category_total = 0;
  auto before = [&](uint32_t a, uint32_t b) {
    return category_spend_[a] != category_spend_[b] ? category_spend_[a] > category_spend_[b]
                                                    : category_names_[a] < category_names_[b];
  };
  for (const uint32_t c : categories_) {
    if (category_spend_[c] <= 0) continue;
    category_total += category_spend_[c];
    int pos = 0;
    while (pos < found && before(best[pos], c)) ++pos;
    if (pos == 3) continue;
    for (int j = std::min(found, 2); j > pos; --j) best[j] = best[j - 1];
    best[pos] = c;
    found = std::min(found + 1, 3);
  }
  if (top != nullptr) top->clear();
  for (int i = 0; i < found; ++i) {
    const int64_t spend = category_spend_[best[i]];
    const CategorySpend c{category_names_[best[i]], spend, Pct(spend, category_total)};
    if (i == 0) {
      f.top_category = c.category;
      f.top_category_share_pct = c.share_pct;
    }
    if (top != nullptr) top->push_back(c);
  }

  if (visits_[0] > 0) {
    f.preferred_weekday = std::max_element(weekday_, weekday_ + 7) - weekday_;
    f.preferred_hour_band = kBands[std::max_element(band_, band_ + 4) - band_];
  } else {
    f.preferred_weekday = -1;
  }
  f.weekend_visit_share_pct = Pct(weekday_[0] + weekday_[6], visits_[0]);
  f.companion_visit_share_pct = Pct(companions_, visits_[0]);

  int64_t retention_pct = 0;
  if (days_enrolled < 30) {
    f.lifecycle = "new";
    retention_pct = 50;
  } else if (f.days_since_last_visit > 180) {
    f.lifecycle = "lapsed";
    retention_pct = 5;
  } else if (f.days_since_last_visit > 60) {
    f.lifecycle = "at_risk";
    retention_pct = 30;
  } else if (visits_[3] >= 10) {
    f.lifecycle = "loyal";
    retention_pct = 85;
  } else {
    f.lifecycle = "developing";
    retention_pct = 60;
  }
  const int64_t history = std::max<int64_t>(0, spend_[0]);
  const int64_t annual = MulDivFloor(history, 365, std::max<int64_t>(days_enrolled, 30));
  f.clv = history + MulDivFloor(annual, 3 * retention_pct, 100);

  if (demographics.consent) {
    f.consent = 1;
    f.age_band = demographics.age_band;
    f.sex = demographics.sex;
    f.region = demographics.region;
  }
  ScoreFeatures(ctx_.cut_points, &f);
}

v1::MemberFeatures FeatureFold::Finish(const std::string& member_id,
                                       const v1::MemberConsent* consent) const {
  Demographics d;
  if (consent != nullptr && consent->consent()) {
    d = Demographics{true, consent->age_band(), consent->sex(), consent->region()};
  }
  FeatureValues values;
  std::vector<CategorySpend> top;
  Finish(d, &values, &top);
  return ToProto(values, member_id, ctx_.now_ms, top);
}

// -------------------------------------------------------- conversions --

v1::MemberFeatures ToProto(const FeatureValues& v, const std::string& member_id, int64_t as_of_ms,
                           std::span<const CategorySpend> top) {
  v1::MemberFeatures f;
  f.set_member_id(member_id);
  f.set_as_of_ms(as_of_ms);
  f.set_visits_since_enrolment(v.visits_since_enrolment);
  f.set_visits_30d(v.visits_30d);
  f.set_visits_90d(v.visits_90d);
  f.set_visits_365d(v.visits_365d);
  f.set_spend_since_enrolment(v.spend_since_enrolment);
  f.set_spend_30d(v.spend_30d);
  f.set_spend_90d(v.spend_90d);
  f.set_spend_365d(v.spend_365d);
  f.set_days_since_last_visit(v.days_since_last_visit);
  f.set_days_since_enrolment(v.days_since_enrolment);
  f.set_purchases_since_enrolment(v.purchases_since_enrolment);
  f.set_avg_basket(v.avg_basket);
  f.set_purchase_frequency_days(v.purchase_frequency_days);
  for (const CategorySpend& c : top) {
    auto* out = f.add_top_categories();
    out->set_category(std::string(c.category));
    out->set_spend(c.spend);
    out->set_share_pct(c.share_pct);
  }
  f.set_top_category(std::string(v.top_category));
  f.set_top_category_share_pct(v.top_category_share_pct);
  f.set_preferred_weekday(v.preferred_weekday);
  f.set_preferred_hour_band(std::string(v.preferred_hour_band));
  f.set_weekend_visit_share_pct(v.weekend_visit_share_pct);
  f.set_companion_visit_share_pct(v.companion_visit_share_pct);
  f.set_rfm_r(v.rfm_r);
  f.set_rfm_f(v.rfm_f);
  f.set_rfm_m(v.rfm_m);
  f.set_lifecycle(std::string(v.lifecycle));
  f.set_clv(v.clv);
  f.set_spend_percentile_band(v.spend_percentile_band);
  f.set_consent(v.consent != 0);
  f.set_age_band(std::string(v.age_band));
  f.set_sex(std::string(v.sex));
  f.set_region(std::string(v.region));
  return f;
}

FeatureValues FromProto(const v1::MemberFeatures& f) {
  FeatureValues v;
  v.visits_since_enrolment = f.visits_since_enrolment();
  v.visits_30d = f.visits_30d();
  v.visits_90d = f.visits_90d();
  v.visits_365d = f.visits_365d();
  v.spend_since_enrolment = f.spend_since_enrolment();
  v.spend_30d = f.spend_30d();
  v.spend_90d = f.spend_90d();
  v.spend_365d = f.spend_365d();
  v.days_since_last_visit = f.days_since_last_visit();
  v.days_since_enrolment = f.days_since_enrolment();
  v.purchases_since_enrolment = f.purchases_since_enrolment();
  v.avg_basket = f.avg_basket();
  v.purchase_frequency_days = f.purchase_frequency_days();
  v.top_category = f.top_category();
  v.top_category_share_pct = f.top_category_share_pct();
  v.preferred_weekday = f.preferred_weekday();
  v.preferred_hour_band = f.preferred_hour_band();
  v.weekend_visit_share_pct = f.weekend_visit_share_pct();
  v.companion_visit_share_pct = f.companion_visit_share_pct();
  v.rfm_r = f.rfm_r();
  v.rfm_f = f.rfm_f();
  v.rfm_m = f.rfm_m();
  v.lifecycle = f.lifecycle();
  v.clv = f.clv();
  v.spend_percentile_band = f.spend_percentile_band();
  v.consent = f.consent() ? 1 : 0;
  v.age_band = f.age_band();
  v.sex = f.sex();
  v.region = f.region();
  return v;
}

v1::MemberFeatures ComputeFeatures(const std::string& member_id, std::span<const EventFacts> facts,
                                   const FeatureContext& context,
                                   const v1::MemberConsent* consent) {
  FeatureFold fold(context);
  for (const auto& f : facts) fold.Add(f);
  return fold.Finish(member_id, consent);
}

// ------------------------------------------------------------- scoring --

void ScoreFeatures(const v1::CutPoints* cuts, FeatureValues* f) {
  if (cuts == nullptr || cuts->members() == 0) {
    f->rfm_r = 3;
    f->rfm_f = 3;
    f->rfm_m = 3;
    f->spend_percentile_band = 2;
    return;
  }
  // Fewer days since the last visit is better: score the negated value
  // against the negated (ascending) cuts.
  f->rfm_r = Score(cuts->recency_days(), -f->days_since_last_visit);
  f->rfm_f = Score(cuts->frequency(), f->visits_365d);
  f->rfm_m = Score(cuts->monetary(), f->spend_365d);
  f->spend_percentile_band = Score(cuts->spend_percentiles(), f->spend_365d);
}

void ScoreFeatures(const v1::CutPoints* cuts, v1::MemberFeatures* f) {
  FeatureValues v = FromProto(*f);
  ScoreFeatures(cuts, &v);
  f->set_rfm_r(v.rfm_r);
  f->set_rfm_f(v.rfm_f);
  f->set_rfm_m(v.rfm_m);
  f->set_spend_percentile_band(v.spend_percentile_band);
}

void CutPointsBuilder::Reserve(size_t members) {
  recency_.reserve(members);
  frequency_.reserve(members);
  monetary_.reserve(members);
}

void CutPointsBuilder::Add(const FeatureValues& f) {
  recency_.push_back(-f.days_since_last_visit);
  frequency_.push_back(f.visits_365d);
  monetary_.push_back(f.spend_365d);
}

v1::CutPoints CutPointsBuilder::Build(int64_t now_ms) && {
  return CutPointsOf(std::move(recency_), std::move(frequency_), std::move(monetary_), now_ms);
}

v1::CutPoints ComputeCutPoints(std::span<const FeatureValues> features, int64_t now_ms) {
  CutPointsBuilder builder;
  builder.Reserve(features.size());
  for (const auto& f : features) builder.Add(f);
  return std::move(builder).Build(now_ms);
}

v1::CutPoints ComputeCutPoints(std::span<const v1::MemberFeatures> features, int64_t now_ms) {
  std::vector<int64_t> recency, frequency, monetary;
  recency.reserve(features.size());
  frequency.reserve(features.size());
  monetary.reserve(features.size());
  for (const auto& f : features) {
    recency.push_back(-f.days_since_last_visit());
    frequency.push_back(f.visits_365d());
    monetary.push_back(f.spend_365d());
  }
  return CutPointsOf(std::move(recency), std::move(frequency), std::move(monetary), now_ms);
}

}  // namespace loyalty::core

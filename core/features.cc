#include "core/features.h"

#include <algorithm>
#include <charconv>

#include "core/int_math.h"
#include "core/time_util.h"

namespace loyalty::core {
namespace {

namespace v1 = loyalty::v1;

constexpr int64_t kWindowDays[4] = {0, 30, 90, 365};
constexpr const char* kBands[4] = {"night", "morning", "afternoon", "evening"};

int HourBand(int hour) {
  if (hour < 6) return 0;
  if (hour < 12) return 1;
  if (hour < 17) return 2;
  return 3;
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
  while (!encoded.empty()) {
    const size_t nl = encoded.find('\n');
    std::string_view entry = encoded.substr(0, nl);
    const size_t tab = entry.find('\t');
    if (tab != std::string_view::npos) {
      int64_t amount = 0;
      std::from_chars(entry.data() + tab + 1, entry.data() + entry.size(), amount);
      (*spend)[std::string(entry.substr(0, tab))] += amount;
    }
    if (nl == std::string_view::npos) break;
    encoded.remove_prefix(nl + 1);
  }
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
      if (age < kWindowDays[w] * kMillisPerDay) totals[w] += value;
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
      ++weekday_[LocalWeekday(occurred_ms, ctx_.utc_offset_minutes)];
      ++band_[HourBand(LocalHour(occurred_ms, ctx_.utc_offset_minutes))];
      if (party > 1) ++companions_;
      break;
    }
    case FactKind::kPurchase:
      ++purchases_;
      add_windows(spend_, amount);
      DecodeCategories(categories, &categories_);
      break;
    case FactKind::kReversal:
      add_windows(spend_, amount);
      break;
    case FactKind::kOther:
      break;
  }
}

v1::MemberFeatures FeatureFold::Finish(const std::string& member_id,
                                       const v1::MemberConsent* consent) const {
  v1::MemberFeatures f;
  f.set_member_id(member_id);
  f.set_as_of_ms(ctx_.now_ms);
  f.set_visits_since_enrolment(visits_[0]);
  f.set_visits_30d(visits_[1]);
  f.set_visits_90d(visits_[2]);
  f.set_visits_365d(visits_[3]);
  f.set_spend_since_enrolment(spend_[0]);
  f.set_spend_30d(spend_[1]);
  f.set_spend_90d(spend_[2]);
  f.set_spend_365d(spend_[3]);
  const int64_t enrolled = enrolled_ms_ > 0 ? enrolled_ms_ : first_visit_ms_;
  const int64_t days_enrolled =
      enrolled > 0 ? std::max<int64_t>(0, (ctx_.now_ms - enrolled) / kMillisPerDay) : 0;
  f.set_days_since_enrolment(days_enrolled);
  f.set_days_since_last_visit(
      last_visit_ms_ > 0 ? std::max<int64_t>(0, (ctx_.now_ms - last_visit_ms_) / kMillisPerDay)
                         : days_enrolled);
  f.set_purchases_since_enrolment(purchases_);
  f.set_avg_basket(purchases_ > 0 ? static_cast<int64_t>(FloorDiv(spend_[0], purchases_)) : 0);
  f.set_purchase_frequency_days(
      visits_[0] >= 2 ? (last_visit_ms_ - first_visit_ms_) / kMillisPerDay / (visits_[0] - 1) : 0);

  int64_t category_total = 0;
  std::vector<std::pair<std::string, int64_t>> cats;
  for (const auto& [name, spend] : categories_) {
    if (spend <= 0) continue;
    category_total += spend;
    cats.emplace_back(name, spend);
  }
  std::sort(cats.begin(), cats.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  for (size_t i = 0; i < cats.size() && i < 3; ++i) {
    auto* c = f.add_top_categories();
    c->set_category(cats[i].first);
    c->set_spend(cats[i].second);
    c->set_share_pct(Pct(cats[i].second, category_total));
  }
  if (!cats.empty()) {
    f.set_top_category(cats[0].first);
    f.set_top_category_share_pct(Pct(cats[0].second, category_total));
  }

  if (visits_[0] > 0) {
    f.set_preferred_weekday(std::max_element(weekday_, weekday_ + 7) - weekday_);
    f.set_preferred_hour_band(kBands[std::max_element(band_, band_ + 4) - band_]);
  } else {
    f.set_preferred_weekday(-1);
  }
  f.set_weekend_visit_share_pct(Pct(weekday_[0] + weekday_[6], visits_[0]));
  f.set_companion_visit_share_pct(Pct(companions_, visits_[0]));

  std::string lifecycle;
  int64_t retention_pct = 0;
  if (days_enrolled < 30) {
    lifecycle = "new";
    retention_pct = 50;
  } else if (f.days_since_last_visit() > 180) {
    lifecycle = "lapsed";
    retention_pct = 5;
  } else if (f.days_since_last_visit() > 60) {
    lifecycle = "at_risk";
    retention_pct = 30;
  } else if (visits_[3] >= 10) {
    lifecycle = "loyal";
    retention_pct = 85;
  } else {
    lifecycle = "developing";
    retention_pct = 60;
  }
  f.set_lifecycle(lifecycle);
  const int64_t history = std::max<int64_t>(0, spend_[0]);
  const int64_t annual = MulDivFloor(history, 365, std::max<int64_t>(days_enrolled, 30));
  f.set_clv(history + MulDivFloor(annual, 3 * retention_pct, 100));

  if (consent != nullptr && consent->consent()) {
    f.set_consent(true);
    f.set_age_band(consent->age_band());
    f.set_sex(consent->sex());
    f.set_region(consent->region());
  }
  ScoreFeatures(ctx_.cut_points, &f);
  return f;
}

v1::MemberFeatures ComputeFeatures(const std::string& member_id, std::span<const EventFacts> facts,
                                   const FeatureContext& context,
                                   const v1::MemberConsent* consent) {
  FeatureFold fold(context);
  for (const auto& f : facts) fold.Add(f);
  return fold.Finish(member_id, consent);
}

void ScoreFeatures(const v1::CutPoints* cuts, v1::MemberFeatures* f) {
  if (cuts == nullptr || cuts->members() == 0) {
    f->set_rfm_r(3);
    f->set_rfm_f(3);
    f->set_rfm_m(3);
    f->set_spend_percentile_band(2);
    return;
  }
  // Fewer days since the last visit is better: score the negated value
  // against the negated (ascending) cuts.
  f->set_rfm_r(Score(cuts->recency_days(), -f->days_since_last_visit()));
  f->set_rfm_f(Score(cuts->frequency(), f->visits_365d()));
  f->set_rfm_m(Score(cuts->monetary(), f->spend_365d()));
  int64_t band = 1;
  for (int64_t c : cuts->spend_percentiles()) band += f->spend_365d() >= c ? 1 : 0;
  f->set_spend_percentile_band(band);
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
  std::sort(recency.begin(), recency.end());
  std::sort(frequency.begin(), frequency.end());
  std::sort(monetary.begin(), monetary.end());
  v1::CutPoints cuts;
  cuts.set_computed_at_ms(now_ms);
  cuts.set_members(static_cast<int64_t>(features.size()));
  if (features.empty()) return cuts;
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

}  // namespace loyalty::core

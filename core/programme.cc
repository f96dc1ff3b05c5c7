#include "core/programme.h"

#include <algorithm>
#include <set>

#include "core/int_math.h"
#include "core/time_util.h"

namespace loyalty::core {
namespace {

using loyalty::v1::Programme;

constexpr uint32_t kDefaultWindowDays = 365;
constexpr uint32_t kMaxDays = 3660;  // ten years: anything longer is a typo
constexpr uint32_t kMaxExpiryMonths = 1200;
constexpr uint32_t kMaxMultiplierPct = 10000;
// Keeps points of the largest valid basket far below int64 overflow.
constexpr int64_t kMaxPointsPerUnit = 1'000'000;
constexpr int64_t kMaxRedemptionFigure = 1'000'000'000;

Error Invalid(std::string message) {
  return MakeError(code::kInvalidProgramme, std::move(message));
}

std::string TierField(int i, const char* field) {
  return "tiers[" + std::to_string(i) + "]." + field;
}

void AddTier(Programme& p, const char* name, int64_t visits, int64_t spend, uint32_t pct) {
  auto* tier = p.add_tiers();
  tier->set_name(name);
  tier->set_min_visits(visits);
  tier->set_min_spend(spend);
  tier->set_earn_multiplier_pct(pct);
}

// True when the route (visits or spend) can qualify for a tier above the base.
bool RouteOpen(int64_t threshold) { return threshold > 0; }

}  // namespace

Programme DefaultProgramme() {
  Programme p;
  p.set_version(1);
  p.set_name("Demo Rewards");
  p.set_currency("EUR");
  p.set_minor_units(100);
  AddTier(p, "Member", 0, 0, 100);
  AddTier(p, "Silver", 5, 25'000, 125);
  AddTier(p, "Gold", 15, 100'000, 150);
  AddTier(p, "Platinum", 40, 300'000, 200);
  p.set_qualifying_window_days(kDefaultWindowDays);
  p.set_downgrade_grace_days(30);
  p.set_points_per_unit(1);
  p.set_points_expiry_months(24);
  p.set_redemption_points(100);
  p.set_redemption_value(100);
  p.set_offline_reserve_points(0);
  p.set_default_language("en");
  return p;
}

Status ValidateProgramme(const Programme& p) {
  if (p.name().empty()) return Invalid("name is empty; give the programme a name.");
  if (p.currency().size() != 3 || !std::all_of(p.currency().begin(), p.currency().end(),
                                               [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return Invalid("currency \"" + p.currency() +
                   "\" is not an ISO 4217 code (three capital letters).");
  }
  bool power_of_ten = false;
  for (uint32_t m = 1; m <= 10000; m *= 10) power_of_ten = power_of_ten || p.minor_units() == m;
  if (!power_of_ten) {
    return Invalid("minor_units is " + std::to_string(p.minor_units()) +
                   "; it must be 1, 10, 100, 1000 or 10000.");
  }
  if (p.tiers().empty()) return Invalid("tiers is empty; at least the base tier is needed.");
  std::set<std::string> names;
  for (int i = 0; i < p.tiers_size(); ++i) {
    const auto& tier = p.tiers(i);
    if (tier.name().empty()) return Invalid(TierField(i, "name") + " is empty.");
    if (!names.insert(tier.name()).second) {
      return Invalid(TierField(i, "name") + " \"" + tier.name() + "\" is used by an earlier tier.");
    }
    if (tier.earn_multiplier_pct() < 1 || tier.earn_multiplier_pct() > kMaxMultiplierPct) {
      return Invalid(TierField(i, "earn_multiplier_pct") + " is " +
                     std::to_string(tier.earn_multiplier_pct()) + "; it must be 1..10000.");
    }
    if (tier.min_visits() < 0 || tier.min_spend() < 0) {
      return Invalid(TierField(i, "min_visits") + " and min_spend must not be negative.");
    }
    if (i == 0) {
      if (tier.min_visits() != 0 || tier.min_spend() != 0) {
        return Invalid("tiers[0] is the base tier: its min_visits and min_spend must be 0.");
      }
      continue;
    }
    if (!RouteOpen(tier.min_visits()) && !RouteOpen(tier.min_spend())) {
      return Invalid(TierField(i, "min_visits") +
                     " and min_spend are both 0; only the base tier may need nothing.");
    }
    // Each open route must ask at least as much as the tier below on that
    // route, so a higher tier is never easier to reach.
    for (int j = i - 1; j >= 1; --j) {
      const auto& lower = p.tiers(j);
      if (RouteOpen(tier.min_visits()) && RouteOpen(lower.min_visits()) &&
          tier.min_visits() <= lower.min_visits()) {
        return Invalid(TierField(i, "min_visits") + " (" + std::to_string(tier.min_visits()) +
                       ") must be above " + TierField(j, "min_visits") + " (" +
                       std::to_string(lower.min_visits()) + ").");
      }
      if (RouteOpen(tier.min_spend()) && RouteOpen(lower.min_spend()) &&
          tier.min_spend() <= lower.min_spend()) {
        return Invalid(TierField(i, "min_spend") + " (" + std::to_string(tier.min_spend()) +
                       ") must be above " + TierField(j, "min_spend") + " (" +
                       std::to_string(lower.min_spend()) + ").");
      }
    }
  }
  if (p.qualifying_window_days() > kMaxDays) {
    return Invalid("qualifying_window_days is " + std::to_string(p.qualifying_window_days()) +
                   "; it must be 1..3660 (0 means 365).");
  }
  if (p.downgrade_grace_days() > kMaxDays) {
    return Invalid("downgrade_grace_days is " + std::to_string(p.downgrade_grace_days()) +
                   "; it must be 0..3660.");
  }
  if (p.points_per_unit() < 1 || p.points_per_unit() > kMaxPointsPerUnit) {
    return Invalid("points_per_unit is " + std::to_string(p.points_per_unit()) +
                   "; it must be 1..1000000.");
  }
  std::set<std::string> categories;
  for (int i = 0; i < p.category_multipliers_size(); ++i) {
    const auto& cm = p.category_multipliers(i);
    const std::string field = "category_multipliers[" + std::to_string(i) + "]";
    if (cm.category().empty()) return Invalid(field + ".category is empty.");
    if (!categories.insert(cm.category()).second) {
      return Invalid(field + ".category \"" + cm.category() + "\" appears twice.");
    }
    if (cm.multiplier_pct() < 1 || cm.multiplier_pct() > kMaxMultiplierPct) {
      return Invalid(field + ".multiplier_pct is " + std::to_string(cm.multiplier_pct()) +
                     "; it must be 1..10000.");
    }
  }
  if (p.points_expiry_months() > kMaxExpiryMonths) {
    return Invalid("points_expiry_months is " + std::to_string(p.points_expiry_months()) +
                   "; it must be 0..1200 (0: never expire).");
  }
  if (p.redemption_points() < 1 || p.redemption_points() > kMaxRedemptionFigure) {
    return Invalid("redemption_points must be 1..1000000000.");
  }
  if (p.redemption_value() < 1 || p.redemption_value() > kMaxRedemptionFigure) {
    return Invalid("redemption_value must be 1..1000000000.");
  }
  if (p.offline_reserve_points() < 0) {
    return Invalid("offline_reserve_points must not be negative.");
  }
  return {};
}

int TierIndex(const Programme& programme, std::string_view name) {
  for (int i = 0; i < programme.tiers_size(); ++i) {
    if (programme.tiers(i).name() == name) return i;
  }
  return -1;
}

uint32_t QualifyingWindowDays(const Programme& programme) {
  return programme.qualifying_window_days() == 0 ? kDefaultWindowDays
                                                 : programme.qualifying_window_days();
}

int QualifiedTierIndex(const Programme& programme, int64_t visits, int64_t spend) {
  int best = 0;
  for (int i = 1; i < programme.tiers_size(); ++i) {
    const auto& tier = programme.tiers(i);
    const bool by_visits = RouteOpen(tier.min_visits()) && visits >= tier.min_visits();
    const bool by_spend = RouteOpen(tier.min_spend()) && spend >= tier.min_spend();
    if (by_visits || by_spend) best = i;
  }
  return best;
}

TierDecision DecideTier(const Programme& programme, std::string_view current_tier,
                        int64_t kept_until_ms, int64_t visits, int64_t spend, int64_t now_ms) {
  if (programme.tiers().empty()) return {std::string(current_tier), 0};
  const int qualified = QualifiedTierIndex(programme, visits, spend);
  const int current = TierIndex(programme, current_tier);
  if (qualified >= current) return {programme.tiers(qualified).name(), 0};
  if (kept_until_ms == 0) {
    const int64_t grace = int64_t{programme.downgrade_grace_days()} * kMillisPerDay;
    if (grace == 0) return {programme.tiers(qualified).name(), 0};
    return {std::string(current_tier), now_ms + grace};
  }
  if (now_ms < kept_until_ms) return {std::string(current_tier), kept_until_ms};
  return {programme.tiers(qualified).name(), 0};
}

std::string FormatMoney(const Programme& programme, int64_t minor) {
  const std::string sign = minor < 0 ? "-" : "";
  // Magnitude in 128 bits so that INT64_MIN has one.
  const Int128 magnitude = minor < 0 ? -static_cast<Int128>(minor) : minor;
  const int64_t units = programme.minor_units() == 0 ? 1 : programme.minor_units();
  std::string text =
      sign + programme.currency() + " " + std::to_string(static_cast<uint64_t>(magnitude / units));
  if (units > 1) {
    std::string fraction = std::to_string(static_cast<uint64_t>(magnitude % units));
    const size_t width = std::to_string(units - 1).size();
    text += "." + std::string(width - std::min(width, fraction.size()), '0') + fraction;
  }
  return text;
}

}  // namespace loyalty::core

// The checkout subcommands of loyaltyctl: build the API request from flags,
// call the agent, print the answer for a human (or raw with --json).
#include <boost/beast/http/verb.hpp>
#include <boost/program_options.hpp>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <sstream>

#include "core/time_util.h"
#include "ctl/commands.h"
#include "ctl/http_client.h"
#include "loyalty/v1/api.pb.h"
#include "proto/json.h"

namespace loyalty::ctl {
namespace {

namespace po = boost::program_options;
namespace v1 = loyalty::v1;
using boost::beast::http::verb;

constexpr const char* kLineHelp =
    "basket line SKU:CATEGORY:QTY:UNIT_PRICE, repeatable; UNIT_PRICE in minor units (350) "
    "or with a decimal point (3.50), e.g. --line COF-1:Coffee:2:3.50";
constexpr const char* kReturnHelp =
    "returned line LINE_INDEX:QTY (index into the committed lines, from 0), repeatable; "
    "none: void the whole transaction";

struct Common {
  std::string url = "http://127.0.0.1:8080";
  bool json = false;
  int timeout_ms = 10000;
};

po::options_description Describe(const char* usage, Common* common) {
  po::options_description d(usage);
  d.add_options()                                                                         //
      ("help,h", "print this help")                                                       //
      ("url", po::value(&common->url), "agent base URL (default http://127.0.0.1:8080)")  //
      ("json", po::bool_switch(&common->json), "print the raw API JSON")                  //
      ("timeout-ms", po::value(&common->timeout_ms), "request timeout (default 10000)");
  return d;
}

// Parses `args`; returns -1 to go on, or the exit code (help, usage error).
int ParseArgs(const char* command, const std::vector<std::string>& args,
              const po::options_description& desc, std::ostream& out, std::ostream& err) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    if (vm.count("help")) {
      out << desc;
      return kExitOk;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    err << "loyaltyctl " << command << ": " << e.what() << "\n"
        << "(see loyaltyctl " << command << " --help)\n";
    return kExitUsage;
  }
  return -1;
}

int Usage(const char* command, const std::string& message, std::ostream& err) {
  err << "loyaltyctl " << command << ": " << message << "\n";
  return kExitUsage;
}

bool ParseInt(std::string_view s, int64_t* v) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *v);
  return ec == std::errc() && ptr == end;
}

// "3.50" -> 350, "350" -> 350 (minor units), "3.5" -> 350.
bool ParseMoney(std::string_view s, int64_t* minor) {
  const std::size_t dot = s.find('.');
  if (dot == std::string_view::npos) return ParseInt(s, minor);
  std::string_view whole = s.substr(0, dot);
  std::string_view frac = s.substr(dot + 1);
  if (whole.empty() || frac.empty() || frac.size() > 2 || whole[0] == '-' || whole[0] == '+') {
    return false;
  }
  int64_t w = 0, f = 0;
  if (!ParseInt(whole, &w) || !ParseInt(frac, &f) || frac[0] == '-' || frac[0] == '+') {
    return false;
  }
  if (frac.size() == 1) f *= 10;
  if (w > INT64_MAX / 100 - 1) return false;
  *minor = w * 100 + f;
  return true;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos - start));
    if (pos == std::string_view::npos) return parts;
    start = pos + 1;
  }
}

bool ParseLine(std::string_view spec, v1::BasketLine* line) {
  auto parts = Split(spec, ':');
  if (parts.size() != 4 || parts[0].empty()) return false;
  int64_t qty = 0, price = 0;
  if (!ParseInt(parts[2], &qty) || !ParseMoney(parts[3], &price)) return false;
  line->set_sku(std::string(parts[0]));
  line->set_category(std::string(parts[1]));
  line->set_quantity(qty);
  line->set_unit_price(price);
  return true;
}

bool ParseReturn(std::string_view spec, v1::LineReturn* ret) {
  auto parts = Split(spec, ':');
  int64_t index = 0, qty = 0;
  if (parts.size() != 2 || !ParseInt(parts[0], &index) || !ParseInt(parts[1], &qty) || index < 0 ||
      index > UINT32_MAX) {
    return false;
  }
  ret->set_line_index(static_cast<uint32_t>(index));
  ret->set_quantity(qty);
  return true;
}

std::string Money(int64_t minor) {
  std::ostringstream ss;
  const bool negative = minor < 0;
  // Unsigned so that INT64_MIN does not overflow on negation.
  const uint64_t abs = negative ? 0 - static_cast<uint64_t>(minor) : static_cast<uint64_t>(minor);
  ss << (negative ? "-" : "") << abs / 100 << '.' << std::setw(2) << std::setfill('0') << abs % 100;
  return ss.str();
}

void Row(std::ostream& out, std::string_view label, const std::string& value) {
  out << std::left << std::setw(16) << label << value << "\n";
}

void PrintMember(const v1::MemberView& m, std::ostream& out) {
  Row(out, "Member",
      m.display_name().empty() ? m.member_id() : m.display_name() + " (" + m.member_id() + ")");
  Row(out, "Tier", m.tier());
  Row(out, "Points",
      std::to_string(m.points_balance()) +
          (m.pending_points() ? " (" + std::to_string(m.pending_points()) + " pending)" : ""));
  if (m.has_next_tier()) {
    const auto& n = m.next_tier();
    std::string text = n.name() + ": ";
    if (n.visits_needed() > 0) text += std::to_string(n.visits_needed()) + " more visits or ";
    text += Money(n.spend_needed()) + " more spend (" + std::to_string(n.progress_pct()) + "%)";
    Row(out, "Next tier", text);
  }
  Row(out, "Qualifying",
      std::to_string(m.qualifying_visits()) + " visits, " + Money(m.qualifying_spend()) + " spend");
  if (m.has_next_expiry() && m.next_expiry().points() > 0) {
    Row(out, "Expiring",
        std::to_string(m.next_expiry().points()) + " points on " + m.next_expiry().date());
  }
  if (m.provisional()) Row(out, "Provisional", "yes (enrolled here, not yet confirmed)");
}

void PrintOffers(const google::protobuf::RepeatedPtrField<v1::OfferView>& offers,
                 std::ostream& out) {
  if (offers.empty()) return;
  out << "Offers\n";
  for (const auto& o : offers) {
    out << "  - " << o.name();
    if (!o.reward().empty()) out << ": " << o.reward();
    if (!o.conditions().empty()) out << " (" << o.conditions() << ")";
    if (o.uses_left() >= 0) out << ", " << o.uses_left() << " uses left";
    out << "\n";
  }
}

template <typename Resp>
void PrintTotals(const Resp& r, std::ostream& out) {
  Row(out, "Subtotal", Money(r.subtotal()));
  if (r.discount_total() != 0 || r.discounts_size() > 0) {
    Row(out, "Discounts", Money(-r.discount_total()));
    for (const auto& d : r.discounts()) {
      out << "  - " << (d.name().empty() ? d.offer_id() : d.name()) << ": " << Money(-d.amount())
          << (d.scope().empty() ? "" : " (" + d.scope() + ")") << "\n";
    }
  }
  if (r.points_redeemed() != 0) {
    Row(out, "Redemption",
        Money(-r.redemption_value()) + " (" + std::to_string(r.points_redeemed()) + " points)");
  }
  Row(out, "Total", Money(r.total()));
  Row(out, "Points earned", std::to_string(r.points_earned()));
  if (!r.explanation().empty()) {
    out << "Explanation\n";
    for (const auto& e : r.explanation()) {
      out << "  - " << (e.text().empty() ? e.rule() : e.text()) << "\n";
    }
  }
}

void PrintMemberResponse(const v1::MemberResponse& r, std::ostream& out) {
  PrintMember(r.member(), out);
  PrintOffers(r.offers(), out);
}

void PrintQuote(const v1::QuoteResponse& r, std::ostream& out) {
  if (r.has_member()) {
    const auto& m = r.member();
    Row(out, "Member",
        (m.display_name().empty() ? m.member_id() : m.display_name()) + " (" +
            (r.tier().empty() ? m.tier() : r.tier()) + "), balance " +
            std::to_string(m.points_balance()));
  }
  if (!r.lines().empty()) {
    out << "Lines\n";
    int i = 0;
    for (const auto& l : r.lines()) {
      out << "  [" << i++ << "] " << l.line().sku() << " " << l.line().category() << " "
          << l.line().quantity() << " x " << Money(l.line().unit_price()) << " = "
          << Money(l.gross());
      if (l.discount()) out << ", discount " << Money(l.discount());
      out << ", " << l.points() << " points\n";
    }
  }
  PrintTotals(r, out);
  PrintOffers(r.offers(), out);
}

void PrintCommit(const v1::CommitResponse& r, std::ostream& out) {
  Row(out, "Transaction", r.pos_txn_id() + " (member " + r.member_id() + ")");
  PrintTotals(r, out);
  Row(out, "Balance", std::to_string(r.points_balance()) + " points, tier " + r.tier());
}

void PrintVoid(const v1::VoidResponse& r, std::ostream& out) {
  Row(out, "Transaction",
      r.pos_txn_id() + (r.reversal_id().empty() ? "" : " (reversal " + r.reversal_id() + ")"));
  Row(out, "Points reversed", std::to_string(r.points_reversed()));
  Row(out, "Points restored", std::to_string(r.points_restored()));
  Row(out, "Refund", Money(r.refund()));
  if (!r.offers_released().empty()) {
    std::string ids;
    for (const auto& id : r.offers_released()) ids += (ids.empty() ? "" : ", ") + id;
    Row(out, "Offers released", ids);
  }
  Row(out, "Complete", r.complete() ? "yes" : "no (lines left to return)");
  Row(out, "Balance", std::to_string(r.points_balance()) + " points");
}

void PrintRedeem(const v1::RedeemResponse& r, std::ostream& out) {
  Row(out, "Redeemed",
      std::to_string(r.points()) + " points worth " + Money(r.value()) + " as " +
          (r.mode().empty() ? "discount" : r.mode()));
  Row(out, "Redemption id", r.redemption_id());
  Row(out, "Balance", std::to_string(r.points_balance()) + " points");
}

void PrintHealth(const v1::HealthResponse& r, std::ostream& out) {
  Row(out, "Status", r.status());
  Row(out, "Version", r.version());
  Row(out, "Store", r.store_id() + ", terminal " + r.terminal_id());
  Row(out, "Programme", "version " + std::to_string(r.programme_version()));
  Row(out, "Pending events", std::to_string(r.pending_events()));
  if (!r.problem().empty()) Row(out, "Problem", r.problem());
}

// Calls the API and prints the outcome; returns the exit code.
template <typename Resp>
int CallApi(const Common& common, verb method, const std::string& target, const std::string& body,
            void (*print)(const Resp&, std::ostream&), std::ostream& out, std::ostream& err) {
  auto url = ParseUrl(common.url);
  if (!url) {
    err << "loyaltyctl: " << url.error().message << "\n";
    return kExitUsage;
  }
  HttpClient client(*url, std::chrono::milliseconds(common.timeout_ms));
  auto reply = client.Call(method, target, body);
  if (!reply) {
    err << "loyaltyctl: cannot reach the agent at " << common.url << ": " << reply.error().message
        << "\n";
    return kExitCannotConnect;
  }
  const bool ok = reply->status >= 200 && reply->status < 300;
  if (common.json) out << reply->body << "\n";
  if (!ok) {
    v1::ErrorResponse error;
    Resp answer;
    if (proto::ParseJson(reply->body, &error).empty() && !error.error().code().empty()) {
      err << "error: " << error.error().code() << ": " << error.error().message() << "\n";
    } else if (!common.json && proto::ParseJson(reply->body, &answer).empty()) {
      print(answer, out);  // e.g. a degraded health: the answer says what is wrong
    } else {
      err << "error: HTTP " << reply->status << ": " << reply->body << "\n";
    }
    return kExitApiError;
  }
  if (common.json) return kExitOk;
  Resp response;
  if (std::string parse_error = proto::ParseJson(reply->body, &response); !parse_error.empty()) {
    // A newer agent may send fields this build does not know; show it raw.
    out << reply->body << "\n";
    return kExitOk;
  }
  print(response, out);
  return kExitOk;
}

// Path segment escaping for the card in GET /v1/members/{card}.
std::string EscapeSegment(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool ValidMode(const std::string& mode) {
  return mode.empty() || mode == "discount" || mode == "tender";
}

}  // namespace

int RunEnrol(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Common common;
  v1::EnrolRequest req;
  std::string card, name, language, referral;
  auto desc = Describe("usage: loyaltyctl enrol --card CARD [--name NAME] [options]", &common);
  desc.add_options()                                                     //
      ("card", po::value(&card)->required(), "card number")              //
      ("name", po::value(&name), "display name")                         //
      ("language", po::value(&language), "preferred language, e.g. es")  //
      ("referral-code", po::value(&referral), "code of the referring member");
  if (int rc = ParseArgs("enrol", args, desc, out, err); rc >= 0) return rc;
  req.set_card(card);
  req.set_display_name(name);
  req.set_language(language);
  req.set_referral_code(referral);
  return CallApi<v1::MemberResponse>(common, verb::post, "/v1/members", proto::ToJson(req),
                                     &PrintMemberResponse, out, err);
}

int RunLookup(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Common common;
  std::string card;
  auto desc = Describe("usage: loyaltyctl lookup --card CARD [options]", &common);
  desc.add_options()("card", po::value(&card)->required(), "card number");
  if (int rc = ParseArgs("lookup", args, desc, out, err); rc >= 0) return rc;
  return CallApi<v1::MemberResponse>(common, verb::get, "/v1/members/" + EscapeSegment(card), "",
                                     &PrintMemberResponse, out, err);
}

namespace {

// Options shared by quote and commit.
struct Basket {
  std::string card;
  std::vector<std::string> lines;
  int64_t redeem_points = 0;
  std::string mode;
};

void DescribeBasket(po::options_description* desc, Basket* b) {
  desc->add_options()                                                                      //
      ("card", po::value(&b->card)->required(), "card number")                             //
      ("line", po::value(&b->lines)->composing(), kLineHelp)                               //
      ("redeem-points", po::value(&b->redeem_points), "points to redeem with the basket")  //
      ("mode", po::value(&b->mode), "redemption mode: discount (default) or tender");
}

// Fills `lines` from the --line specs; returns -1 or the exit code.
int FillLines(const char* command, const Basket& b,
              google::protobuf::RepeatedPtrField<v1::BasketLine>* lines, std::ostream& err) {
  for (const std::string& spec : b.lines) {
    if (!ParseLine(spec, lines->Add())) {
      return Usage(command, "--line '" + spec + "' is not SKU:CATEGORY:QTY:UNIT_PRICE", err);
    }
  }
  if (!ValidMode(b.mode)) return Usage(command, "--mode must be discount or tender", err);
  return -1;
}

}  // namespace

int RunQuote(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Common common;
  Basket basket;
  auto desc = Describe("usage: loyaltyctl quote --card CARD --line ... [options]", &common);
  DescribeBasket(&desc, &basket);
  if (int rc = ParseArgs("quote", args, desc, out, err); rc >= 0) return rc;
  v1::QuoteRequest req;
  if (int rc = FillLines("quote", basket, req.mutable_lines(), err); rc >= 0) return rc;
  req.set_card(basket.card);
  req.set_redeem_points(basket.redeem_points);
  req.set_redeem_mode(basket.mode);
  return CallApi<v1::QuoteResponse>(common, verb::post, "/v1/checkout/quote", proto::ToJson(req),
                                    &PrintQuote, out, err);
}

int RunCommit(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Common common;
  Basket basket;
  std::string pos_txn_id;
  unsigned party_size = 0;
  auto desc = Describe("usage: loyaltyctl commit --pos-txn-id ID --card CARD --line ... [options]",
                       &common);
  DescribeBasket(&desc, &basket);
  desc.add_options()                                                                //
      ("pos-txn-id", po::value(&pos_txn_id)->required(), "the POS transaction id")  //
      ("party-size", po::value(&party_size), "people in the party (0: not given)");
  if (int rc = ParseArgs("commit", args, desc, out, err); rc >= 0) return rc;
  v1::CommitRequest req;
  if (int rc = FillLines("commit", basket, req.mutable_lines(), err); rc >= 0) return rc;
  req.set_pos_txn_id(pos_txn_id);
  req.set_card(basket.card);
  req.set_redeem_points(basket.redeem_points);
  req.set_redeem_mode(basket.mode);
  req.set_party_size(party_size);
  return CallApi<v1::CommitResponse>(common, verb::post, "/v1/checkout/commit", proto::ToJson(req),
                                     &PrintCommit, out, err);
}

int RunVoid(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Common common;
  std::string pos_txn_id, reversal_id;
  std::vector<std::string> returns;
  auto desc = Describe("usage: loyaltyctl void --pos-txn-id ID [--return INDEX:QTY ...] [options]",
                       &common);
  desc.add_options()                                                                    //
      ("pos-txn-id", po::value(&pos_txn_id)->required(), "the committed transaction")   //
      ("reversal-id", po::value(&reversal_id), "id of this void/return (idempotency)")  //
      ("return", po::value(&returns)->composing(), kReturnHelp);
  if (int rc = ParseArgs("void", args, desc, out, err); rc >= 0) return rc;
  v1::VoidRequest req;
  req.set_pos_txn_id(pos_txn_id);
  req.set_reversal_id(reversal_id);
  for (const std::string& spec : returns) {
    if (!ParseReturn(spec, req.add_lines())) {
      return Usage("void", "--return '" + spec + "' is not LINE_INDEX:QTY", err);
    }
  }
  return CallApi<v1::VoidResponse>(common, verb::post, "/v1/checkout/void", proto::ToJson(req),
                                   &PrintVoid, out, err);
}

int RunRedeem(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Common common;
  v1::RedeemRequest req;
  std::string card, mode, redemption_id, pos_txn_id;
  int64_t points = 0;
  auto desc = Describe("usage: loyaltyctl redeem --card CARD --points N [options]", &common);
  desc.add_options()                                                                       //
      ("card", po::value(&card)->required(), "card number")                                //
      ("points", po::value(&points)->required(), "points to redeem")                       //
      ("mode", po::value(&mode), "discount (default) or tender")                           //
      ("redemption-id", po::value(&redemption_id), "id of this redemption (idempotency)")  //
      ("pos-txn-id", po::value(&pos_txn_id), "the checkout it pays for, if any");
  if (int rc = ParseArgs("redeem", args, desc, out, err); rc >= 0) return rc;
  if (!ValidMode(mode)) return Usage("redeem", "--mode must be discount or tender", err);
  req.set_card(card);
  req.set_points(points);
  req.set_mode(mode);
  req.set_redemption_id(redemption_id);
  req.set_pos_txn_id(pos_txn_id);
  return CallApi<v1::RedeemResponse>(common, verb::post, "/v1/redemptions", proto::ToJson(req),
                                     &PrintRedeem, out, err);
}

int RunHealth(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Common common;
  auto desc = Describe("usage: loyaltyctl health [options]", &common);
  if (int rc = ParseArgs("health", args, desc, out, err); rc >= 0) return rc;
  return CallApi<v1::HealthResponse>(common, verb::get, "/v1/health", "", &PrintHealth, out, err);
}

namespace {

void PrintSync(const v1::SyncStatusResponse& r, std::ostream& out) {
  if (!r.enabled()) {
    Row(out, "Sync", "off (no --server: the agent runs offline)");
    Row(out, "Pending events", std::to_string(r.pending_events()));
    return;
  }
  Row(out, "Server", r.server() + (r.connected() ? " (connected)" : " (not connected)"));
  Row(out, "Pending events", std::to_string(r.pending_events()));
  Row(out, "Dead letters", std::to_string(r.dead_letters()));
  for (const auto& d : r.recent_dead_letters()) {
    out << "  - " << d.event_id() << ": " << d.code() << ": " << d.message() << "\n";
  }
  Row(out, "Last success",
      r.last_success_ms() == 0 ? std::string("never") : core::FormatDateTime(r.last_success_ms()));
  if (r.has_last_error()) {
    Row(out, "Last error", r.last_error().code() + ": " + r.last_error().message());
  }
  Row(out, "Cursor", std::to_string(r.cursor()));
  Row(out, "Epoch", std::to_string(r.epoch()));
  if (r.has_clock_skew_ms()) {
    const int64_t skew = r.clock_skew_ms();
    std::string text = skew == 0 ? "in step with the server"
                                 : std::to_string(std::abs(skew)) + " ms " +
                                       (skew > 0 ? "ahead of" : "behind") + " the server";
    if (std::abs(skew) > 2 * 60 * 1000) text += ": set this terminal's time right (NTP)";
    Row(out, "Clock", text);
  }
}

}  // namespace

int RunSync(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Common common;
  common.timeout_ms = 35000;  // a round may take a while on a slow link
  bool status_only = false;
  auto desc = Describe("usage: loyaltyctl sync [--status] [options]\n"
                       "Runs one sync round with the server now and shows the sync state;\n"
                       "--status only shows it.",
                       &common);
  desc.add_options()("status", po::bool_switch(&status_only), "show the state, sync nothing");
  if (int rc = ParseArgs("sync", args, desc, out, err); rc >= 0) return rc;
  if (status_only) {
    return CallApi<v1::SyncStatusResponse>(common, verb::get, "/v1/sync", "", &PrintSync, out,
                                           err);
  }
  // The agent waits a little less than we do, so its answer arrives.
  const int wait_ms = std::max(1000, common.timeout_ms - 5000);
  return CallApi<v1::SyncStatusResponse>(common, verb::post,
                                         "/v1/sync?timeout_ms=" + std::to_string(wait_ms), "",
                                         &PrintSync, out, err);
}

}  // namespace loyalty::ctl

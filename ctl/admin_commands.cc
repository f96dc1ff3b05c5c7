// `loyaltyctl admin`: head office's commands against loyalty-server's admin
// API over mutual TLS with an admin bundle. Human-readable tables by
// default, the API's JSON with --json.
#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "core/time_util.h"
#include "ctl/admin_client.h"
#include "ctl/commands.h"
#include "loyalty/v1/admin.pb.h"
#include "loyalty/v1/api.pb.h"
#include "loyalty/v1/segments.pb.h"
#include "proto/json.h"

namespace loyalty::ctl {
namespace {

namespace po = boost::program_options;
namespace v1 = loyalty::v1;

constexpr const char* kUsage =
    "usage: loyaltyctl admin --url https://HOST:PORT --tls-dir ADMIN_BUNDLE [--server-name NAME]\n"
    "                        [--json] COMMAND\n\n"
    "commands:\n"
    "  members lookup CARD_OR_MEMBER_ID   authoritative balance, tier, lots and history\n"
    "  health                             the server answers from its database (exit 1 if not)\n"
    "  stores                             per-store sync status\n"
    "  promotions list                    published promotions\n"
    "  promotions put FILE                publish a promotion (an Offer as JSON)\n"
    "  promotions retire ID               withdraw a promotion\n"
    "  programme show                     the published programme\n"
    "  programme load FILE                publish a programme (JSON; version must increase)\n"
    "  conflicts                          overdraws and other conflicts the server kept\n"
    "  segments list | show ID | delete ID  segment definitions\n"
    "  segments put FILE | preview FILE   save / count members of a SegmentDefinition (JSON)\n"
    "  promotions preview FILE            reach and estimated cost of an Offer (JSON)\n"
    "  kpis [--since YYYY-MM-DD] [--csv]  per segment and per promotion\n"
    "  members features|consent|erase ... features ID; consent ID FILE (MemberConsent);\n"
    "                                     erase CARD_OR_MEMBER_ID\n"
    "  metrics                            the server's Prometheus metrics\n";

// Events of a member's history `members lookup` asks for (the latest
// ones). Asked for explicitly, so that the printout knows when the history
// may hold more than it shows: the answer carries no total.
constexpr int kMemberHistory = 50;

struct Request {
  std::string method = "GET";
  std::string target;
  std::string body;
  bool csv = false;  // kpis --csv
};

std::string PercentEncode(std::string_view s) {
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

// The code of a BuildRequest error that is the command line's fault (exit
// 2); its other errors are invalid_request: a file that holds no valid
// request (exit 1).
constexpr const char* kUsageError = "usage";

// The body to send from the file at `path`, once it parses as `*message`
// the way the server will parse it. The path is part of the command line:
// one that cannot be read is a usage error. What the file holds is the
// request: when it is not one, it is refused as the server would refuse it
// (invalid_request), before anything is sent.
core::Result<std::string> ReadBody(const std::string& path, google::protobuf::Message* message) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return core::MakeError(kUsageError, "'" + path + "' is a directory, not a file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return core::MakeError(kUsageError, "cannot read '" + path + "': " + std::strerror(errno));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (std::string err = proto::ParseJson(text, message); !err.empty()) {
    const std::string type(message->GetDescriptor()->name());
    const bool vowel = std::string_view("AEIOU").find(type.front()) != std::string_view::npos;
    return core::MakeError(core::code::kInvalidRequest,
                           "'" + path + "' is not " + (vowel ? "an " : "a ") + type + ": " + err);
  }
  return text;
}

// Builds the request for `words`; an Error with code kUsageError is a
// usage error, one with invalid_request a file that holds no valid request.
core::Result<Request> BuildRequest(const std::vector<std::string>& words) {
  auto usage = [](std::string m) { return core::MakeError(kUsageError, m); };
  auto invalid = [](std::string m) { return core::MakeError(core::code::kInvalidRequest, m); };
  auto is = [&](std::initializer_list<const char*> want) {
    if (words.size() != want.size()) return false;
    std::size_t i = 0;
    for (const char* w : want) {
      if (*w != '*' && words[i] != w) return false;
      ++i;
    }
    return true;
  };
  Request r;
  if (is({"members", "lookup", "*"})) {
    r.target = "/v1/admin/members/" + PercentEncode(words[2]) +
               "?history=" + std::to_string(kMemberHistory);
  } else if (is({"health"})) {
    r.target = "/v1/admin/health";
  } else if (is({"stores"})) {
    r.target = "/v1/admin/stores";
  } else if (is({"promotions", "list"})) {
    r.target = "/v1/admin/promotions";
  } else if (is({"promotions", "put", "*"})) {
    v1::Offer offer;
    auto text = ReadBody(words[2], &offer);
    if (!text) return text.error();
    if (offer.id().empty()) return invalid("'" + words[2] + "' has no \"id\"");
    r.method = "PUT";
    r.target = "/v1/admin/promotions/" + PercentEncode(offer.id());
    r.body = std::move(*text);
  } else if (is({"promotions", "retire", "*"})) {
    r.method = "DELETE";
    r.target = "/v1/admin/promotions/" + PercentEncode(words[2]);
  } else if (is({"programme", "show"})) {
    r.target = "/v1/admin/programme";
  } else if (is({"programme", "load", "*"})) {
    v1::Programme programme;
    auto text = ReadBody(words[2], &programme);
    if (!text) return text.error();
    r.method = "PUT";
    r.target = "/v1/admin/programme";
    r.body = std::move(*text);
  } else if (is({"segments", "list"})) {
    r.target = "/v1/admin/segments";
  } else if (is({"segments", "show", "*"})) {
    r.target = "/v1/admin/segments/" + PercentEncode(words[2]);
  } else if (is({"segments", "delete", "*"})) {
    r.method = "DELETE";
    r.target = "/v1/admin/segments/" + PercentEncode(words[2]);
  } else if (is({"segments", "put", "*"}) || is({"segments", "preview", "*"})) {
    v1::SegmentDefinition d;
    auto text = ReadBody(words[2], &d);
    if (!text) return text.error();
    if (words[1] == "put") {
      if (d.id().empty()) return invalid("'" + words[2] + "' has no \"id\"");
      r.method = "PUT";
      r.target = "/v1/admin/segments/" + PercentEncode(d.id());
    } else {
      r.method = "POST";
      r.target = "/v1/admin/segments/preview";
    }
    r.body = std::move(*text);
  } else if (is({"promotions", "preview", "*"})) {
    v1::Offer offer;
    auto text = ReadBody(words[2], &offer);
    if (!text) return text.error();
    r.method = "POST";
    r.target = "/v1/admin/promotions/preview";
    r.body = std::move(*text);
  } else if (is({"kpis"})) {
    r.target = "/v1/admin/kpis";
  } else if (is({"members", "features", "*"})) {
    r.target = "/v1/admin/members/" + PercentEncode(words[2]) + "/features";
  } else if (is({"members", "consent", "*", "*"})) {
    v1::MemberConsent consent;
    auto text = ReadBody(words[3], &consent);
    if (!text) return text.error();
    r.method = "PUT";
    r.target = "/v1/admin/members/" + PercentEncode(words[2]) + "/consent";
    r.body = std::move(*text);
  } else if (is({"members", "erase", "*"})) {
    r.method = "POST";
    r.target = "/v1/admin/members/" + PercentEncode(words[2]) + "/erase";
  } else if (is({"conflicts"})) {
    r.target = "/v1/admin/conflicts";
  } else if (is({"metrics"})) {
    r.target = "/metrics";
  } else {
    std::string joined;
    for (const auto& w : words) joined += (joined.empty() ? "" : " ") + w;
    return usage(words.empty() ? "no command given" : "unknown command '" + joined + "'");
  }
  return r;
}

std::string When(int64_t ms) { return ms <= 0 ? "-" : core::FormatDateTime(ms); }

void PrintMember(const v1::AdminMemberResponse& r, std::ostream& out) {
  const auto& m = r.member();
  out << "member   " << m.member_id() << "  " << m.display_name() << "\n"
      << "tier     " << m.tier() << "\nbalance  " << m.points_balance() << " points\n"
      << "visits   " << m.qualifying_visits() << "  spend " << m.qualifying_spend()
      << "  (qualifying window)\nenrolled " << When(r.enrolled_at_ms()) << "\n";
  for (const auto& alias : r.aliases()) out << "alias    " << alias << "\n";
  for (const auto& lot : m.lots()) {
    out << "lot      " << lot.points() << " points earned " << When(lot.earned_at_ms()) << "\n";
  }
  const int shown = r.history_size();
  out << "history (" << (shown == kMemberHistory ? "latest " : "") << shown
      << (shown == 1 ? " event" : " events") << "):\n";
  for (const auto& e : r.history()) {
    const auto& id = e.id();
    out << "  " << When(e.occurred_at_ms()) << "  " << id.store_id() << "/" << id.terminal_id()
        << "/" << id.epoch() << "/" << id.seq() << "  ";
    switch (e.body_case()) {
      case v1::Event::kEnrolment:
        out << "enrolment";
        break;
      case v1::Event::kVisit:
        out << "visit";
        break;
      case v1::Event::kPurchase:
        out << "purchase " << e.purchase().pos_txn_id() << " total " << e.purchase().total() << " +"
            << e.purchase().points_earned() << " pts";
        break;
      case v1::Event::kReversal:
        out << "reversal of " << e.reversal().pos_txn_id() << " -" << e.reversal().points_reversed()
            << " pts";
        break;
      case v1::Event::kRedemption:
        out << "redemption -" << e.redemption().points() << " pts";
        break;
      case v1::Event::kAdjustment:
        out << "adjustment " << e.adjustment().points() << " pts";
        break;
      case v1::Event::BODY_NOT_SET:
        out << "?";
        break;
    }
    out << "\n";
  }
}

bool PrintSegmentation(const Request& r, const std::string& body, std::ostream& out) {
  auto parse = [&](google::protobuf::Message* m) { return proto::ParseJson(body, m).empty(); };
  const std::string& t = r.target;
  if (t == "/v1/admin/segments") {
    v1::SegmentList list;
    if (!parse(&list)) return false;
    out << std::left << std::setw(20) << "ID" << std::setw(10) << "TARGET" << "EXPRESSION\n";
    for (const auto& d : list.segments()) {
      out << std::setw(20) << d.id() << std::setw(10) << d.target_members() << d.expression()
          << "\n";
    }
  } else if (t == "/v1/admin/segments/preview" && r.method == "POST") {
    v1::SegmentPreview p;
    if (!parse(&p)) return false;
    out << p.id() << ": " << p.members() << " of " << p.total_members() << " members\n";
  } else if (t.starts_with("/v1/admin/segments/")) {
    if (r.method == "DELETE") {
      out << "deleted " << t.substr(19) << "\n";
      return true;
    }
    v1::SegmentDefinition d;
    if (!parse(&d)) return false;
    out << (r.method == "PUT" ? "saved " : "") << d.id() << " (" << d.name() << ")\n  expression: "
        << d.expression() << "\n  purpose:    " << d.purpose() << "\n  action:     "
        << d.suggested_action() << "\n  target:     " << d.target_members() << "\n";
  } else if (t == "/v1/admin/promotions/preview") {
    v1::PromotionPreview p;
    if (!parse(&p)) return false;
    out << p.offer_id() << ": reach " << p.reach() << " members, estimated cost " << p.estimated_cost()
        << " (" << p.estimated_points() << " points, " << p.estimated_discount()
        << " discount)\n";
    for (const auto& w : p.warnings()) out << "warning: " << w << "\n";
  } else if (t.ends_with("/erase")) {
    v1::EraseResponse e;
    if (!parse(&e)) return false;
    out << "erased " << e.member_id() << " (feed version " << e.feed_version() << ")\n";
  } else {
    v1::KpiReport k;
    if (!parse(&k)) return false;
    const bool csv = r.csv;
    const char* sep = csv ? "," : "  ";
    out << "segment" << sep << "members" << sep << "target" << sep << "visits_30d" << sep
        << "spend_30d" << sep << "avg_basket" << sep << "redemption_pct" << sep << "entered"
        << sep << "left\n";
    for (const auto& s : k.segments()) {
      out << s.segment_id() << sep << s.members() << sep << s.target_members() << sep
          << s.visits_30d() << sep << s.spend_30d() << sep << s.avg_basket() << sep
          << s.redemption_rate_pct() << sep << s.entered_since() << sep << s.left_since() << "\n";
    }
    out << (csv ? "\n" : "\n") << "promotion" << sep << "reach" << sep << "redemptions" << sep
        << "points" << sep << "discount\n";
    for (const auto& p : k.promotions()) {
      out << p.offer_id() << sep << p.reach() << sep << p.redemptions() << sep << p.points_given()
          << sep << p.discount_given() << "\n";
    }
  }
  return true;
}

// Prints the reply for a human; false if the body is not what was expected.
bool PrintHuman(const Request& r, const std::string& body, std::ostream& out) {
  auto parse = [&](google::protobuf::Message* m) { return proto::ParseJson(body, m).empty(); };
  const std::string& t = r.target;
  if (t == "/metrics") {
    out << body;
  } else if (t.starts_with("/v1/admin/segments") || t.starts_with("/v1/admin/kpis") ||
             t == "/v1/admin/promotions/preview" || t.ends_with("/erase")) {
    return PrintSegmentation(r, body, out);
  } else if (r.method != "GET") {
    v1::PublishResponse p;
    if (!parse(&p)) return false;
    out << (r.method == "DELETE" ? "retired " : "published ") << p.id() << " (feed version "
        << p.feed_version() << ")\n";
  } else if (t.starts_with("/v1/admin/members/")) {
    v1::AdminMemberResponse m;
    if (!parse(&m)) return false;
    PrintMember(m, out);
  } else if (t == "/v1/admin/health") {
    v1::ServerHealth h;
    if (!parse(&h)) return false;
    out << "status           " << h.status() << "\n"
        << "feed version     " << h.feed_version() << "\n"
        << "connected agents " << h.connected_agents() << "\n"
        << "queued jobs      " << h.queued_jobs() << "\n"
        << "unfolded events  " << h.unfolded_events() << "\n";
    if (!h.problem().empty()) out << "problem          " << h.problem() << "\n";
  } else if (t == "/v1/admin/stores") {
    v1::StoreList list;
    if (!parse(&list)) return false;
    out << std::left << std::setw(16) << "STORE" << std::setw(10) << "CONNECTED" << std::setw(22)
        << "LAST SEEN" << std::setw(10) << "EVENTS" << std::setw(10) << "REJECTED" << std::setw(10)
        << "LAG(s)"
        << "TERMINALS\n";
    for (const auto& s : list.stores()) {
      std::string terminals;
      for (const auto& term : s.terminals()) {
        terminals += (terminals.empty() ? "" : ", ") + term.terminal_id() + "#" +
                     std::to_string(term.last_seq());
        // Worth a glance only when it is off by minutes (NTP keeps it to ms).
        if (term.connected() && std::abs(term.clock_skew_ms()) > 2 * 60 * 1000) {
          terminals += " (clock " + std::to_string(std::abs(term.clock_skew_ms()) / 1000) + " s " +
                       (term.clock_skew_ms() > 0 ? "ahead" : "behind") + ")";
        }
      }
      out << std::setw(16) << s.store_id() << std::setw(10) << (s.connected() ? "yes" : "no")
          << std::setw(22) << When(s.last_seen_ms()) << std::setw(10) << s.events_received()
          << std::setw(10) << s.events_rejected() << std::setw(10) << s.lag_ms() / 1000 << terminals
          << "\n";
    }
  } else if (t == "/v1/admin/promotions") {
    v1::OfferList list;
    if (!parse(&list)) return false;
    out << std::left << std::setw(20) << "ID" << std::setw(30) << "NAME"
        << "PRIORITY\n";
    for (const auto& o : list.offers()) {
      out << std::setw(20) << o.id() << std::setw(30) << o.name() << o.priority() << "\n";
    }
  } else if (t == "/v1/admin/programme") {
    v1::Programme p;
    if (!parse(&p)) return false;
    out << "programme " << p.name() << " version " << p.version() << " (" << p.currency()
        << ")\npoints per unit " << p.points_per_unit() << "\ntiers:";
    for (const auto& tier : p.tiers()) out << " " << tier.name();
    out << "\n";
  } else if (t == "/v1/admin/conflicts") {
    v1::ConflictList list;
    if (!parse(&list)) return false;
    if (list.conflicts_size() == 0) out << "no conflicts\n";
    for (const auto& c : list.conflicts()) {
      out << "#" << c.id() << " " << c.kind() << " member " << c.member_id() << " balance "
          << c.balance_after() << " at " << When(c.detected_at_ms()) << ": " << c.detail()
          << "\n   events:";
      for (const auto& e : c.event_ids()) out << " " << e;
      out << "\n";
    }
  } else {
    out << body << "\n";
  }
  return true;
}

}  // namespace

int RunAdmin(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string url, tls_dir, server_name;
  bool json = false;
  bool csv = false;
  std::string since;
  int timeout_ms = 10000;
  std::vector<std::string> words;
  po::options_description desc("options");
  desc.add_options()                                                      //
      ("help,h", "print this help")                                       //
      ("url", po::value(&url), "server admin URL, https://HOST:PORT")     //
      ("tls-dir", po::value(&tls_dir), "admin bundle (pki issue-admin)")  //
      ("server-name", po::value(&server_name),
       "the name in the server's certificate, when not the --url host")     //
      ("json", po::bool_switch(&json), "print the raw API JSON")            //
      ("csv", po::bool_switch(&csv), "kpis as CSV")                         //
      ("since", po::value(&since), "kpis: segment moves since YYYY-MM-DD")  //
      ("timeout-ms", po::value(&timeout_ms), "request timeout (default 10000)");
  po::options_description hidden;
  hidden.add_options()("words", po::value(&words));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description positional;
  positional.add("words", -1);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
      out << kUsage << "\n" << desc;
      return kExitOk;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    err << "loyaltyctl admin: " << e.what() << "\n" << kUsage;
    return kExitUsage;
  }
  auto fail_usage = [&](const std::string& message) {
    err << "loyaltyctl admin: " << message << "\n" << kUsage;
    return kExitUsage;
  };
  if (url.empty()) return fail_usage("--url is required");
  if (tls_dir.empty()) return fail_usage("--tls-dir is required");
  if (timeout_ms <= 0) return fail_usage("--timeout-ms must be positive");
  auto request = BuildRequest(words);
  if (!request && request.error().code == core::code::kInvalidRequest) {
    // Refused here as the server would refuse it, and printed as its refusal
    // is, so that a script meets one kind of answer whoever spots it.
    if (json) {
      v1::ErrorResponse e;
      e.mutable_error()->set_code(request.error().code);
      e.mutable_error()->set_message(request.error().message);
      out << proto::ToJson(e) << "\n";
    } else {
      err << "error: " << request.error().code << ": " << request.error().message << "\n";
    }
    return kExitApiError;
  }
  if (!request) return fail_usage(request.error().message);
  request->csv = csv;
  if (!since.empty() && request->target == "/v1/admin/kpis") {
    request->target += "?since=" + PercentEncode(since);
  }
  auto parsed = ParseHttpsUrl(url);
  if (!parsed) return fail_usage(parsed.error().message);
  auto client =
      AdminClient::Create(*parsed, tls_dir, std::chrono::milliseconds(timeout_ms), server_name);
  if (!client) return fail_usage(client.error().message);

  auto reply = (*client)->Call(request->method, request->target, request->body);
  if (!reply) {
    if (reply.error().code == core::code::kUnavailable) {
      err << "loyaltyctl admin: " << reply.error().message << "\n";
      return kExitCannotConnect;
    }
    return fail_usage(reply.error().message);
  }
  if (reply->status >= 400) {
    if (json) {
      out << reply->body << "\n";
    } else {
      v1::ErrorResponse e;
      if (proto::ParseJson(reply->body, &e).empty() && !e.error().code().empty()) {
        err << "error: " << e.error().code() << ": " << e.error().message() << "\n";
      } else if (!PrintHuman(*request, reply->body, out)) {
        // (An answer that is not an error, e.g. a degraded health, was printed.)
        err << "error: HTTP " << reply->status << ": " << reply->body << "\n";
      }
    }
    return kExitApiError;
  }
  if (json) {
    out << reply->body << (reply->body.ends_with('\n') ? "" : "\n");
  } else if (!PrintHuman(*request, reply->body, out)) {
    err << "loyaltyctl admin: unexpected reply: " << reply->body << "\n";
    return kExitApiError;
  }
  return kExitOk;
}

}  // namespace loyalty::ctl

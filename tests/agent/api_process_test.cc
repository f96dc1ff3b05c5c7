// The local API over real HTTP against a real loyalty-agent process: every
// endpoint, the idempotency rules, and bad input at every endpoint answered
// with the error JSON while the terminal's state stays as it was.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/beast/http/verb.hpp>
#include <string>

#include "core/card.h"
#include "ctl/http_client.h"
#include "loyalty/v1/api.pb.h"
#include "proto/json.h"
#include "tests/agent/agent_process.h"

namespace loyalty::agent {
namespace {

using boost::beast::http::verb;
using loyalty::agent_test::AgentProcess;
namespace v1 = loyalty::v1;

std::string Card(int n) { return agent_test::TestCard(n); }

// The same number with its check digit broken.
std::string BadLuhnCard(int n) {
  std::string card = Card(n);
  card.back() = card.back() == '9' ? '0' : static_cast<char>(card.back() + 1);
  return card;
}

template <typename T>
T Parse(const ctl::HttpReply& reply) {
  T msg;
  const std::string err = proto::ParseJson(reply.body, &msg);
  EXPECT_EQ(err, "") << reply.body;
  return msg;
}

v1::BasketLine Line(const std::string& sku, const std::string& category, int64_t qty,
                    int64_t unit_price) {
  v1::BasketLine line;
  line.set_sku(sku);
  line.set_category(category);
  line.set_quantity(qty);
  line.set_unit_price(unit_price);
  return line;
}

class AgentApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    agent_ = AgentProcess::Start({"--store-id", "store-7", "--terminal-id", "till-3",
                                  "--offline-reserve-points", "0", "--log-level", "warn"},
                                 &error);
    ASSERT_TRUE(agent_) << error;
    auto url = ctl::ParseUrl(agent_->url());
    ASSERT_TRUE(url.ok());
    client_ = std::make_unique<ctl::HttpClient>(*url);
  }

  void TearDown() override {
    if (!agent_) return;
    // Every test ends with a clean shutdown and no sanitizer report.
    if (agent_->running()) {
      EXPECT_EQ(agent_->Terminate(), 0);
    }
    const std::string log = agent_->Stderr();
    EXPECT_EQ(log.find("Sanitizer"), std::string::npos);
    EXPECT_EQ(log.find("runtime error"), std::string::npos);
    if (HasFailure()) std::cerr << "agent stderr:\n" << log;
  }

  ctl::HttpReply Call(verb method, const std::string& target, const std::string& body = "") {
    auto reply = client_->Call(method, target, body);
    EXPECT_TRUE(reply.ok()) << (reply.ok() ? "" : reply.error().message);
    return reply.ok() ? std::move(*reply) : ctl::HttpReply{};
  }
  ctl::HttpReply Post(const std::string& target, const google::protobuf::Message& msg) {
    return Call(verb::post, target, proto::ToJson(msg));
  }

  v1::MemberResponse Enrol(const std::string& card, const std::string& name = "Test Member") {
    v1::EnrolRequest req;
    req.set_card(card);
    req.set_display_name(name);
    auto reply = Post("/v1/members", req);
    EXPECT_EQ(reply.status, 201u) << reply.body;
    return Parse<v1::MemberResponse>(reply);
  }

  v1::MemberResponse Lookup(const std::string& card) {
    auto reply = Call(verb::get, "/v1/members/" + card);
    EXPECT_EQ(reply.status, 200u) << reply.body;
    return Parse<v1::MemberResponse>(reply);
  }

  v1::CommitRequest CommitRequest(const std::string& card, const std::string& txn) {
    v1::CommitRequest req;
    req.set_card(card);
    req.set_pos_txn_id(txn);
    *req.add_lines() = Line("COF-1", "Coffee", 4, 350);
    *req.add_lines() = Line("BRD-2", "Bakery", 2, 1000);
    return req;
  }

  v1::CommitResponse Commit(const v1::CommitRequest& req) {
    auto reply = Post("/v1/checkout/commit", req);
    EXPECT_EQ(reply.status, 200u) << reply.body;
    return Parse<v1::CommitResponse>(reply);
  }

  // Everything a bad request must leave alone: the member as the API shows
  // it and the number of events waiting for upload.
  std::string Snapshot(const std::string& card) {
    const auto member = Call(verb::get, "/v1/members/" + card);
    const auto health = Parse<v1::HealthResponse>(Call(verb::get, "/v1/health"));
    return member.body + " pending=" + std::to_string(health.pending_events());
  }

  void ExpectError(const ctl::HttpReply& reply, unsigned status, const std::string& code) {
    EXPECT_EQ(reply.status, status) << reply.body;
    EXPECT_NE(reply.content_type.find("application/json"), std::string::npos);
    v1::ErrorResponse error;
    ASSERT_EQ(proto::ParseJson(reply.body, &error), "") << reply.body;
    EXPECT_EQ(error.error().code(), code) << reply.body;
    EXPECT_FALSE(error.error().message().empty()) << reply.body;
  }

  std::unique_ptr<AgentProcess> agent_;
  std::unique_ptr<ctl::HttpClient> client_;
};

TEST_F(AgentApiTest, HealthReportsTheTerminal) {
  auto reply = Call(verb::get, "/v1/health");
  ASSERT_EQ(reply.status, 200u);
  auto health = Parse<v1::HealthResponse>(reply);
  EXPECT_EQ(health.status(), "ok");
  EXPECT_EQ(health.store_id(), "store-7");
  EXPECT_EQ(health.terminal_id(), "till-3");
  EXPECT_FALSE(health.version().empty());
  EXPECT_EQ(health.pending_events(), 0);
}

TEST_F(AgentApiTest, EnrolThenLookupFindsTheMember) {
  const std::string card = Card(1);
  auto enrolled = Enrol(card, "Ana Garcia");
  EXPECT_FALSE(enrolled.member().member_id().empty());
  EXPECT_EQ(enrolled.member().display_name(), "Ana Garcia");
  EXPECT_EQ(enrolled.member().points_balance(), 0);
  EXPECT_EQ(enrolled.member().tier(), "Member");  // the default programme's base tier

  auto found = Lookup(card);
  EXPECT_EQ(found.member().member_id(), enrolled.member().member_id());
  EXPECT_EQ(found.member().display_name(), "Ana Garcia");

  // The card in the URL is percent-decoded; the service removes the spaces.
  const std::string spaced = card.substr(0, 4) + "%20" + card.substr(4, 4) + "%20" + card.substr(8);
  auto again = Call(verb::get, "/v1/members/" + spaced);
  ASSERT_EQ(again.status, 200u) << again.body;
  EXPECT_EQ(Parse<v1::MemberResponse>(again).member().member_id(), enrolled.member().member_id());
  // The response never echoes the card number.
  EXPECT_EQ(again.body.find(card), std::string::npos);
}

TEST_F(AgentApiTest, EnrollingACardTwiceIsAConflictAndChangesNothing) {
  const std::string card = Card(2);
  Enrol(card);
  const std::string before = Snapshot(card);
  v1::EnrolRequest req;
  req.set_card(card);
  req.set_display_name("Someone Else");
  ExpectError(Post("/v1/members", req), 409, "already_enrolled");
  EXPECT_EQ(Snapshot(card), before);
}

TEST_F(AgentApiTest, QuoteChangesNothing) {
  const std::string card = Card(3);
  Enrol(card);
  const std::string before = Snapshot(card);
  v1::QuoteRequest req;
  req.set_card(card);
  *req.add_lines() = Line("COF-1", "Coffee", 4, 350);
  auto reply = Post("/v1/checkout/quote", req);
  ASSERT_EQ(reply.status, 200u) << reply.body;
  auto quote = Parse<v1::QuoteResponse>(reply);
  EXPECT_EQ(quote.subtotal(), 1400);
  EXPECT_EQ(quote.total(), 1400);
  EXPECT_EQ(quote.points_earned(), 14);  // 1 point per EUR 1.00, rounded down
  EXPECT_FALSE(quote.explanation().empty());
  EXPECT_EQ(Snapshot(card), before);
}

TEST_F(AgentApiTest, CommitThenLookupShowsTheNewBalance) {
  const std::string card = Card(4);
  Enrol(card);
  auto commit = Commit(CommitRequest(card, "txn-1"));
  EXPECT_EQ(commit.pos_txn_id(), "txn-1");
  EXPECT_EQ(commit.subtotal(), 3400);
  EXPECT_EQ(commit.points_earned(), 34);
  EXPECT_EQ(commit.points_balance(), 34);
  EXPECT_FALSE(commit.event_ids().empty());
  EXPECT_EQ(Lookup(card).member().points_balance(), 34);
}

TEST_F(AgentApiTest, CommitReplayWithTheSamePosTxnIdReturnsTheSameResult) {
  const std::string card = Card(5);
  Enrol(card);
  const auto req = CommitRequest(card, "txn-replay");
  auto first = Post("/v1/checkout/commit", req);
  ASSERT_EQ(first.status, 200u) << first.body;
  const std::string after_first = Snapshot(card);
  auto second = Post("/v1/checkout/commit", req);
  ASSERT_EQ(second.status, 200u) << second.body;
  EXPECT_EQ(second.body, first.body);
  EXPECT_EQ(Snapshot(card), after_first);
}

TEST_F(AgentApiTest, CommitReusingAPosTxnIdForAnotherBasketIsAConflict) {
  const std::string card = Card(6);
  Enrol(card);
  Commit(CommitRequest(card, "txn-dup"));
  const std::string before = Snapshot(card);
  auto other = CommitRequest(card, "txn-dup");
  other.mutable_lines(0)->set_quantity(5);
  ExpectError(Post("/v1/checkout/commit", other), 409, "conflict");
  EXPECT_EQ(Snapshot(card), before);
}

TEST_F(AgentApiTest, VoidOfAWholeTransactionTakesItsPointsBack) {
  const std::string card = Card(7);
  Enrol(card);
  auto commit = Commit(CommitRequest(card, "txn-void"));
  ASSERT_EQ(commit.points_balance(), 34);
  v1::VoidRequest req;
  req.set_pos_txn_id("txn-void");
  auto reply = Post("/v1/checkout/void", req);
  ASSERT_EQ(reply.status, 200u) << reply.body;
  auto v = Parse<v1::VoidResponse>(reply);
  EXPECT_TRUE(v.complete());
  EXPECT_EQ(v.points_reversed(), 34);
  EXPECT_EQ(v.refund(), 3400);
  EXPECT_EQ(v.points_balance(), 0);
  EXPECT_EQ(Lookup(card).member().points_balance(), 0);

  // A second void of a fully reversed transaction changes nothing.
  const std::string before = Snapshot(card);
  v1::VoidRequest again;
  again.set_pos_txn_id("txn-void");
  again.set_reversal_id("another-void");
  ExpectError(Post("/v1/checkout/void", again), 409, "already_reversed");
  EXPECT_EQ(Snapshot(card), before);
}

TEST_F(AgentApiTest, PartialReturnsReverseTheirLinesUntilComplete) {
  const std::string card = Card(8);
  Enrol(card);
  Commit(CommitRequest(card, "txn-ret"));  // 4 x 3.50 coffee (14 pts), 2 x 10.00 bread (20 pts)

  v1::VoidRequest first;
  first.set_pos_txn_id("txn-ret");
  first.set_reversal_id("ret-1");
  auto* ret = first.add_lines();
  ret->set_line_index(1);
  ret->set_quantity(1);
  auto reply = Post("/v1/checkout/void", first);
  ASSERT_EQ(reply.status, 200u) << reply.body;
  auto v1r = Parse<v1::VoidResponse>(reply);
  EXPECT_FALSE(v1r.complete());
  EXPECT_EQ(v1r.refund(), 1000);
  EXPECT_EQ(v1r.points_reversed(), 10);
  EXPECT_EQ(v1r.points_balance(), 24);

  // The same reversal id again is a replay, not a second return.
  auto replay = Post("/v1/checkout/void", first);
  ASSERT_EQ(replay.status, 200u) << replay.body;
  EXPECT_EQ(Parse<v1::VoidResponse>(replay).points_balance(), 24);
  EXPECT_EQ(Lookup(card).member().points_balance(), 24);

  // Returning more than is left of a line is refused and changes nothing.
  const std::string before = Snapshot(card);
  v1::VoidRequest too_many;
  too_many.set_pos_txn_id("txn-ret");
  too_many.set_reversal_id("ret-x");
  auto* r2 = too_many.add_lines();
  r2->set_line_index(1);
  r2->set_quantity(2);
  auto refused = Post("/v1/checkout/void", too_many);
  EXPECT_GE(refused.status, 400u) << refused.body;
  EXPECT_LT(refused.status, 500u) << refused.body;
  EXPECT_EQ(Snapshot(card), before);

  // Voiding the rest completes the transaction.
  v1::VoidRequest rest;
  rest.set_pos_txn_id("txn-ret");
  rest.set_reversal_id("ret-2");
  auto done = Post("/v1/checkout/void", rest);
  ASSERT_EQ(done.status, 200u) << done.body;
  auto v2 = Parse<v1::VoidResponse>(done);
  EXPECT_TRUE(v2.complete());
  EXPECT_EQ(v2.points_balance(), 0);
}

// The agent names reversals sent without a reversal_id "<pos_txn_id>:void"
// and "<pos_txn_id>:return:<n>". A POS that picked such a name for a reversal
// of its own would make the next id-less return replay it (recording
// nothing) or the whole void answer 409, so those names are only accepted
// back as retries.
TEST_F(AgentApiTest, ReversalNamesTheAgentGivesCanBeRetriedButNotPicked) {
  const std::string card = Card(18);
  Enrol(card);
  Commit(CommitRequest(card, "txn-names"));  // 4 x 3.50 coffee (14 pts), 2 x 10.00 bread (20 pts)
  auto return_one = [](const std::string& reversal_id) {
    v1::VoidRequest req;
    req.set_pos_txn_id("txn-names");
    req.set_reversal_id(reversal_id);
    auto* line = req.add_lines();
    line->set_line_index(1);
    line->set_quantity(1);
    return req;
  };

  const std::string before = Snapshot(card);
  for (const std::string picked :
       {"txn-names:return:1", "txn-names:void", "other:void", "other:return:7"}) {
    ExpectError(Post("/v1/checkout/void", return_one(picked)), 400, "invalid_request");
  }
  EXPECT_EQ(Snapshot(card), before);

  // Two id-less returns of one bread are two returns, named in turn.
  auto first = Post("/v1/checkout/void", return_one(""));
  ASSERT_EQ(first.status, 200u) << first.body;
  EXPECT_EQ(Parse<v1::VoidResponse>(first).reversal_id(), "txn-names:return:1");
  EXPECT_EQ(Parse<v1::VoidResponse>(first).points_balance(), 24);
  auto second = Post("/v1/checkout/void", return_one(""));
  ASSERT_EQ(second.status, 200u) << second.body;
  EXPECT_EQ(Parse<v1::VoidResponse>(second).reversal_id(), "txn-names:return:2");
  EXPECT_EQ(Parse<v1::VoidResponse>(second).points_balance(), 14);

  // Sent back, a name the agent gave is a retry of that return.
  auto retry = Post("/v1/checkout/void", return_one("txn-names:return:2"));
  ASSERT_EQ(retry.status, 200u) << retry.body;
  EXPECT_EQ(retry.body, second.body);
  EXPECT_EQ(Lookup(card).member().points_balance(), 14);
  v1::VoidRequest changed = return_one("txn-names:return:2");
  changed.mutable_lines(0)->set_line_index(0);
  ExpectError(Post("/v1/checkout/void", changed), 409, "conflict");

  // The whole void keeps its name, with or without it in the request.
  v1::VoidRequest whole;
  whole.set_pos_txn_id("txn-names");
  auto voided = Post("/v1/checkout/void", whole);
  ASSERT_EQ(voided.status, 200u) << voided.body;
  EXPECT_EQ(Parse<v1::VoidResponse>(voided).reversal_id(), "txn-names:void");
  EXPECT_EQ(Parse<v1::VoidResponse>(voided).points_balance(), 0);
  whole.set_reversal_id("txn-names:void");
  auto again = Post("/v1/checkout/void", whole);
  ASSERT_EQ(again.status, 200u) << again.body;
  EXPECT_EQ(again.body, voided.body);
}

TEST_F(AgentApiTest, RedemptionUpToTheBalanceSucceedsAndBeyondItIsRefused) {
  const std::string card = Card(9);
  Enrol(card);
  Commit(CommitRequest(card, "txn-earn"));  // 34 points
  v1::RedeemRequest req;
  req.set_card(card);
  req.set_points(34);
  req.set_redemption_id("red-1");
  auto reply = Post("/v1/redemptions", req);
  ASSERT_EQ(reply.status, 200u) << reply.body;
  auto r = Parse<v1::RedeemResponse>(reply);
  EXPECT_EQ(r.points(), 34);
  EXPECT_EQ(r.points_balance(), 0);
  EXPECT_EQ(r.value(), 34);  // 100 points are worth 1.00
  EXPECT_EQ(Lookup(card).member().points_balance(), 0);

  // Idempotent on redemption_id: a retry gets the same answer and spends
  // nothing; the same id for another redemption is a conflict.
  const std::string before = Snapshot(card);
  auto retry = Post("/v1/redemptions", req);
  ASSERT_EQ(retry.status, 200u) << retry.body;
  EXPECT_EQ(retry.body, reply.body);
  v1::RedeemRequest other = req;
  other.set_points(1);
  ExpectError(Post("/v1/redemptions", other), 409, "conflict");
  EXPECT_EQ(Snapshot(card), before);

  v1::RedeemRequest more;
  more.set_card(card);
  more.set_points(1);
  ExpectError(Post("/v1/redemptions", more), 409, "insufficient_points");
  EXPECT_EQ(Snapshot(card), before);
}

TEST_F(AgentApiTest, MetricsCountRequestsAndPendingEvents) {
  Call(verb::get, "/v1/health");
  Call(verb::get, "/v1/nope");
  auto reply = Call(verb::get, "/metrics");
  ASSERT_EQ(reply.status, 200u);
  EXPECT_NE(reply.content_type.find("text/plain"), std::string::npos);
  EXPECT_NE(reply.body.find(R"(loyalty_http_requests_total{route="/v1/health",status="200"} 1)"),
            std::string::npos)
      << reply.body;
  EXPECT_NE(reply.body.find(R"(loyalty_http_requests_total{route="unmatched",status="404"} 1)"),
            std::string::npos)
      << reply.body;
  EXPECT_NE(reply.body.find("loyalty_http_request_duration_seconds_bucket{"), std::string::npos);
  EXPECT_NE(reply.body.find("\nloyalty_pending_events 0\n"), std::string::npos) << reply.body;
}

TEST_F(AgentApiTest, ConnectionsAreKeptAlive) {
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Call(verb::get, "/v1/health").status, 200u);
  EXPECT_EQ(client_->connections_opened(), 1);
}

TEST_F(AgentApiTest, SigtermStopsTheAgentCleanly) {
  ASSERT_EQ(Call(verb::get, "/v1/health").status, 200u);
  EXPECT_EQ(agent_->Terminate(), 0) << agent_->Stderr();
}

// ------------------------------------------------------------- bad input --

struct PostEndpoint {
  const char* path;
  const char* valid_json;  // a well-formed body for the card "%CARD%"
};

constexpr PostEndpoint kPostEndpoints[] = {
    {"/v1/members", R"({"card":"%CARD%","display_name":"New Person"})"},
    {"/v1/checkout/quote",
     R"({"card":"%CARD%","lines":[{"sku":"A","category":"C","quantity":1,"unit_price":100}]})"},
    {"/v1/checkout/commit",
     R"({"pos_txn_id":"bad-1","card":"%CARD%","lines":[{"sku":"A","category":"C","quantity":1,"unit_price":100}]})"},
    {"/v1/checkout/void", R"({"pos_txn_id":"never-committed"})"},
    {"/v1/redemptions", R"({"card":"%CARD%","points":1})"},
};

std::string WithCard(std::string json, const std::string& card) {
  const std::string key = "%CARD%";
  if (auto pos = json.find(key); pos != std::string::npos) json.replace(pos, key.size(), card);
  return json;
}

TEST_F(AgentApiTest, BadInputAtEveryPostEndpointIsRefusedAndChangesNothing) {
  const std::string card = Card(20);
  Enrol(card);
  Commit(CommitRequest(card, "txn-base"));
  const std::string before = Snapshot(card);

  for (const PostEndpoint& ep : kPostEndpoints) {
    SCOPED_TRACE(ep.path);
    const std::string valid = WithCard(ep.valid_json, card);
    // Malformed JSON.
    ExpectError(Call(verb::post, ep.path, valid.substr(0, valid.size() / 2)), 400,
                "invalid_request");
    ExpectError(Call(verb::post, ep.path, "not json at all"), 400, "invalid_request");
    ExpectError(Call(verb::post, ep.path, ""), 400, "invalid_request");
    ExpectError(Call(verb::post, ep.path, "[]"), 400, "invalid_request");
    // Unknown field.
    ExpectError(Call(verb::post, ep.path, "{\"surprise\":1," + valid.substr(1)), 400,
                "invalid_request");
    // Wrong type.
    ExpectError(Call(verb::post, ep.path, R"({"card":{"nested":true}})"), 400, "invalid_request");
    // Oversize body (the default limit is 64 KiB).
    const std::string huge = "{\"card\":\"" + std::string(70'000, '1') + "\"}";
    auto big = client_->Call(verb::post, ep.path, huge);
    ASSERT_TRUE(big.ok()) << big.error().message;
    ExpectError(*big, 413, "too_large");
    // Wrong method, answered with the one the path accepts.
    auto wrong = Call(verb::get, ep.path);
    ExpectError(wrong, 405, "method_not_allowed");
    EXPECT_EQ(wrong.allow, "POST");
    ExpectError(Call(verb::put, ep.path, valid), 405, "method_not_allowed");
    ExpectError(Call(verb::delete_, ep.path), 405, "method_not_allowed");
  }
  EXPECT_EQ(Snapshot(card), before);
}

TEST_F(AgentApiTest, BasketCodesTooLongOrWithControlCharactersAreRefused) {
  const std::string card = Card(19);
  Enrol(card);
  const std::string before = Snapshot(card);
  const std::string long_sku(129, 'S');
  for (const std::string path : {"/v1/checkout/quote", "/v1/checkout/commit"}) {
    SCOPED_TRACE(path);
    const std::string head = std::string("{") +
                             (path.ends_with("commit") ? R"("pos_txn_id":"bad-code",)" : "") +
                             R"("card":")" + card + R"(","lines":[)";
    auto refused = [&](const std::string& line, const std::string& why) {
      auto reply = Call(verb::post, path, head + line + "]}");
      ExpectError(reply, 400, "invalid_request");
      EXPECT_NE(reply.body.find(why), std::string::npos) << reply.body;
    };
    refused(R"({"sku":")" + long_sku + R"(","category":"C","quantity":1,"unit_price":100})",
            "sku longer than 128 bytes");
    refused(R"({"sku":"A\u0000B","category":"C","quantity":1,"unit_price":100})",
            "control characters in its sku");
    refused(R"({"sku":"A","category":"Caf\u00e9\n","quantity":1,"unit_price":100})",
            "control characters in its category");
  }
  EXPECT_EQ(Snapshot(card), before);
}

TEST_F(AgentApiTest, BadAndUnknownCardsAtEveryCardEndpoint) {
  const std::string card = Card(21);
  Enrol(card);
  Commit(CommitRequest(card, "txn-base"));
  const std::string before = Snapshot(card);

  for (const PostEndpoint& ep : kPostEndpoints) {
    if (std::string(ep.valid_json).find("%CARD%") == std::string::npos) continue;
    SCOPED_TRACE(ep.path);
    ExpectError(Call(verb::post, ep.path, WithCard(ep.valid_json, BadLuhnCard(22))), 400,
                "invalid_card");
    ExpectError(Call(verb::post, ep.path, WithCard(ep.valid_json, "12ab")), 400, "invalid_card");
    ExpectError(Call(verb::post, ep.path, WithCard(ep.valid_json, "")), 400, "invalid_card");
    if (std::string(ep.path) != "/v1/members") {
      ExpectError(Call(verb::post, ep.path, WithCard(ep.valid_json, Card(23))), 404,
                  "unknown_card");
    }
  }
  // GET /v1/members/{card}.
  ExpectError(Call(verb::get, "/v1/members/" + BadLuhnCard(22)), 400, "invalid_card");
  ExpectError(Call(verb::get, "/v1/members/abc"), 400, "invalid_card");
  ExpectError(Call(verb::get, "/v1/members/%zz"), 400, "invalid_card");
  ExpectError(Call(verb::get, "/v1/members/" + Card(23)), 404, "unknown_card");
  ExpectError(Call(verb::post, "/v1/members/" + card, "{}"), 405, "method_not_allowed");
  ExpectError(Call(verb::get, "/v1/members/" + card + "/extra"), 404, "not_found");

  EXPECT_EQ(Snapshot(card), before);
  // The agent still has only the one member's events.
  EXPECT_EQ(Lookup(card).member().points_balance(), 34);
}

TEST_F(AgentApiTest, VoidOfAnUnknownTransactionIsNotFound) {
  const std::string card = Card(24);
  Enrol(card);
  const std::string before = Snapshot(card);
  v1::VoidRequest req;
  req.set_pos_txn_id("no-such-txn");
  ExpectError(Post("/v1/checkout/void", req), 404, "not_found");
  EXPECT_EQ(Snapshot(card), before);
}

TEST_F(AgentApiTest, UnknownRoutesAndMethodsOnGetEndpoints) {
  const std::string card = Card(25);
  Enrol(card);
  const std::string before = Snapshot(card);
  ExpectError(Call(verb::get, "/"), 404, "not_found");
  ExpectError(Call(verb::get, "/v1"), 404, "not_found");
  ExpectError(Call(verb::post, "/v1/checkout/refund", "{}"), 404, "not_found");
  ExpectError(Call(verb::get, "/v1/health/"), 404, "not_found");
  auto health = Call(verb::post, "/v1/health", "{}");
  ExpectError(health, 405, "method_not_allowed");
  EXPECT_EQ(health.allow, "GET");
  ExpectError(Call(verb::post, "/metrics", "{}"), 405, "method_not_allowed");
  // A query string does not change the route.
  EXPECT_EQ(Call(verb::get, "/v1/health?verbose=1").status, 200u);
  EXPECT_EQ(Snapshot(card), before);
}

TEST_F(AgentApiTest, TheAgentSurvivesGarbageOnTheWire) {
  const std::string card = Card(26);
  Enrol(card);
  const std::string before = Snapshot(card);
  // A second client that sends JSON with odd bytes; the agent must answer,
  // not crash.
  const std::string odd[] = {
      std::string("{\"card\":\"\0\",\"display_name\":\"x\"}",
                  sizeof("{\"card\":\"\0\",\"display_name\":\"x\"}") - 1),
      "{\"card\":\"\xff\xfe\",\"display_name\":\"x\"}",
      "{\"card\":\"" + card + "\",\"points\":-5}",
      "{\"card\":\"" + card + "\",\"points\":9223372036854775807}",
      "{\"card\":\"" + card + "\",\"points\":1e400}",
      std::string(10'000, '['),
  };
  for (const std::string& body : odd) {
    auto reply = client_->Call(verb::post, "/v1/redemptions", body);
    ASSERT_TRUE(reply.ok()) << reply.error().message;
    EXPECT_GE(reply->status, 400u) << reply->body;
    EXPECT_LT(reply->status, 500u) << reply->body;
  }
  EXPECT_EQ(Snapshot(card), before);
}

// ------------------------------------------------------------------ demo --

TEST(AgentDemoTest, DemoSeedsMembersOnceAndLogsTheirCards) {
  std::string error;
  auto agent = AgentProcess::Start({"--demo"}, &error);
  ASSERT_TRUE(agent) << error;
  const std::string log = agent->Stderr();
  const auto at = log.find("demo member: ");
  ASSERT_NE(at, std::string::npos) << log;
  const auto card_at = log.find("card ", at) + 5;
  const std::string card = log.substr(card_at, log.find('\n', card_at) - card_at);
  ASSERT_TRUE(core::HasValidLuhn(card)) << card;

  ctl::HttpClient client(*ctl::ParseUrl(agent->url()));
  auto reply = client.Call(verb::get, "/v1/members/" + card);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->status, 200u) << reply->body;
  auto health = client.Call(verb::get, "/v1/health");
  ASSERT_TRUE(health.ok());
  v1::HealthResponse h;
  ASSERT_EQ(proto::ParseJson(health->body, &h), "");
  EXPECT_GT(h.pending_events(), 0);
  EXPECT_EQ(agent->Terminate(), 0);
}

TEST(AgentConfigProcessTest, BadConfigurationExitsWithCode2AndNamesTheOption) {
  loyalty::agent_test::TempDir dir;
  const std::string agent = loyalty::agent_test::AgentBinary();
  const std::string data = dir.path() + "/data";
  struct Case {
    std::vector<std::string> args;
    std::string option;
  } cases[] = {
      {{agent}, "--data-dir"},
      {{agent, "--data-dir", data, "--listen", "nowhere"}, "--listen"},
      {{agent, "--data-dir", data, "--listen", "127.0.0.1:70000"}, "--listen"},
      {{agent, "--data-dir", data, "--io-threads", "0"}, "--io-threads"},
      {{agent, "--data-dir", data, "--io-threads", "many"}, "io-threads"},
      {{agent, "--data-dir", data, "--no-such-flag"}, "no-such-flag"},
      {{agent, "--data-dir", data, "--programme", dir.path() + "/missing.json"}, "--programme"},
      {{agent, "--data-dir", data, "--config", dir.path() + "/missing.conf"}, "--config"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.option);
    auto r = loyalty::agent_test::RunProcess(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(c.option), std::string::npos) << r.err;
    // One line.
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
}  // namespace loyalty::agent

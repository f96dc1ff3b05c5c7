// loyalty-server as a real process: store agents sync over mutual TLS, head
// office uses the admin API and `loyaltyctl admin`.
#include <fstream>

#include "core/card.h"
#include "loyalty/v1/admin.pb.h"
#include "loyalty/v1/segments.pb.h"
#include "proto/json.h"
#include "tests/server/server_fixture.h"
#include "tests/server/test_events.h"

namespace loyalty::server::testing {
namespace {

v1::Frame Upload(uint64_t batch_id, std::vector<v1::Event> events) {
  v1::Frame f;
  f.mutable_upload_batch()->set_batch_id(batch_id);
  for (auto& e : events) *f.mutable_upload_batch()->add_events() = std::move(e);
  return f;
}

v1::Frame ChangesAfter(uint64_t after, uint32_t max) {
  v1::Frame f;
  f.mutable_changes_request()->set_after_version(after);
  f.mutable_changes_request()->set_max_changes(max);
  return f;
}

std::string CardNumber() {
  std::string payload = "603599000000011";
  payload.push_back(core::LuhnCheckDigit(payload));
  return payload;
}

std::string CardHashOf(const std::string& card) {
  return core::CardHash(std::string(32, 'k'), card);
}

template <typename Message>
Message ParseAs(const std::string& json) {
  Message m;
  EXPECT_EQ(proto::ParseJson(json, &m), "") << json;
  return m;
}

TEST_F(ServerProcessTest, UploadIsAcknowledgedAndAResendIsNotCountedTwice) {
  auto client = ConnectStore();
  ASSERT_TRUE(client->WaitOpen());
  const auto batch =
      Upload(7, {Enrol("S1", 1, "p-1", CardHashOf(CardNumber())), Purchase("S1", 2, "p-1", 40)});
  auto ack = client->Call(batch);
  ASSERT_TRUE(ack && ack->has_upload_ack());
  EXPECT_EQ(ack->upload_ack().batch_id(), 7u);
  EXPECT_EQ(ack->upload_ack().acknowledged_size(), 2);
  EXPECT_EQ(ack->upload_ack().rejected_size(), 0);

  auto again = client->Call(batch);
  ASSERT_TRUE(again && again->has_upload_ack());
  EXPECT_EQ(again->upload_ack().acknowledged_size(), 2);

  auto admin = Admin();
  auto reply = admin->Call("GET", "/v1/admin/members/p-1");
  ASSERT_TRUE(reply.ok());
  ASSERT_EQ(reply->status, 200u) << reply->body;
  auto member = ParseAs<v1::AdminMemberResponse>(reply->body);
  EXPECT_EQ(member.member().points_balance(), 40);
  EXPECT_EQ(member.history_size(), 2);

  // The same member by card number (hashed with the bundle's card-hash.key).
  auto by_card = admin->Call("GET", "/v1/admin/members/" + CardNumber());
  ASSERT_TRUE(by_card.ok());
  ASSERT_EQ(by_card->status, 200u) << by_card->body;
  EXPECT_EQ(ParseAs<v1::AdminMemberResponse>(by_card->body).member().member_id(), "p-1");

  auto stores = admin->Call("GET", "/v1/admin/stores");
  ASSERT_TRUE(stores.ok());
  auto list = ParseAs<v1::StoreList>(stores->body);
  ASSERT_EQ(list.stores_size(), 1);
  EXPECT_EQ(list.stores(0).store_id(), "S1");
  EXPECT_TRUE(list.stores(0).connected());
  EXPECT_EQ(list.stores(0).events_received(), 2);
  ASSERT_EQ(list.stores(0).terminals_size(), 1);
  EXPECT_EQ(list.stores(0).terminals(0).last_seq(), 2u);
}

TEST_F(ServerProcessTest, HealthAnswersFromTheDatabaseThread) {
  auto client = ConnectStore();
  ASSERT_TRUE(client->WaitOpen());
  ASSERT_TRUE(client->Call(Upload(1, {Enrol("S1", 1, "p-1", CardHashOf(CardNumber()))})));
  auto admin = Admin();
  auto reply = admin->Call("GET", "/v1/admin/health");
  ASSERT_TRUE(reply.ok());
  ASSERT_EQ(reply->status, 200u) << reply->body;
  auto health = ParseAs<v1::ServerHealth>(reply->body);
  EXPECT_EQ(health.status(), "ok");
  EXPECT_GE(health.feed_version(), 1u) << "the enrolment gave the member a version";
  EXPECT_EQ(health.connected_agents(), 1);
  EXPECT_TRUE(health.problem().empty());
  EXPECT_EQ(admin->Call("POST", "/v1/admin/health")->status, 405u);
  EXPECT_EQ(admin->Call("GET", "/v1/admin/health/x")->status, 404u);
}

TEST_F(ServerProcessTest, ChangesArePulledInPages) {
  auto client = ConnectStore();
  ASSERT_TRUE(client->WaitOpen());
  auto ack =
      client->Call(Upload(1, {Enrol("S1", 1, "p-1", HashOf(1)), Enrol("S1", 2, "p-2", HashOf(2)),
                              Enrol("S1", 3, "p-3", HashOf(3))}));
  ASSERT_TRUE(ack && ack->has_upload_ack());
  auto first = client->Call(ChangesAfter(0, 2));
  ASSERT_TRUE(first && first->has_changes_page());
  EXPECT_EQ(first->changes_page().changes_size(), 2);
  EXPECT_TRUE(first->changes_page().has_more());
  auto second = client->Call(ChangesAfter(first->changes_page().cursor(), 2));
  ASSERT_TRUE(second && second->has_changes_page());
  EXPECT_EQ(second->changes_page().changes_size(), 1);
  EXPECT_FALSE(second->changes_page().has_more());
  EXPECT_EQ(second->changes_page().cursor(), 3u);
  EXPECT_EQ(second->changes_page().changes(0).member().member_id(), "p-3");
}

TEST_F(ServerProcessTest, ConnectedAgentIsPushedAPublishedPromotion) {
  auto client = ConnectStore();
  ASSERT_TRUE(client->WaitOpen());
  auto admin = Admin();
  auto reply = admin->Call("PUT", "/v1/admin/promotions/coffee-x2",
                           R"({"name":"Double coffee","points_multiplier_pct":200,
                               "scope":{"kind":"CATEGORY","value":"Coffee"}})");
  ASSERT_TRUE(reply.ok());
  ASSERT_EQ(reply->status, 200u) << reply->body;
  const uint64_t version = ParseAs<v1::PublishResponse>(reply->body).feed_version();

  auto push = client->WaitPush();
  ASSERT_TRUE(push.has_value());
  EXPECT_EQ(push->correlation_id(), 0u);
  EXPECT_GE(push->push().latest_version(), version);
  auto page = client->Call(ChangesAfter(0, 0));
  ASSERT_TRUE(page && page->has_changes_page());
  ASSERT_EQ(page->changes_page().changes_size(), 1);
  EXPECT_EQ(page->changes_page().changes(0).offer().id(), "coffee-x2");

  auto retired = admin->Call("DELETE", "/v1/admin/promotions/coffee-x2");
  ASSERT_TRUE(retired.ok());
  EXPECT_EQ(retired->status, 200u);
  ASSERT_TRUE(client->WaitPush().has_value());
}

TEST_F(ServerProcessTest, AdminApiRefusesBadInputAndChangesNothing) {
  auto admin = Admin();
  auto bad_offer = admin->Call("PUT", "/v1/admin/promotions/o-1", R"({"name":"no reward"})");
  ASSERT_TRUE(bad_offer.ok());
  EXPECT_EQ(bad_offer->status, 400u);
  EXPECT_NE(bad_offer->body.find("invalid_offer"), std::string::npos) << bad_offer->body;
  auto not_json = admin->Call("PUT", "/v1/admin/promotions/o-1", "{");
  EXPECT_EQ(not_json->status, 400u);
  auto mismatch =
      admin->Call("PUT", "/v1/admin/promotions/o-1", R"({"id":"o-2","bonus_points":5})");
  EXPECT_EQ(mismatch->status, 400u);
  auto list = admin->Call("GET", "/v1/admin/promotions");
  EXPECT_EQ(ParseAs<v1::OfferList>(list->body).offers_size(), 0);

  auto programme = admin->Call("GET", "/v1/admin/programme");
  ASSERT_EQ(programme->status, 200u);
  auto p = ParseAs<v1::Programme>(programme->body);
  auto stale = admin->Call("PUT", "/v1/admin/programme", proto::ToJson(p));
  EXPECT_EQ(stale->status, 409u) << stale->body;
  p.set_version(p.version() + 1);
  auto newer = admin->Call("PUT", "/v1/admin/programme", proto::ToJson(p));
  EXPECT_EQ(newer->status, 200u) << newer->body;

  EXPECT_EQ(admin->Call("GET", "/v1/admin/members/p-nobody")->status, 404u);
  EXPECT_EQ(admin->Call("GET", "/v1/admin/nothing")->status, 404u);
  EXPECT_EQ(admin->Call("POST", "/v1/admin/stores")->status, 405u);
  auto metrics = admin->Call("GET", "/metrics");
  ASSERT_EQ(metrics->status, 200u);
  EXPECT_NE(metrics->body.find("loyalty_feed_version "), std::string::npos);
  EXPECT_NE(metrics->body.find("loyalty_ingest_batch_seconds_count"), std::string::npos);
}

TEST_F(ServerProcessTest, OverdrawAcrossStoresIsReportedAsAConflict) {
  auto s1 = ConnectStore("store1");
  auto s2 = ConnectStore("store2");
  ASSERT_TRUE(s1->WaitOpen() && s2->WaitOpen());
  ASSERT_TRUE(
      s1->Call(Upload(1, {Enrol("S1", 1, "p-1", HashOf(1)), Purchase("S1", 2, "p-1", 100)})));
  ASSERT_TRUE(s1->Call(Upload(2, {Redeem("S1", 3, "p-1", 80)})));
  ASSERT_TRUE(s2->Call(Upload(1, {Redeem("S2", 1, "p-1", 70)})));
  auto conflicts = Admin()->Call("GET", "/v1/admin/conflicts");
  ASSERT_EQ(conflicts->status, 200u);
  auto list = ParseAs<v1::ConflictList>(conflicts->body);
  ASSERT_EQ(list.conflicts_size(), 1);
  EXPECT_EQ(list.conflicts(0).event_ids_size(), 2);
}

TEST_F(ServerProcessTest, LoyaltyctlAdminPrintsTablesJsonAndExitCodes) {
  const std::string url = "https://127.0.0.1:" + std::to_string(admin_port_);
  const std::string bundle = (tmp() / "admin").string();
  std::string out;
  const std::string offer_file = (tmp() / "offer.json").string();
  std::ofstream(offer_file) << R"({"id":"bonus-5","name":"Five bonus","bonus_points":5})";

  EXPECT_EQ(Ctl({"--url", url, "--tls-dir", bundle, "promotions", "put", offer_file}, &out), 0)
      << out;
  EXPECT_NE(out.find("published bonus-5"), std::string::npos) << out;
  EXPECT_EQ(Ctl({"--url", url, "--tls-dir", bundle, "promotions", "list"}, &out), 0) << out;
  EXPECT_NE(out.find("Five bonus"), std::string::npos) << out;
  EXPECT_EQ(Ctl({"--url", url, "--tls-dir", bundle, "--json", "promotions", "list"}, &out), 0);
  EXPECT_EQ(ParseAs<v1::OfferList>(out).offers(0).id(), "bonus-5");
  EXPECT_EQ(Ctl({"--url", url, "--tls-dir", bundle, "stores"}, &out), 0) << out;
  EXPECT_EQ(Ctl({"--url", url, "--tls-dir", bundle, "programme", "show"}, &out), 0) << out;
  EXPECT_EQ(Ctl({"--url", url, "--tls-dir", bundle, "conflicts"}, &out), 0) << out;
  EXPECT_EQ(Ctl({"--url", url, "--tls-dir", bundle, "members", "lookup", "p-x"}, &out), 1);
  EXPECT_NE(out.find("not_found"), std::string::npos) << out;
  EXPECT_EQ(Ctl({"--url", url, "--tls-dir", bundle, "promotions", "retire", "bonus-5"}, &out), 0);
  EXPECT_EQ(Ctl({"--url", url, "--tls-dir", bundle, "frobnicate"}, &out), 2);
  EXPECT_EQ(Ctl({"--tls-dir", bundle, "stores"}, &out), 2);
  EXPECT_EQ(Ctl({"--url", "https://127.0.0.1:1", "--tls-dir", bundle, "stores"}, &out), 3);
  // The server's certificate names 127.0.0.1: through another name the
  // check fails and says how to fix it; --server-name does.
  const std::string by_name = "https://localhost:" + std::to_string(admin_port_);
  EXPECT_EQ(Ctl({"--url", by_name, "--tls-dir", bundle, "stores"}, &out), 3);
  EXPECT_NE(out.find("does not name \"localhost\"; give --server-name"), std::string::npos) << out;
  EXPECT_EQ(
      Ctl({"--url", by_name, "--server-name", "127.0.0.1", "--tls-dir", bundle, "stores"}, &out), 0)
      << out;
  // A store certificate on the admin port: the server answers 403.
  EXPECT_EQ(Ctl({"--url", url, "--tls-dir", (tmp() / "store1").string(), "stores"}, &out), 1);
  EXPECT_NE(out.find("forbidden_identity"), std::string::npos) << out;
  EXPECT_TRUE(
      LogHas("refused: forbidden_identity: expected an admin certificate, got store \"S1\""))
      << server_->Log();
}

v1::Event VisitOf(const std::string& store, uint64_t seq, const std::string& member) {
  v1::Event e = BaseEvent(store, "till-1", seq, member);
  e.mutable_visit()->set_pos_txn_id("txn-" + store + "-till-1-" + std::to_string(seq + 1));
  return e;
}

// Head office's segmentation commands through the real loyaltyctl process:
// tables for people, --json and --csv for scripts, exit 1 with the server's
// error code for a refused request, and nothing saved when refused.
TEST_F(ServerProcessTest, LoyaltyctlAdminManagesSegmentsPromotionsKpisAndMembers) {
  auto client = ConnectStore();
  ASSERT_TRUE(client->WaitOpen());
  // p-1: one visit with a purchase; p-2: four, so "some-visits" holds p-2 only.
  std::vector<v1::Event> events = {Enrol("S1", 1, "p-1", HashOf(1)), VisitOf("S1", 2, "p-1"),
                                   Purchase("S1", 3, "p-1", 10), Enrol("S1", 4, "p-2", HashOf(2))};
  for (uint64_t seq = 5; seq < 13; seq += 2) {
    events.push_back(VisitOf("S1", seq, "p-2"));
    events.push_back(Purchase("S1", seq + 1, "p-2", 20));
  }
  auto ack = client->Call(Upload(1, events));
  ASSERT_TRUE(ack && ack->has_upload_ack());
  ASSERT_EQ(ack->upload_ack().rejected_size(), 0);

  const std::string url = "https://127.0.0.1:" + std::to_string(admin_port_);
  const std::string bundle = (tmp() / "admin").string();
  auto ctl = [&](std::vector<std::string> args, std::string* out) {
    args.insert(args.begin(), {"--url", url, "--tls-dir", bundle});
    return Ctl(args, out);
  };
  auto file = [&](const std::string& name, const std::string& text) {
    const std::string path = (tmp() / name).string();
    std::ofstream(path) << text;
    return path;
  };
  std::string out;

  // The default segments are listed and shown.
  ASSERT_EQ(ctl({"segments", "list"}, &out), 0) << out;
  EXPECT_NE(out.find("few-visits"), std::string::npos) << out;
  ASSERT_EQ(ctl({"--json", "segments", "list"}, &out), 0) << out;
  EXPECT_GE(ParseAs<v1::SegmentList>(out).segments_size(), 14);
  ASSERT_EQ(ctl({"segments", "show", "some-visits"}, &out), 0) << out;
  EXPECT_NE(out.find("visits_since_enrolment >= 3"), std::string::npos) << out;

  // Preview counts before saving; the definition is not saved by it.
  ASSERT_EQ(ctl({"segments", "preview",
                 file("regulars.json", R"({"id":"regulars","name":"Regulars",)"
                                       R"("expression":"visits_since_enrolment >= 3"})")},
                &out),
            0)
      << out;
  EXPECT_NE(out.find("1 of 2 members"), std::string::npos) << out;
  EXPECT_EQ(ctl({"segments", "show", "regulars"}, &out), 1) << out;
  EXPECT_NE(out.find("not_found"), std::string::npos) << out;

  // A bad expression: the position and reason, and nothing saved.
  const std::string bad = file("bad.json", R"({"id":"bad","name":"Bad","expression":"visits_30d >> 2"})");
  EXPECT_EQ(ctl({"segments", "put", bad}, &out), 1) << out;
  EXPECT_NE(out.find("invalid_segment"), std::string::npos) << out;
  EXPECT_NE(out.find("position "), std::string::npos) << out;
  EXPECT_EQ(ctl({"segments", "preview", bad}, &out), 1) << out;
  EXPECT_EQ(ctl({"segments", "show", "bad"}, &out), 1) << out;
  EXPECT_EQ(ctl({"segments", "put", (tmp() / "missing.json").string()}, &out), 2) << out;

  // "preview" is an ordinary segment id for put, show and delete.
  ASSERT_EQ(ctl({"segments", "put",
                 file("p.json", R"({"id":"preview","name":"Named preview",)"
                                R"("expression":"visits_since_enrolment >= 1"})")},
                &out),
            0)
      << out;
  EXPECT_NE(out.find("saved preview"), std::string::npos) << out;
  ASSERT_EQ(ctl({"segments", "show", "preview"}, &out), 0) << out;
  EXPECT_NE(out.find("Named preview"), std::string::npos) << out;
  ASSERT_EQ(ctl({"segments", "delete", "preview"}, &out), 0) << out;
  EXPECT_EQ(ctl({"segments", "show", "preview"}, &out), 1) << out;

  // A promotion at "some-visits": reach 1 in the preview, then published.
  const std::string promo = file("promo.json", R"({"id":"nudge","name":"Nudge",)"
                                               R"("segment_ids":["some-visits"],"bonus_points":50})");
  ASSERT_EQ(ctl({"promotions", "preview", promo}, &out), 0) << out;
  EXPECT_NE(out.find("nudge: reach 1 members"), std::string::npos) << out;
  ASSERT_EQ(ctl({"--json", "promotions", "preview", promo}, &out), 0) << out;
  EXPECT_EQ(ParseAs<v1::PromotionPreview>(out).reach(), 1);
  EXPECT_EQ(ctl({"promotions", "preview",
                 file("badpromo.json", R"({"id":"x","name":"X","segment_ids":["nope"],)"
                                       R"("bonus_points":5})")},
                &out),
            1)
      << out;
  ASSERT_EQ(ctl({"promotions", "put", promo}, &out), 0) << out;

  // KPIs as a table, JSON and CSV.
  ASSERT_EQ(ctl({"kpis"}, &out), 0) << out;
  EXPECT_NE(out.find("some-visits"), std::string::npos) << out;
  ASSERT_EQ(ctl({"--json", "kpis"}, &out), 0) << out;
  const auto report = ParseAs<v1::KpiReport>(out);
  int64_t some = -1;
  for (const auto& k : report.segments()) {
    if (k.segment_id() == "some-visits") some = k.members();
  }
  EXPECT_EQ(some, 1);
  ASSERT_EQ(report.promotions_size(), 1);
  EXPECT_EQ(report.promotions(0).reach(), 1);
  ASSERT_EQ(ctl({"kpis", "--csv", "--since", "2026-01-01"}, &out), 0) << out;
  EXPECT_NE(out.find("\nsome-visits,1,"), std::string::npos) << out;
  EXPECT_NE(out.find("\nnudge,1,"), std::string::npos) << out;
  EXPECT_EQ(ctl({"kpis", "--since", "yesterday"}, &out), 1) << out;
  EXPECT_NE(out.find("invalid_request"), std::string::npos) << out;

  // Member features, consent and erasure.
  ASSERT_EQ(ctl({"--json", "members", "features", "p-2"}, &out), 0) << out;
  EXPECT_EQ(ParseAs<v1::MemberFeatures>(out).visits_since_enrolment(), 4);
  ASSERT_EQ(ctl({"members", "consent", "p-1",
                 file("consent.json", R"({"consent":true,"age_band":"25-34"})")},
                &out),
            0)
      << out;
  ASSERT_EQ(ctl({"--json", "members", "features", "p-1"}, &out), 0) << out;
  EXPECT_EQ(ParseAs<v1::MemberFeatures>(out).age_band(), "25-34");
  ASSERT_EQ(ctl({"members", "erase", "p-1"}, &out), 0) << out;
  EXPECT_NE(out.find("erased p-1"), std::string::npos) << out;
  EXPECT_EQ(ctl({"members", "features", "p-1"}, &out), 1) << out;
  EXPECT_EQ(ctl({"members", "erase", "p-404"}, &out), 1) << out;
  EXPECT_NE(out.find("not_found"), std::string::npos) << out;
}

TEST_F(ServerProcessTest, BadConfigurationExitsWithStatus2) {
  using ::loyalty::testing::BuiltBinary;
  using ::loyalty::testing::Process;
  const std::string bin = BuiltBinary("server/loyalty-server");
  const std::string data = (tmp() / "data2").string();
  const std::string bundle = (tmp() / "server").string();
  const std::vector<std::vector<std::string>> bad = {
      {bin, "--tls-dir", bundle},                                         // no --data-dir
      {bin, "--data-dir", data, "--tls-dir", bundle, "--listen", "nowhere"},
      {bin, "--data-dir", data, "--tls-dir", bundle, "--crl", (tmp() / "none.pem").string()},
      {bin, "--data-dir", data, "--tls-dir", (tmp() / "store1").string()},  // not a server bundle
      {bin, "--data-dir", data, "--tls-dir", bundle, "--bogus"},
  };
  for (const auto& argv : bad) {
    Process p(argv, (tmp() / "bad.log").string());
    EXPECT_EQ(p.Wait(), 2) << argv.back() << "\n" << p.Log();
  }
}

TEST_F(ServerProcessTest, WithoutAnyCrlTheServerWarnsAndRuns) {
  using ::loyalty::testing::BuiltBinary;
  ::loyalty::testing::Process p(
      {BuiltBinary("server/loyalty-server"), "--data-dir", (tmp() / "data3").string(),
       "--tls-dir", (tmp() / "server").string(), "--listen", "127.0.0.1:0", "--admin-listen",
       "127.0.0.1:0"},
      (tmp() / "nocrl.log").string());
  EXPECT_FALSE(p.WaitForLine("sync listening on ").empty()) << p.Log();
  EXPECT_NE(p.Log().find("WITHOUT revocation checks"), std::string::npos) << p.Log();
  EXPECT_EQ(p.Terminate(), 0);
}

}  // namespace
}  // namespace loyalty::server::testing

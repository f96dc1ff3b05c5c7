// CustomerDisplay with the real Api and CheckoutService: what a page
// receives when it connects and as the cashier looks up, quotes and commits,
// that nothing identifying beyond the display name reaches it, and the page
// files it serves.
#include <utility>  // before Boost.Asio (Boost 1.74)

#include "agent/customer_display.h"

#include <gtest/gtest.h>

#include <future>
#include <mutex>

#include "agent/api.h"
#include "agent/metrics.h"
#include "core/card.h"
#include "loyalty/v1/display.pb.h"
#include "proto/json.h"
#include "tests/agent/agent_process.h"

namespace loyalty::agent {
namespace {

namespace http = boost::beast::http;
namespace v1 = loyalty::v1;
using namespace std::chrono_literals;

// An EventStream that records what is sent on it.
class RecordingStream final : public EventStream {
 public:
  bool Send(std::string event) override {
    std::lock_guard lock(mu_);
    if (ended_) return false;
    sent_.push_back(std::move(event));
    return true;
  }
  void Close() override { End(); }
  void OnClose(std::function<void()> on_close) override {
    std::unique_lock lock(mu_);
    if (!ended_) {
      on_close_ = std::move(on_close);
      return;
    }
    lock.unlock();
    if (on_close) on_close();
  }
  void End() {
    std::function<void()> f;
    {
      std::lock_guard lock(mu_);
      ended_ = true;
      f = std::move(on_close_);
    }
    if (f) f();
  }
  std::vector<std::string> Sent() {
    std::lock_guard lock(mu_);
    return sent_;
  }
  // The data of every event named `name`, in order.
  std::vector<std::string> Data(const std::string& name) {
    std::vector<std::string> out;
    const std::string head = "event: " + name + "\ndata: ";
    for (const std::string& e : Sent()) {
      if (e.rfind(head, 0) == 0) out.push_back(e.substr(head.size(), e.size() - head.size() - 2));
    }
    return out;
  }
  std::vector<v1::DisplayState> States() {
    std::vector<v1::DisplayState> out;
    for (const std::string& data : Data("state")) {
      v1::DisplayState s;
      EXPECT_EQ(proto::ParseJson(data, &s), "") << data;
      out.push_back(s);
    }
    return out;
  }

 private:
  std::mutex mu_;
  bool ended_ = false;
  std::vector<std::string> sent_;
  std::function<void()> on_close_;
};

v1::Offer ParseOffer(const std::string& json) {
  v1::Offer offer;
  EXPECT_EQ(proto::ParseJson(json, &offer), "") << json;
  return offer;
}

class CustomerDisplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServiceOptions options;
    options.data_dir = dir_.path();
    options.card_hash_key = std::string(32, 'k');
    options.offers = std::vector<v1::Offer>{
        ParseOffer(R"({"id":"coffee-double","name":"Double points on coffee","priority":10,
                       "stackable":true,"scope":{"kind":"CATEGORY","value":"Coffee"},
                       "points_multiplier_pct":200})"),
        ParseOffer(R"({"id":"gold-bakery","name":"Gold: 10% off bakery","tiers":["Gold"],
                       "scope":{"kind":"CATEGORY","value":"Bakery"},"percent_off":10})"),
    };
    auto service = OpenCheckoutService(options);
    ASSERT_TRUE(service.ok()) << service.error().message;
    service_ = std::move(*service);
    api_ = std::make_unique<Api>(service_.get(), &metrics_, &hub_);
    std::string payload = "401288888888188";
    card_ = payload + core::LuhnCheckDigit(payload);
  }
  void TearDown() override {
    display_.reset();
    if (service_) service_->Stop();
  }

  void MakeDisplay(CustomerDisplayOptions options = {}) {
    display_ = std::make_unique<CustomerDisplay>(service_.get(), &hub_, std::move(options));
  }

  unsigned Call(http::verb method, const std::string& target, const std::string& body = "") {
    HttpRequest req{method, target, 11};
    req.body() = body;
    req.prepare_payload();
    std::promise<unsigned> promise;
    auto future = promise.get_future();
    auto once = std::make_shared<std::once_flag>();
    api_->Handle(req, [&promise, once](unsigned status, std::string, std::string, std::string) {
      std::call_once(*once, [&] { promise.set_value(status); });
    });
    return future.get();
  }

  // Enrols Ana, looks her up, quotes and commits one coffee.
  void Checkout() {
    ASSERT_EQ(Call(http::verb::post, "/v1/members",
                   R"({"card":")" + card_ + R"(","display_name":"Ana","language":"pl"})"),
              201u);
    ASSERT_EQ(Call(http::verb::get, "/v1/members/" + card_), 200u);
    const std::string lines =
        R"("lines":[{"sku":"C1","category":"Coffee","quantity":2,"unit_price":450}])";
    ASSERT_EQ(
        Call(http::verb::post, "/v1/checkout/quote", R"({"card":")" + card_ + "\"," + lines + "}"),
        200u);
    ASSERT_EQ(Call(http::verb::post, "/v1/checkout/commit",
                   R"({"pos_txn_id":"t1","card":")" + card_ + "\"," + lines + "}"),
              200u);
  }

  struct Reply {
    unsigned status = 0;
    std::string body;
    std::string content_type;
    std::string allow;
  };
  Reply Get(const std::string& target, http::verb method = http::verb::get) {
    Reply reply;
    HttpRequest req{method, target, 11};
    display_->Handle(req,
                     [&](unsigned status, std::string body, std::string type, std::string allow) {
                       reply = {status, std::move(body), std::move(type), std::move(allow)};
                     });
    return reply;
  }

  loyalty::agent_test::TempDir dir_;
  std::unique_ptr<CheckoutService> service_;
  Metrics metrics_{Api::RouteNames()};
  DisplayHub hub_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<CustomerDisplay> display_;
  std::string card_;
};

TEST_F(CustomerDisplayTest, ANewPageGetsTheRetryHintTheConfigAndIdle) {
  CustomerDisplayOptions options;
  options.language = "es";
  options.idle_after_thanks = 7s;
  MakeDisplay(options);
  auto stream = std::make_shared<RecordingStream>();
  display_->OpenStream(stream);

  const auto sent = stream->Sent();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0], "retry: 2000\n\n");
  const auto configs = stream->Data("config");
  ASSERT_EQ(configs.size(), 1u);
  v1::DisplayConfig config;
  ASSERT_EQ(proto::ParseJson(configs[0], &config), "");
  EXPECT_EQ(config.currency(), "EUR");
  EXPECT_EQ(config.minor_units(), 100u);
  EXPECT_EQ(config.language(), "es");
  EXPECT_EQ(config.idle_seconds(), 7u);
  EXPECT_FALSE(config.page_version().empty());
  EXPECT_EQ(std::vector<std::string>(config.languages().begin(), config.languages().end()),
            (std::vector<std::string>{"en", "es", "pl"}));
  ASSERT_GE(config.tiers_size(), 2);
  EXPECT_EQ(config.tiers(0), "Member");
  // The idle screen promotes the offers meant for everyone, not Gold's.
  ASSERT_EQ(config.promotions_size(), 1);
  EXPECT_EQ(config.promotions(0).offer_id(), "coffee-double");
  EXPECT_EQ(config.promotions(0).name(), "Double points on coffee");

  const auto states = stream->States();
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].screen(), "idle");
}

TEST_F(CustomerDisplayTest, FollowsLookupQuoteAndCommitWithNothingButNameAndFigures) {
  MakeDisplay();
  auto stream = std::make_shared<RecordingStream>();
  display_->OpenStream(stream);
  Checkout();

  const auto states = stream->States();
  ASSERT_EQ(states.size(), 5u);  // idle, enrolment, lookup, quote, commit
  EXPECT_EQ(states[1].screen(), "member");
  EXPECT_EQ(states[2].screen(), "member");
  const auto& member = states[2].member();
  EXPECT_EQ(member.display_name(), "Ana");
  EXPECT_EQ(member.language(), "pl");
  EXPECT_EQ(member.tier(), "Member");
  EXPECT_EQ(member.points_balance(), 0);
  EXPECT_EQ(member.next_tier().name(), "Silver");
  ASSERT_EQ(states[2].offers_size(), 1);

  const auto& basket = states[3];
  EXPECT_EQ(basket.screen(), "basket");
  EXPECT_EQ(basket.member().display_name(), "Ana");
  EXPECT_EQ(basket.basket().subtotal(), 900);
  EXPECT_EQ(basket.basket().points_earned(), 18);  // 9 points, doubled on coffee
  EXPECT_GT(basket.basket().explanation_size(), 0);

  const auto& thanks = states[4];
  EXPECT_EQ(thanks.screen(), "thanks");
  EXPECT_EQ(thanks.member().display_name(), "Ana");  // from the screens before
  EXPECT_EQ(thanks.member().language(), "pl");
  EXPECT_EQ(thanks.member().points_balance(), 18);
  EXPECT_EQ(thanks.basket().points_earned(), 18);

  // Design invariant 9: no card number and no member id, in any event.
  auto member_id = service_->LookupMember(card_);
  ASSERT_TRUE(member_id.ok());
  for (const std::string& e : stream->Sent()) {
    EXPECT_EQ(e.find(card_.substr(0, 12)), std::string::npos) << e;
    EXPECT_EQ(e.find(member_id->member().member_id()), std::string::npos) << e;
    EXPECT_EQ(e.find("member_id"), std::string::npos) << e;
    EXPECT_EQ(e.find("segment"), std::string::npos) << e;
  }

  // A page connecting now starts from the thank-you screen.
  auto late = std::make_shared<RecordingStream>();
  display_->OpenStream(late);
  ASSERT_EQ(late->States().size(), 1u);
  EXPECT_EQ(late->States()[0].screen(), "thanks");
  EXPECT_EQ(late->States()[0].member().display_name(), "Ana");
}

TEST_F(CustomerDisplayTest, APageConnectingAfterTheTimeoutsStartsIdle) {
  CustomerDisplayOptions options;
  options.idle_after_thanks = 0s;
  options.idle_after_member = 0s;
  MakeDisplay(options);
  Checkout();
  EXPECT_EQ(display_->CurrentState().screen(), "idle");
  EXPECT_FALSE(display_->CurrentState().has_member());
}

TEST_F(CustomerDisplayTest, AClosedStreamGetsNoMoreEvents) {
  MakeDisplay();
  auto stream = std::make_shared<RecordingStream>();
  auto other = std::make_shared<RecordingStream>();
  display_->OpenStream(stream);
  display_->OpenStream(other);
  stream->End();
  ASSERT_EQ(
      Call(http::verb::post, "/v1/members", R"({"card":")" + card_ + R"(","display_name":"Bo"})"),
      201u);
  EXPECT_EQ(stream->States().size(), 1u);
  EXPECT_EQ(other->States().size(), 2u);
  // A stream that ended before it was registered is not kept either.
  auto gone = std::make_shared<RecordingStream>();
  gone->End();
  display_->OpenStream(gone);
  EXPECT_TRUE(gone->Sent().empty());
}

TEST_F(CustomerDisplayTest, ServesThePageAndItsFiles) {
  MakeDisplay();
  EXPECT_TRUE(CustomerDisplay::Serves("/display"));
  EXPECT_TRUE(CustomerDisplay::Serves("/display/app.js"));
  EXPECT_FALSE(CustomerDisplay::Serves("/displayx"));
  EXPECT_FALSE(CustomerDisplay::Serves("/v1/health"));

  for (const std::string target : {"/display", "/display/", "/display/index.html?x=1"}) {
    const Reply page = Get(target);
    EXPECT_EQ(page.status, 200u) << target;
    EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
    EXPECT_NE(page.body.find("/display/app.js"), std::string::npos);
  }
  EXPECT_EQ(Get("/display/app.js").content_type, "text/javascript; charset=utf-8");
  EXPECT_NE(Get("/display/app.js").body.find("EventSource"), std::string::npos);
  EXPECT_EQ(Get("/display/style.css").content_type, "text/css; charset=utf-8");
  const Reply polish = Get("/display/i18n/pl.json");
  EXPECT_EQ(polish.status, 200u);
  EXPECT_EQ(polish.content_type, "application/json");
  EXPECT_NE(polish.body.find("Dziękujemy"), std::string::npos);
  EXPECT_EQ(Get("/display/nope.js").status, 404u);
  EXPECT_EQ(Get("/display/../agent.db").status, 404u);
  const Reply post = Get("/display", http::verb::post);
  EXPECT_EQ(post.status, 405u);
  EXPECT_EQ(post.allow, "GET, HEAD");
}

}  // namespace
}  // namespace loyalty::agent

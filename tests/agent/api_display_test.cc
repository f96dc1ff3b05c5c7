// The Api in process with the real CheckoutService: what it publishes to the
// customer display, and that a card number never reaches the display.
#include <gtest/gtest.h>

#include <future>
#include <mutex>

#include "agent/api.h"
#include "agent/checkout_service.h"
#include "agent/display_hub.h"
#include "agent/metrics.h"
#include "core/card.h"
#include "tests/agent/agent_process.h"

namespace loyalty::agent {
namespace {

namespace http = boost::beast::http;

struct Answer {
  unsigned status = 0;
  std::string body;
};

class ApiDisplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServiceOptions options;
    options.data_dir = dir_.path();
    options.card_hash_key = std::string(32, 'k');
    auto service = OpenCheckoutService(options);
    ASSERT_TRUE(service.ok()) << service.error().message;
    service_ = std::move(*service);
    api_ = std::make_unique<Api>(service_.get(), &metrics_, &hub_);
    hub_.Subscribe([this](const DisplayUpdate& u) {
      std::lock_guard lock(mu_);
      seen_.push_back(u);
    });
    std::string payload = "401288888888188";
    card_ = payload + core::LuhnCheckDigit(payload);
  }
  void TearDown() override {
    if (service_) service_->Stop();
  }

  Answer Call(http::verb method, const std::string& target, const std::string& body = "") {
    HttpRequest req{method, target, 11};
    req.body() = body;
    req.prepare_payload();
    std::promise<Answer> promise;
    auto future = promise.get_future();
    auto once = std::make_shared<std::once_flag>();
    api_->Handle(req, [&promise, once](unsigned status, std::string b, std::string, std::string) {
      std::call_once(*once, [&] { promise.set_value(Answer{status, std::move(b)}); });
    });
    return future.get();
  }

  std::vector<DisplayUpdate> Seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

  loyalty::agent_test::TempDir dir_;
  std::unique_ptr<CheckoutService> service_;
  Metrics metrics_{Api::RouteNames()};
  DisplayHub hub_;
  std::unique_ptr<Api> api_;
  std::string card_;
  std::mutex mu_;
  std::vector<DisplayUpdate> seen_;
};

TEST_F(ApiDisplayTest, PublishesMemberQuoteAndCommitWithoutTheCardNumber) {
  ASSERT_EQ(
      Call(http::verb::post, "/v1/members", R"({"card":")" + card_ + R"(","display_name":"Ana"})")
          .status,
      201u);
  ASSERT_EQ(Call(http::verb::get, "/v1/members/" + card_).status, 200u);
  const std::string lines = R"("lines":[{"sku":"A","category":"C","quantity":1,"unit_price":500}])";
  ASSERT_EQ(
      Call(http::verb::post, "/v1/checkout/quote", R"({"card":")" + card_ + "\"," + lines + "}")
          .status,
      200u);
  ASSERT_EQ(Call(http::verb::post, "/v1/checkout/commit",
                 R"({"pos_txn_id":"t1","card":")" + card_ + "\"," + lines + "}")
                .status,
            200u);

  const auto seen = Seen();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].kind, "member");
  EXPECT_EQ(seen[1].kind, "member");
  EXPECT_EQ(seen[2].kind, "quote");
  EXPECT_EQ(seen[3].kind, "commit");
  for (const auto& u : seen) {
    EXPECT_EQ(u.json.find(card_), std::string::npos) << u.json;
    EXPECT_EQ(u.json.find(card_.substr(0, 12)), std::string::npos) << u.json;
  }
  EXPECT_EQ(hub_.Latest()->kind, "commit");
}

TEST_F(ApiDisplayTest, FailuresAreNotPublished) {
  EXPECT_EQ(Call(http::verb::get, "/v1/members/" + card_).status, 404u);
  EXPECT_EQ(Call(http::verb::post, "/v1/members", "{").status, 400u);
  EXPECT_EQ(Call(http::verb::get, "/v1/health").status, 200u);
  EXPECT_TRUE(Seen().empty());
}

TEST(ApiStatusMapping, MapsEveryCoreErrorCode) {
  namespace c = core::code;
  EXPECT_EQ(Api::HttpStatusForError(c::kInvalidCard), 400u);
  EXPECT_EQ(Api::HttpStatusForError(c::kInvalidRequest), 400u);
  EXPECT_EQ(Api::HttpStatusForError(c::kInvalidProgramme), 400u);
  EXPECT_EQ(Api::HttpStatusForError(c::kInvalidOffer), 400u);
  EXPECT_EQ(Api::HttpStatusForError(c::kUnknownCard), 404u);
  EXPECT_EQ(Api::HttpStatusForError(c::kNotFound), 404u);
  EXPECT_EQ(Api::HttpStatusForError(c::kAlreadyEnrolled), 409u);
  EXPECT_EQ(Api::HttpStatusForError(c::kConflict), 409u);
  EXPECT_EQ(Api::HttpStatusForError(c::kAlreadyReversed), 409u);
  EXPECT_EQ(Api::HttpStatusForError(c::kInsufficientPoints), 409u);
  EXPECT_EQ(Api::HttpStatusForError(c::kTooLarge), 413u);
  EXPECT_EQ(Api::HttpStatusForError(c::kUnavailable), 503u);
  EXPECT_EQ(Api::HttpStatusForError(c::kDiskFull), 503u);
  EXPECT_EQ(Api::HttpStatusForError(c::kInternal), 500u);
  EXPECT_EQ(Api::HttpStatusForError("something_new"), 500u);
}

TEST(PercentDecode, DecodesEscapesAndRejectsBadOnes) {
  std::string out;
  EXPECT_TRUE(PercentDecode("4000%200000%2d12", &out));
  EXPECT_EQ(out, "4000 0000-12");
  EXPECT_FALSE(PercentDecode("%", &out));
  EXPECT_FALSE(PercentDecode("12%4", &out));
  EXPECT_FALSE(PercentDecode("%zz", &out));
  EXPECT_FALSE(PercentDecode("%00", &out));
  EXPECT_TRUE(PercentDecode("", &out));
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace loyalty::agent

#include "proto/json.h"

#include <gtest/gtest.h>

#include "loyalty/v1/api.pb.h"

namespace loyalty::proto {
namespace {

TEST(ProtoJson, PrintsInt64AsNumbersWithSnakeCaseNames) {
  v1::MemberView view;
  view.set_member_id("m-1");
  view.set_points_balance(9'000'000'000LL);
  const std::string json = ToJson(view);
  EXPECT_NE(json.find(R"("points_balance":9000000000)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("member_id":"m-1")"), std::string::npos) << json;
  // Defaults are printed so every documented field is present.
  EXPECT_NE(json.find(R"("pending_points":0)"), std::string::npos) << json;
  // Unset sub-messages are omitted.
  EXPECT_EQ(json.find("next_tier"), std::string::npos) << json;
}

TEST(ProtoJson, RoundTripsThroughTheParser) {
  v1::QuoteRequest in;
  in.set_card("4000 0000 0000 0002");
  auto* line = in.add_lines();
  line->set_sku("A\"1\n");
  line->set_quantity(3);
  line->set_unit_price(1250);
  v1::QuoteRequest out;
  ASSERT_EQ(ParseJson(ToJson(in), &out), "");
  EXPECT_EQ(out.SerializeAsString(), in.SerializeAsString());
}

TEST(ProtoJson, RejectsUnknownFieldsAndMalformedInput) {
  v1::QuoteRequest out;
  EXPECT_NE(ParseJson(R"({"card":"1","nope":1})", &out), "");
  EXPECT_NE(ParseJson(R"({"card":)", &out), "");
  EXPECT_NE(ParseJson(R"({"lines":[{"quantity":"x"}]})", &out), "");
  EXPECT_NE(ParseJson("", &out), "");
}

TEST(ProtoJson, EscapesControlCharacters) {
  std::string out;
  AppendJsonString(std::string("a\x01" "b", 3), &out);
  EXPECT_EQ(out, R"("a\u0001b")");
}

}  // namespace
}  // namespace loyalty::proto

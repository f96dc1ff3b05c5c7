#include "proto/json.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <random>

#include "loyalty/v1/api.pb.h"
#include "loyalty/v1/domain.pb.h"

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

// What protobuf's own parser makes of `json`: the message serialized, or
// "error: ..." when it refuses.
template <typename Message>
std::string ProtobufParse(const std::string& json) {
  Message m;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(json, &m, options);
  if (!status.ok()) return "error: " + std::string(status.message());
  return m.SerializeAsString();
}

template <typename Message>
std::string LeanParse(const std::string& json) {
  Message m;
  if (!ParsePlainJson(json, &m)) return "not plain";
  return m.SerializeAsString();
}

TEST(ProtoJson, PlainBodiesAreReadAsProtobufWouldReadThem) {
  const std::string bodies[] = {
      R"({"card":"6035990000000016","lines":[{"sku":"SKU-1","category":"Coffee","quantity":2,"unit_price":1250}]})",
      " {\n \"card\" : \"1\" ,\t\"lines\" : [ ] , \"redeem_points\" : 0 }\r\n",
      R"({"card":"","lines":[{},{"sku":"a"}],"redeem_points":-9223372036854775807,"redeem_mode":"tender","store_id":"s"})",
      R"({"redeem_points":9223372036854775807})",
      R"({})",
  };
  for (const std::string& body : bodies) {
    EXPECT_NE(LeanParse<v1::QuoteRequest>(body), "not plain") << body;
    EXPECT_EQ(LeanParse<v1::QuoteRequest>(body), ProtobufParse<v1::QuoteRequest>(body)) << body;
  }
  const std::string commit =
      R"({"pos_txn_id":"T-1","card":"6035 9900 0000 0016","party_size":4294967295,"lines":[]})";
  EXPECT_NE(LeanParse<v1::CommitRequest>(commit), "not plain");
  EXPECT_EQ(LeanParse<v1::CommitRequest>(commit), ProtobufParse<v1::CommitRequest>(commit));
}

TEST(ProtoJson, AnythingElseGoesToProtobufsParser) {
  const std::string bodies[] = {
      R"({"card":"a\"b"})",                   // escape
      R"({"card":"caf\u00e9"})",              // unicode escape
      "{\"card\":\"caf\xc3\xa9\"}",          // non-ASCII
      R"({"card":null})",                     // null
      R"({"redeemPoints":5})",                // JSON (camelCase) name
      R"({"redeem_points":"5"})",             // quoted integer
      R"({"redeem_points":5.0})",             // fraction
      R"({"redeem_points":1e2})",             // exponent
      R"({"redeem_points":-0})",              // negative zero
      R"({"redeem_points":007})",             // leading zeros
      R"({"redeem_points":9223372036854775808})",  // out of range
      R"({"card":"1","card":"2"})",           // repeated key
      R"({"card":"1",})",                     // trailing comma
      R"({"lines":[{"quantity":"x"}]})",      // wrong type
      R"({"lines":{}})",                      // object for an array
      R"({"card":1})",                        // number for a string
      R"({"nope":1})",                        // unknown field
      R"({"card":"1"} x)",                    // trailing bytes
      R"([])", "", "not json", "{", R"({"card")",
  };
  for (const std::string& body : bodies) {
    EXPECT_EQ(LeanParse<v1::QuoteRequest>(body), "not plain") << body;
    v1::QuoteRequest via_api;
    const std::string error = ParseJson(body, &via_api);
    const std::string expected = ProtobufParse<v1::QuoteRequest>(body);
    if (expected.starts_with("error: ")) {
      EXPECT_EQ("error: " + error, expected) << body;
    } else {
      EXPECT_EQ(error, "") << body;
      EXPECT_EQ(via_api.SerializeAsString(), expected) << body;
    }
  }
  v1::CommitRequest commit;
  EXPECT_FALSE(ParsePlainJson(R"({"party_size":-1})", &commit));
  EXPECT_FALSE(ParsePlainJson(R"({"party_size":4294967296})", &commit));
  v1::Redemption enum_field;  // enums are protobuf's
  EXPECT_FALSE(ParsePlainJson(R"({"mode":"TENDER"})", &enum_field));
}

// Random byte edits of real bodies: whenever the lean reader accepts one,
// protobuf's parser must accept it too, to the same message.
TEST(ProtoJson, LeanReaderNeverDisagreesWithProtobuf) {
  const std::string seeds[] = {
      R"({"pos_txn_id":"T-17","card":"6035990000000016","lines":[{"sku":"SKU-1","category":"Coffee","quantity":2,"unit_price":1250},{"sku":"B","quantity":1,"unit_price":0}],"redeem_points":100,"redeem_mode":"discount","party_size":2})",
  };
  const std::string alphabet = "{}[]\":,-0123456789 truefalsnl.eE\\xa_";
  std::mt19937 rng(20261123);
  int plain = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string body = seeds[0];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % body.size();
      switch (rng() % 3) {
        case 0: body[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: body.erase(at, 1); break;
        default: body.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
      }
    }
    const std::string lean = LeanParse<v1::CommitRequest>(body);
    if (lean == "not plain") continue;
    ++plain;
    ASSERT_EQ(lean, ProtobufParse<v1::CommitRequest>(body)) << body;
  }
  EXPECT_GT(plain, 1000);  // the edits must also exercise the lean path
}

}  // namespace
}  // namespace loyalty::proto

#include "agent/display_hub.h"

#include "loyalty/v1/api.pb.h"

#include <gtest/gtest.h>

#include <vector>

namespace loyalty::agent {
namespace {

TEST(DisplayHub, KeepsTheLatestUpdateAndNotifiesSubscribers) {
  DisplayHub hub;
  EXPECT_FALSE(hub.Latest().has_value());
  std::vector<DisplayUpdate> seen;
  const uint64_t id = hub.Subscribe([&](const DisplayUpdate& u) { seen.push_back(u); });
  hub.Publish("member", "{\"a\":1}");
  hub.Publish("quote", "{\"b\":2}");
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].kind, "member");
  EXPECT_EQ(seen[1].kind, "quote");
  EXPECT_LT(seen[0].seq, seen[1].seq);
  ASSERT_TRUE(hub.Latest().has_value());
  EXPECT_EQ(hub.Latest()->json, "{\"b\":2}");

  hub.Unsubscribe(id);
  hub.Publish("commit", "{}");
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(hub.Latest()->kind, "commit");
}

TEST(DisplayHub, ASubscriberMayUnsubscribeItselfDuringTheCallback) {
  DisplayHub hub;
  int calls = 0;
  uint64_t id = 0;
  id = hub.Subscribe([&](const DisplayUpdate&) {
    ++calls;
    hub.Unsubscribe(id);
  });
  hub.Publish("member", "{}");
  hub.Publish("member", "{}");
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace loyalty::agent

namespace loyalty::agent {
namespace {

TEST(DisplayHubMessage, SubscribersGetTheParsedResponseWithTheJson) {
  DisplayHub hub;
  std::shared_ptr<const google::protobuf::Message> seen;
  hub.Subscribe([&](const DisplayUpdate& u) { seen = u.message; });
  auto response = std::make_shared<v1::MemberResponse>();
  response->mutable_member()->set_display_name("Ana");
  hub.Publish("member", "{}", response);
  ASSERT_NE(seen, nullptr);
  const auto* member = dynamic_cast<const v1::MemberResponse*>(seen.get());
  ASSERT_NE(member, nullptr);
  EXPECT_EQ(member->member().display_name(), "Ana");
}

}  // namespace
}  // namespace loyalty::agent

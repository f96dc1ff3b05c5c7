// loyaltyctl against a real loyalty-agent: exit codes, --json output and the
// human-readable output's money formatting.
#include <gtest/gtest.h>

#include "core/card.h"
#include "loyalty/v1/api.pb.h"
#include "proto/json.h"
#include "tests/agent/agent_process.h"

namespace loyalty::ctl {
namespace {

using loyalty::agent_test::AgentProcess;
using loyalty::agent_test::CtlBinary;
using loyalty::agent_test::ProcessResult;
using loyalty::agent_test::RunProcess;
namespace v1 = loyalty::v1;

std::string Card(int n) {
  std::string payload = "5" + std::string(13, '0') + std::to_string(n % 10);
  payload.push_back(core::LuhnCheckDigit(payload));
  return payload;
}

class LoyaltyctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    agent_ = AgentProcess::Start({"--log-level", "warn"}, &error);
    ASSERT_TRUE(agent_) << error;
  }

  ProcessResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(), CtlBinary());
    if (args.size() > 2 || (args.size() == 2 && args[1] != "--help")) {
      args.push_back("--url");
      args.push_back(agent_->url());
    }
    return RunProcess(args);
  }

  std::unique_ptr<AgentProcess> agent_;
};

TEST_F(LoyaltyctlTest, EnrolLookupCommitVoidAndRedeemWithExitCodeZero) {
  const std::string card = Card(1);
  auto enrol = Ctl({"enrol", "--card", card, "--name", "Ana Garcia"});
  ASSERT_EQ(enrol.exit_code, 0) << enrol.err;
  EXPECT_NE(enrol.out.find("Ana Garcia"), std::string::npos) << enrol.out;

  auto lookup = Ctl({"lookup", "--card", card, "--json"});
  ASSERT_EQ(lookup.exit_code, 0) << lookup.err;
  v1::MemberResponse member;
  ASSERT_EQ(proto::ParseJson(lookup.out, &member), "") << lookup.out;
  EXPECT_EQ(member.member().display_name(), "Ana Garcia");

  auto quote =
      Ctl({"quote", "--card", card, "--line", "COF-1:Coffee:2:3.50", "--line", "BRD:Bakery:1:550"});
  ASSERT_EQ(quote.exit_code, 0) << quote.err;
  EXPECT_NE(quote.out.find("12.50"), std::string::npos) << quote.out;  // subtotal

  auto commit = Ctl({"commit", "--card", card, "--pos-txn-id", "t-1", "--line",
                     "COF-1:Coffee:2:3.50", "--line", "BRD:Bakery:1:550", "--json"});
  ASSERT_EQ(commit.exit_code, 0) << commit.err;
  v1::CommitResponse committed;
  ASSERT_EQ(proto::ParseJson(commit.out, &committed), "") << commit.out;
  EXPECT_EQ(committed.subtotal(), 1250);
  EXPECT_EQ(committed.points_balance(), 12);

  auto ret = Ctl({"void", "--pos-txn-id", "t-1", "--return", "1:1", "--json"});
  ASSERT_EQ(ret.exit_code, 0) << ret.err;
  v1::VoidResponse voided;
  ASSERT_EQ(proto::ParseJson(ret.out, &voided), "") << ret.out;
  EXPECT_FALSE(voided.complete());
  EXPECT_EQ(voided.refund(), 550);

  auto redeem = Ctl({"redeem", "--card", card, "--points", "5"});
  ASSERT_EQ(redeem.exit_code, 0) << redeem.err;
  EXPECT_NE(redeem.out.find("0.05"), std::string::npos) << redeem.out;

  auto health = Ctl({"health"});
  ASSERT_EQ(health.exit_code, 0) << health.err;
  EXPECT_NE(health.out.find("ok"), std::string::npos) << health.out;
}

TEST_F(LoyaltyctlTest, ApiErrorsExitWithOneAndPrintTheCode) {
  auto unknown = Ctl({"lookup", "--card", Card(2)});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("unknown_card"), std::string::npos) << unknown.err;

  auto bad = Ctl({"lookup", "--card", "1234", "--json"});
  EXPECT_EQ(bad.exit_code, 1);
  v1::ErrorResponse error;
  ASSERT_EQ(proto::ParseJson(bad.out, &error), "") << bad.out;
  EXPECT_EQ(error.error().code(), "invalid_card");
}

TEST_F(LoyaltyctlTest, UsageErrorsExitWithTwo) {
  EXPECT_EQ(Ctl({"lookup"}).exit_code, 2);  // --card missing
  EXPECT_EQ(Ctl({"quote", "--card", Card(3), "--line", "no-colons"}).exit_code, 2);
  EXPECT_EQ(Ctl({"quote", "--card", Card(3), "--line", "A:B:1:3.505"}).exit_code, 2);
  EXPECT_EQ(Ctl({"void", "--pos-txn-id", "x", "--return", "one:1"}).exit_code, 2);
  EXPECT_EQ(Ctl({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(RunProcess({CtlBinary()}).exit_code, 2);
  auto help = RunProcess({CtlBinary(), "quote", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("SKU:CATEGORY:QTY:UNIT_PRICE"), std::string::npos) << help.out;
}

TEST_F(LoyaltyctlTest, AnUnreachableAgentExitsWithThree) {
  const std::string url = agent_->url();
  ASSERT_EQ(agent_->Terminate(), 0);
  auto r = RunProcess({CtlBinary(), "health", "--url", url});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("cannot"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace loyalty::ctl

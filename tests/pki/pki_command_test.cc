#include "pki/pki_command.h"

#include <gtest/gtest.h>

#include <sstream>

#include "pki/bundle.h"
#include "tests/pki/temp_dir.h"

namespace loyalty::pki {
namespace {

struct CommandRun {
  int code;
  std::string out;
  std::string err;
};

CommandRun Pki(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = RunPkiCommand(args, out, err);
  return {code, out.str(), err.str()};
}

TEST(PkiCommandTest, FullLifecycleThroughTheCommandLine) {
  testing::TempDir tmp;
  std::string ca = (tmp / "ca").string();
  std::string store = (tmp / "store").string();
  EXPECT_EQ(Pki({"init", "--dir", ca}).code, 0);
  EXPECT_EQ(
      Pki({"issue-server", "--dir", ca, "--host", "sync.test", "--out", (tmp / "server").string()})
          .code,
      0);
  CommandRun issued = Pki({"issue-store", "--dir=" + ca, "--store", "S1", "--out", store});
  EXPECT_EQ(issued.code, 0) << issued.err;
  EXPECT_NE(issued.out.find("store certificate for \"S1\""), std::string::npos) << issued.out;
  EXPECT_EQ(
      Pki({"issue-admin", "--dir", ca, "--name", "alice", "--out", (tmp / "admin").string()}).code,
      0);
  EXPECT_EQ(Pki({"renew", "--dir", ca, "--bundle", store}).code, 0);
  EXPECT_TRUE(LoadBundle(store).ok());
  CommandRun revoked = Pki({"revoke", "--dir", ca, "--store", "S1"});
  EXPECT_EQ(revoked.code, 0);
  EXPECT_NE(revoked.out.find("revoked 2"), std::string::npos) << revoked.out;
}

TEST(PkiCommandTest, OperationErrorsPrintTheCodeAndReturnOne) {
  testing::TempDir tmp;
  std::string ca = (tmp / "ca").string();
  ASSERT_EQ(Pki({"init", "--dir", ca}).code, 0);
  CommandRun again = Pki({"init", "--dir", ca});
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("error: ca_exists:"), std::string::npos) << again.err;
  CommandRun bad_id =
      Pki({"issue-store", "--dir", ca, "--store", "no spaces", "--out", (tmp / "b").string()});
  EXPECT_EQ(bad_id.code, 1);
  EXPECT_NE(bad_id.err.find("invalid_identity"), std::string::npos);
}

TEST(PkiCommandTest, UsageErrorsReturnTwo) {
  EXPECT_EQ(Pki({}).code, 2);
  EXPECT_EQ(Pki({"frobnicate"}).code, 2);
  EXPECT_EQ(Pki({"init"}).code, 2);                               // missing --dir
  EXPECT_EQ(Pki({"init", "--dir"}).code, 2);                      // no value
  EXPECT_EQ(Pki({"init", "--dir", "a", "--dir", "b"}).code, 2);   // repeated
  EXPECT_EQ(Pki({"init", "--dir", "a", "--host", "h"}).code, 2);  // foreign flag
  EXPECT_EQ(Pki({"revoke", "--dir", "a"}).code, 2);               // missing --store
  EXPECT_EQ(Pki({"issue-store", "--dir", "a", "--store", "S", "x"}).code, 2);
  CommandRun usage = Pki({"init"});
  EXPECT_NE(usage.err.find("usage: loyaltyctl pki"), std::string::npos);
}

}  // namespace
}  // namespace loyalty::pki

// The real loyaltyctl binary on bad input: a file named on the command line
// that holds no valid request, one that cannot be read, and help for the pki
// commands. Exit codes and where the answer goes (stdout, stderr) are what
// scripts rely on.
//
// No server listens at the admin URL these commands are given: a file is
// checked before anything is sent, so an answer other than "cannot
// connect" (3) shows that nothing was.
#include <gtest/gtest.h>

#include <fstream>

#include "loyalty/v1/api.pb.h"
#include "proto/json.h"
#include "tests/agent/agent_process.h"
#include "tests/support/temp_dir.h"

namespace loyalty::ctl {
namespace {

using loyalty::agent_test::CtlBinary;
using loyalty::agent_test::ProcessResult;
using loyalty::agent_test::RunProcess;
namespace v1 = loyalty::v1;

class CtlInputTest : public ::testing::Test {
 protected:
  // `loyaltyctl admin` against a port where nothing listens.
  ProcessResult Admin(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {CtlBinary(),           "admin",     "--url",
                                     "https://127.0.0.1:1", "--tls-dir", dir_.file("no-bundle")};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv);
  }

  std::string File(const std::string& name, const std::string& text) {
    const std::string path = dir_.file(name);
    std::ofstream(path) << text;
    return path;
  }

  loyalty::testing::TempDir dir_;
};

// Every admin command that sends a file, as `words` before the file.
const std::vector<std::vector<std::string>> kFileCommands = {
    {"promotions", "put"}, {"promotions", "preview"}, {"programme", "load"},
    {"segments", "put"},   {"segments", "preview"},   {"members", "consent", "p-1"},
};

TEST_F(CtlInputTest, AFileThatIsNotValidJsonIsRefusedWithInvalidRequestAndExitOne) {
  const std::string bad = File("bad.json", R"({"id": "x", )");
  for (auto words : kFileCommands) {
    words.push_back(bad);
    SCOPED_TRACE(words[0] + " " + words[1]);

    std::vector<std::string> json = {"--json"};
    json.insert(json.end(), words.begin(), words.end());
    const ProcessResult scripted = Admin(json);
    EXPECT_EQ(scripted.exit_code, 1) << scripted.out << scripted.err;
    v1::ErrorResponse error;
    ASSERT_EQ(proto::ParseJson(scripted.out, &error), "") << scripted.out;
    EXPECT_EQ(error.error().code(), "invalid_request");
    EXPECT_NE(error.error().message().find("'" + bad + "' is not a"), std::string::npos)
        << error.error().message();
    EXPECT_EQ(scripted.err, "");

    const ProcessResult human = Admin(words);
    EXPECT_EQ(human.exit_code, 1) << human.err;
    EXPECT_EQ(human.out, "");
    EXPECT_TRUE(human.err.starts_with("error: invalid_request: '" + bad + "' is not a"))
        << human.err;
    EXPECT_EQ(human.err.find("usage:"), std::string::npos) << human.err;
  }
}

TEST_F(CtlInputTest, AFileWithoutTheIdItsCommandNeedsIsRefusedWithInvalidRequest) {
  const std::string nameless = File("offer.json", R"({"name":"No id","bonus_points":5})");
  const ProcessResult r = Admin({"--json", "promotions", "put", nameless});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  v1::ErrorResponse error;
  ASSERT_EQ(proto::ParseJson(r.out, &error), "") << r.out;
  EXPECT_EQ(error.error().code(), "invalid_request");
  EXPECT_NE(error.error().message().find("has no \"id\""), std::string::npos)
      << error.error().message();
}

TEST_F(CtlInputTest, AFileThatCannotBeReadIsAUsageError) {
  const std::string missing = dir_.file("missing.json");
  for (auto words : kFileCommands) {
    words.push_back(missing);
    words.insert(words.begin(), "--json");
    SCOPED_TRACE(words[1] + " " + words[2]);
    const ProcessResult r = Admin(words);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("cannot read '" + missing + "'"), std::string::npos) << r.err;
  }
  const ProcessResult directory = Admin({"programme", "load", dir_.path().string()});
  EXPECT_EQ(directory.exit_code, 2) << directory.err;
  EXPECT_NE(directory.err.find("is a directory"), std::string::npos) << directory.err;
}

TEST_F(CtlInputTest, PkiHelpPrintsThePkiCommandsAndExitsZero) {
  for (const char* flag : {"--help", "-h", "help"}) {
    SCOPED_TRACE(flag);
    const ProcessResult r = RunProcess({CtlBinary(), "pki", flag});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("loyaltyctl pki issue-store"), std::string::npos) << r.out;
    EXPECT_EQ(r.err, "");
  }
  const ProcessResult sub = RunProcess({CtlBinary(), "pki", "issue-store", "--help"});
  EXPECT_EQ(sub.exit_code, 0) << sub.err;
  EXPECT_NE(sub.out.find("--store STORE_ID"), std::string::npos) << sub.out;

  const ProcessResult unknown = RunProcess({CtlBinary(), "pki", "frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown pki subcommand"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace loyalty::ctl

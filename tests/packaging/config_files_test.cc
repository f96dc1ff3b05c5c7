// The default configuration files the packages install
// (packaging/config/agent.conf, server.conf) stay in sync with the programs:
// every option `--help` lists appears in the file (as `key = value` or
// commented `#key = value`), every key in the file is a real option, and
// the file parses as shipped and with every option uncommented.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "agent/config.h"
#include "server/config.h"
#include "tests/support/temp_dir.h"

namespace loyalty {
namespace {

std::string SourceDir() {
  const char* dir = std::getenv("LOYALTY_SOURCE_DIR");
  return dir ? dir : LOYALTY_TEST_SOURCE_DIR;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Long option names from a boost::program_options --help text.
std::set<std::string> HelpOptions(const std::string& usage) {
  std::set<std::string> names;
  std::istringstream in(usage);
  std::string line;
  while (std::getline(in, line)) {
    const std::size_t at = line.find("--");
    if (at == std::string::npos || line.find_first_not_of(" -h,", 0) < at) continue;
    std::size_t end = at + 2;
    while (end < line.size() && (std::isalnum(static_cast<unsigned char>(line[end])) ||
                                 line[end] == '-')) {
      ++end;
    }
    names.insert(line.substr(at + 2, end - at - 2));
  }
  names.erase("help");
  names.erase("config");
  return names;
}

// Keys of `key = value` lines, commented (`#key = value`) or not.
std::set<std::string> FileKeys(const std::string& text) {
  std::set<std::string> keys;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::size_t start = line.rfind('#', 0) == 0 ? 1 : 0;
    const std::size_t eq = line.find(" = ", start);
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(start, eq - start);
    if (key.empty() || key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") !=
                           std::string::npos) {
      continue;
    }
    keys.insert(key);
  }
  return keys;
}

// The file with every `#key = value` line uncommented (a key: a lowercase
// letter, then lowercase letters, digits and dashes). Plain string code:
// std::regex trips GCC 12's -Wmaybe-uninitialized in the sanitizer build.
std::string Uncommented(const std::string& text) {
  std::istringstream in(text);
  std::string out, line;
  while (std::getline(in, line)) {
    const std::size_t eq = line.find(" = ");
    const bool key = line.size() > 1 && line[0] == '#' && eq != std::string::npos &&
                     std::islower(static_cast<unsigned char>(line[1])) &&
                     std::all_of(line.begin() + 1, line.begin() + static_cast<std::ptrdiff_t>(eq),
                                 [](unsigned char c) {
                                   return std::islower(c) || std::isdigit(c) || c == '-';
                                 });
    out += key ? line.substr(1) : line;
    out += '\n';
  }
  return out;
}

std::string WriteFile(const testing::TempDir& dir, const std::string& name,
                      const std::string& text) {
  const std::string path = dir.file(name);
  std::ofstream(path) << text;
  return path;
}

TEST(DefaultConfig, AgentFileListsEveryAgentOption) {
  const std::string text = ReadText(SourceDir() + "/packaging/config/agent.conf");
  ASSERT_FALSE(text.empty());
  const auto help = HelpOptions(agent::AgentUsage());
  ASSERT_GT(help.size(), 10u) << agent::AgentUsage();
  const auto keys = FileKeys(text);
  for (const auto& name : help) EXPECT_TRUE(keys.count(name)) << "agent.conf lacks " << name;
  for (const auto& key : keys) EXPECT_TRUE(help.count(key)) << "agent.conf: unknown key " << key;
}

TEST(DefaultConfig, ServerFileListsEveryServerOption) {
  const std::string text = ReadText(SourceDir() + "/packaging/config/server.conf");
  ASSERT_FALSE(text.empty());
  const auto help = HelpOptions(server::ServerUsage());
  ASSERT_GT(help.size(), 6u) << server::ServerUsage();
  const auto keys = FileKeys(text);
  for (const auto& name : help) EXPECT_TRUE(keys.count(name)) << "server.conf lacks " << name;
  for (const auto& key : keys) EXPECT_TRUE(help.count(key)) << "server.conf: unknown key " << key;
}

TEST(DefaultConfig, AgentFileParsesAsShippedAndUncommented) {
  testing::TempDir dir;
  const std::string text = ReadText(SourceDir() + "/packaging/config/agent.conf");
  auto shipped = agent::ParseAgentConfig(
      {"loyalty-agent", "--config", WriteFile(dir, "shipped.conf", text)});
  ASSERT_TRUE(shipped.ok()) << shipped.error().message;
  EXPECT_EQ(shipped->data_dir, "/var/lib/loyalty-agent");
  EXPECT_EQ(shipped->listen_host, "127.0.0.1");
  EXPECT_EQ(shipped->listen_port, 8080);
  EXPECT_TRUE(shipped->server.empty());
  auto all = agent::ParseAgentConfig(
      {"loyalty-agent", "--config", WriteFile(dir, "all.conf", Uncommented(text))});
  ASSERT_TRUE(all.ok()) << all.error().message;
  // The commented values are the defaults.
  EXPECT_EQ(all->store_id, agent::AgentConfig{}.store_id);
  EXPECT_EQ(all->sync_interval_ms, agent::AgentConfig{}.sync_interval_ms);
  EXPECT_EQ(all->io_threads, agent::AgentConfig{}.io_threads);
}

TEST(DefaultConfig, ServerFileParsesAsShippedAndUncommented) {
  testing::TempDir dir;
  const std::string text = ReadText(SourceDir() + "/packaging/config/server.conf");
  auto shipped = server::ParseServerConfig(
      {"loyalty-server", "--config", WriteFile(dir, "shipped.conf", text)});
  ASSERT_TRUE(shipped.ok()) << shipped.error().message;
  EXPECT_EQ(shipped->data_dir, "/var/lib/loyalty-server");
  EXPECT_EQ(shipped->tls_dir, "/etc/loyalty/server-tls");
  EXPECT_EQ(shipped->listen_port, 7443);
  auto all = server::ParseServerConfig(
      {"loyalty-server", "--config", WriteFile(dir, "all.conf", Uncommented(text))});
  ASSERT_TRUE(all.ok()) << all.error().message;
  EXPECT_EQ(all->admin_port, server::ServerConfig{}.admin_port);
  EXPECT_EQ(all->crl_reload_seconds, server::ServerConfig{}.crl_reload_seconds);
}

}  // namespace
}  // namespace loyalty

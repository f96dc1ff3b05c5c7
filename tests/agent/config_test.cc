#include "agent/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "tests/agent/agent_process.h"

namespace loyalty::agent {
namespace {

using loyalty::agent_test::TempDir;

core::Result<AgentConfig> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "loyalty-agent");
  return ParseAgentConfig(args);
}

void ExpectBad(std::vector<std::string> args, const std::string& option) {
  auto c = Parse(args);
  ASSERT_FALSE(c.ok()) << option;
  EXPECT_NE(c.error().message.find(option), std::string::npos) << c.error().message;
  EXPECT_EQ(c.error().message.find('\n'), std::string::npos) << c.error().message;
}

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(AgentConfig, OnlyDataDirGivesTheBuiltInDefaults) {
  auto c = Parse({"--data-dir", "/tmp/x"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->data_dir, "/tmp/x");
  EXPECT_EQ(c->listen_host, "127.0.0.1");
  EXPECT_EQ(c->listen_port, 8080);
  EXPECT_EQ(c->store_id, "store-1");
  EXPECT_EQ(c->terminal_id, "till-1");
  EXPECT_EQ(c->max_body_bytes, 65536u);
  EXPECT_EQ(c->io_threads, 2);
  EXPECT_EQ(c->offline_reserve_points, -1);
  EXPECT_EQ(c->log_level, "info");
  EXPECT_FALSE(c->demo);
  EXPECT_TRUE(c->server.empty());  // offline
}

TEST(AgentConfig, ParsesEveryFlag) {
  auto c = Parse({"--data-dir",
                  "d",
                  "--listen",
                  "127.0.0.1:0",
                  "--store-id",
                  "s-9",
                  "--terminal-id",
                  "t.2",
                  "--programme",
                  "p.json",
                  "--offers",
                  "o.json",
                  "--card-hash-key-file",
                  "k",
                  "--offline-reserve-points",
                  "50",
                  "--utc-offset-minutes",
                  "-300",
                  "--max-body-bytes",
                  "2048",
                  "--io-threads",
                  "4",
                  "--log-level",
                  "debug",
                  "--demo",
                  "--server",
                  "hq.example:7443",
                  "--tls-dir",
                  "/etc/loyalty/tls"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->listen_port, 0);  // ephemeral
  EXPECT_EQ(c->store_id, "s-9");
  EXPECT_EQ(c->terminal_id, "t.2");
  EXPECT_EQ(c->programme_file, "p.json");
  EXPECT_EQ(c->offers_file, "o.json");
  EXPECT_EQ(c->card_hash_key_file, "k");
  EXPECT_EQ(c->offline_reserve_points, 50);
  EXPECT_EQ(c->utc_offset_minutes, -300);
  EXPECT_EQ(c->max_body_bytes, 2048u);
  EXPECT_EQ(c->io_threads, 4);
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_TRUE(c->demo);
  EXPECT_EQ(c->server, "hq.example:7443");
  EXPECT_EQ(c->tls_dir, "/etc/loyalty/tls");
}

TEST(AgentConfig, ListenAcceptsLocalhostAndBracketedIpv6) {
  auto a = Parse({"--data-dir", "d", "--listen", "localhost:9000"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->listen_host, "127.0.0.1");
  EXPECT_EQ(a->listen_port, 9000);
  auto b = Parse({"--data-dir", "d", "--listen", "[::1]:9001"});
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->listen_host, "::1");
}

TEST(AgentConfig, BadValuesNameTheOption) {
  ExpectBad({}, "--data-dir");
  ExpectBad({"--data-dir", ""}, "--data-dir");
  ExpectBad({"--data-dir", "d", "--listen", "8080"}, "--listen");
  ExpectBad({"--data-dir", "d", "--listen", "127.0.0.1:"}, "--listen");
  ExpectBad({"--data-dir", "d", "--listen", "127.0.0.1:65536"}, "--listen");
  ExpectBad({"--data-dir", "d", "--listen", "example.com:80"}, "--listen");
  ExpectBad({"--data-dir", "d", "--listen", "::1:80"}, "--listen");
  ExpectBad({"--data-dir", "d", "--store-id", "a/b"}, "--store-id");
  ExpectBad({"--data-dir", "d", "--terminal-id", ""}, "--terminal-id");
  ExpectBad({"--data-dir", "d", "--offline-reserve-points", "-1"}, "--offline-reserve-points");
  ExpectBad({"--data-dir", "d", "--utc-offset-minutes", "900"}, "--utc-offset-minutes");
  ExpectBad({"--data-dir", "d", "--max-body-bytes", "10"}, "--max-body-bytes");
  ExpectBad({"--data-dir", "d", "--max-body-bytes", "-5"}, "--max-body-bytes");
  ExpectBad({"--data-dir", "d", "--io-threads", "0"}, "--io-threads");
  ExpectBad({"--data-dir", "d", "--io-threads", "2x"}, "io-threads");
  ExpectBad({"--data-dir", "d", "--log-level", "loud"}, "--log-level");
  ExpectBad({"--data-dir", "d", "--server", "nohost"}, "--server");
  ExpectBad({"--data-dir", "d", "--bogus"}, "bogus");
  ExpectBad({"--data-dir", "d", "--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2"}, "listen");
}

TEST(AgentConfig, CustomerDisplayLanguageAndIdleSeconds) {
  auto defaults = Parse({"--data-dir", "/tmp/x"});
  ASSERT_TRUE(defaults.ok()) << defaults.error().message;
  EXPECT_EQ(defaults->display_language, "en");
  EXPECT_EQ(defaults->display_idle_seconds, 20);
  auto c = Parse({"--data-dir", "/tmp/x", "--display-language", "pl", "--display-idle-seconds",
                  "45"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->display_language, "pl");
  EXPECT_EQ(c->display_idle_seconds, 45);
  ExpectBad({"--data-dir", "/tmp/x", "--display-language", "xx"}, "--display-language");
  ExpectBad({"--data-dir", "/tmp/x", "--display-idle-seconds", "0"}, "--display-idle-seconds");
  ExpectBad({"--data-dir", "/tmp/x", "--display-idle-seconds", "3601"}, "--display-idle-seconds");
}

TEST(AgentConfig, FileSuppliesValuesAndFlagsOverrideThem) {
  TempDir dir;
  const std::string file = dir.path() + "/agent.conf";
  WriteFile(file,
            "# terminal 3 of store 7\n"
            "data-dir = /var/lib/loyalty\n"
            "listen = 127.0.0.1:9100   \n"
            "store-id = store-7\n"
            "\n"
            "io-threads = 3\n"
            "demo = true\n");
  auto c = Parse({"--config", file, "--io-threads", "1"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->data_dir, "/var/lib/loyalty");
  EXPECT_EQ(c->listen_port, 9100);
  EXPECT_EQ(c->store_id, "store-7");
  EXPECT_EQ(c->io_threads, 1);  // the flag wins
  EXPECT_TRUE(c->demo);
}

TEST(AgentConfig, FileErrorsNameTheOption) {
  TempDir dir;
  const std::string file = dir.path() + "/agent.conf";
  WriteFile(file, "data-dir = d\nno-such-key = 1\n");
  ExpectBad({"--config", file}, "no-such-key");
  WriteFile(file, "data-dir = d\nio-threads = lots\n");
  ExpectBad({"--config", file}, "io-threads");
  ExpectBad({"--config", dir.path() + "/missing"}, "--config");
}

TEST(AgentConfig, HelpIsNotAnError) {
  auto c = Parse({"--help"});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->help);
  EXPECT_NE(AgentUsage().find("--data-dir"), std::string::npos);
}

AgentConfig Config(const std::string& data_dir) {
  auto c = Parse({"--data-dir", data_dir});
  EXPECT_TRUE(c.ok());
  return *c;
}

TEST(BuildServiceOptions, CreatesTheCardHashKeyOnceWithMode0600) {
  TempDir dir;
  const AgentConfig config = Config(dir.path() + "/data");
  auto first = BuildServiceOptions(config);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->data_dir, dir.path() + "/data");
  EXPECT_EQ(first->card_hash_key.size(), 32u);
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() + "/data/card-hash.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(first->programme.has_value());  // the service's built-in default
  EXPECT_FALSE(first->offers.has_value());

  auto second = BuildServiceOptions(config);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->card_hash_key, first->card_hash_key);
}

TEST(BuildServiceOptions, AnExplicitKeyFileMustExistAndBeLongEnough) {
  TempDir dir;
  AgentConfig config = Config(dir.path());
  config.card_hash_key_file = dir.path() + "/nope.key";
  auto missing = BuildServiceOptions(config);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("--card-hash-key-file"), std::string::npos);

  WriteFile(config.card_hash_key_file, "short");
  auto shortkey = BuildServiceOptions(config);
  ASSERT_FALSE(shortkey.ok());
  EXPECT_NE(shortkey.error().message.find("--card-hash-key-file"), std::string::npos);

  WriteFile(config.card_hash_key_file, "0123456789abcdef0123456789abcdef");
  auto ok = BuildServiceOptions(config);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->card_hash_key, "0123456789abcdef0123456789abcdef");
}

TEST(BuildServiceOptions, LoadsAndValidatesTheProgrammeFile) {
  TempDir dir;
  AgentConfig config = Config(dir.path());
  config.programme_file = dir.path() + "/programme.json";

  WriteFile(config.programme_file, "{\"version\": 3, \"nmae\": \"typo\"}");
  auto typo = BuildServiceOptions(config);
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.error().message.find("--programme"), std::string::npos);

  WriteFile(config.programme_file, "{\"version\": 3, \"tiers\": []}");
  auto invalid = BuildServiceOptions(config);
  ASSERT_FALSE(invalid.ok());  // no tiers
  EXPECT_NE(invalid.error().message.find("--programme"), std::string::npos);

  WriteFile(config.programme_file, R"({
    "version": 3, "name": "Test", "currency": "EUR", "minor_units": 100,
    "tiers": [{"name": "Member", "earn_multiplier_pct": 100},
              {"name": "Gold", "min_visits": 10, "min_spend": 50000, "earn_multiplier_pct": 150}],
    "qualifying_window_days": 365, "points_per_unit": 2,
    "redemption_points": 100, "redemption_value": 100, "default_language": "en"})");
  auto good = BuildServiceOptions(config);
  ASSERT_TRUE(good.ok()) << good.error().message;
  ASSERT_TRUE(good->programme.has_value());
  EXPECT_EQ(good->programme->version(), 3u);
  EXPECT_EQ(good->programme->tiers_size(), 2);
}

TEST(BuildServiceOptions, LoadsAndValidatesTheOffersFile) {
  TempDir dir;
  AgentConfig config = Config(dir.path());
  config.offers_file = dir.path() + "/offers.json";
  const std::string offer =
      R"({"id": "coffee10", "name": "Coffee 10%", "scope": {"kind": "CATEGORY", "value": "Coffee"},
          "percent_off": 10})";

  WriteFile(config.offers_file, "{\"offers\": [" + offer + "]}");
  auto good = BuildServiceOptions(config);
  ASSERT_TRUE(good.ok()) << good.error().message;
  ASSERT_TRUE(good->offers.has_value());
  ASSERT_EQ(good->offers->size(), 1u);
  EXPECT_EQ(good->offers->front().id(), "coffee10");

  WriteFile(config.offers_file, "{\"offers\": [" + offer + "," + offer + "]}");
  auto dup = BuildServiceOptions(config);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().message.find("duplicate"), std::string::npos) << dup.error().message;

  WriteFile(config.offers_file, R"({"offers": [{"id": "x", "percent_off": 150}]})");
  auto bad = BuildServiceOptions(config);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("--offers"), std::string::npos);
  EXPECT_NE(bad.error().message.find("offers[0]"), std::string::npos) << bad.error().message;

  WriteFile(config.offers_file, "[1,2]");
  EXPECT_FALSE(BuildServiceOptions(config).ok());
}

}  // namespace
}  // namespace loyalty::agent

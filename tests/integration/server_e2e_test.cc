// End to end against the real central server: real loyalty-agent processes
// sync over mutual TLS on loopback with a real loyalty-server process, and
// head office's view is read with the real `loyaltyctl admin` (plus the admin
// API itself for full member histories). Certificates come from a fresh
// head-office CA per test.
//
// The fault tests SIGKILL the agent or the server at random moments while a
// till keeps committing and sync is under way, restart it on the same data
// directory, and then check the server's ledger against what the POS was
// told: every acknowledged commit exactly once, nothing else.
//
// Waits poll for conditions with generous limits; nothing asserts on elapsed
// time. The random seed is printed so that a failing run can be read back.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "core/card.h"
#include "core/time_util.h"
#include "ctl/admin_client.h"
#include "loyalty/v1/admin.pb.h"
#include "loyalty/v1/api.pb.h"
#include "loyalty/v1/server.pb.h"
#include "pki/ca.h"
#include "proto/json.h"
#include "tests/support/eventually.h"
#include "tests/support/free_port.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/small_disk.h"
#include "tests/support/temp_dir.h"

namespace loyalty {
namespace {

using testing::Eventually;
using testing::FreePort;
using testing::HttpClient;
using testing::Process;
using Clock = std::chrono::steady_clock;

std::string Card(int i) {
  const std::string payload = "60000000000" + std::to_string(4000 + i);
  return payload + core::LuhnCheckDigit(payload);
}

// The last `bytes` of a file: logs of processes restarted many times.
std::string Tail(const std::string& path, std::size_t bytes = 6000) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str();
  return all.size() > bytes ? "..." + all.substr(all.size() - bytes) : all;
}

uint32_t Seed() {
  const uint32_t seed = std::random_device{}();
  std::cout << "random seed " << seed << std::endl;
  return seed;
}

// The head-office CA with a server bundle for 127.0.0.1, an admin bundle and
// store bundles. Every bundle carries the CA's card-hash key, so terminals
// and the server hash card numbers alike.
class Pki {
 public:
  explicit Pki(const testing::TempDir& dir) : dir_(dir) {
    ok_ = pki::InitCa(ca()).ok() &&
          pki::IssueServer(ca(), "127.0.0.1", dir_.path() / "server-tls").ok() &&
          pki::IssueAdmin(ca(), "hq", dir_.path() / "admin-tls").ok();
  }
  bool ok() const { return ok_; }
  std::string Store(const std::string& id) {
    auto out = dir_.path() / ("tls-" + id);
    if (!std::filesystem::exists(out / "cert.pem")) {
      EXPECT_TRUE(pki::IssueStore(ca(), id, out).ok());
    }
    return out.string();
  }
  std::filesystem::path ca() const { return dir_.path() / "ca"; }
  std::string ServerBundle() const { return (dir_.path() / "server-tls").string(); }
  std::string AdminBundle() const { return (dir_.path() / "admin-tls").string(); }

 private:
  const testing::TempDir& dir_;
  bool ok_ = false;
};

// What the POS was told: each commit answered 200, per card, and so what
// the server must hold once everything is uploaded. Thread-safe.
class Ledger {
 public:
  void Enrolled(const std::string& store, int card) {
    std::lock_guard lock(mu_);
    ++enrolments_[card];
    ++store_events_[store];
  }
  void Committed(const std::string& store, int card, const v1::CommitResponse& answer) {
    std::lock_guard lock(mu_);
    txns_[card].push_back(answer.pos_txn_id());
    points_[card] += answer.points_earned();
    store_events_[store] += answer.event_ids_size();
  }
  std::vector<int> cards() const {
    std::lock_guard lock(mu_);
    std::vector<int> out;
    for (const auto& [card, _] : enrolments_) out.push_back(card);
    return out;
  }
  int64_t points(int card) const {
    std::lock_guard lock(mu_);
    auto it = points_.find(card);
    return it == points_.end() ? 0 : it->second;
  }
  std::vector<std::string> txns(int card) const {
    std::lock_guard lock(mu_);
    auto it = txns_.find(card);
    return it == txns_.end() ? std::vector<std::string>() : it->second;
  }
  int enrolments(int card) const {
    std::lock_guard lock(mu_);
    auto it = enrolments_.find(card);
    return it == enrolments_.end() ? 0 : it->second;
  }
  std::map<std::string, int64_t> store_events() const {
    std::lock_guard lock(mu_);
    return store_events_;
  }
  int64_t commits() const {
    std::lock_guard lock(mu_);
    int64_t n = 0;
    for (const auto& [_, t] : txns_) n += static_cast<int64_t>(t.size());
    return n;
  }

 private:
  mutable std::mutex mu_;
  std::map<int, std::vector<std::string>> txns_;
  std::map<int, int64_t> points_;
  std::map<int, int> enrolments_;
  std::map<std::string, int64_t> store_events_;
};

// A loyalty-server process on 127.0.0.1:`port` (fixed, so agents find it
// again after a restart) with its data in one directory across restarts;
// the admin port is ephemeral and read from the log at every start.
class Server {
 public:
  Server(const testing::TempDir& dir, const Pki& pki, uint16_t port, std::string data_dir = "")
      : dir_(dir),
        pki_(pki),
        port_(port),
        data_dir_(data_dir.empty() ? dir.file("server-data") : std::move(data_dir)),
        log_(dir.file("server.log")) {}

  // Starts the server and waits for its ports. A port still held by a
  // connection of the previous process is retried for a while.
  bool Start() {
    for (int attempt = 0; attempt < 50; ++attempt) {
      if (StartOnce()) return true;
      if (process_->running() || process_->Log().find("--listen:") == std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  void Kill() { process_->Kill(); }
  int Terminate() { return process_->Terminate(); }
  uint16_t port() const { return port_; }
  std::string Log() const { return Tail(log_); }

  // `loyaltyctl admin --url ... --tls-dir ADMIN args...`: the exit status,
  // and stdout and stderr in *output.
  int Ctl(const std::vector<std::string>& args, std::string* output) {
    std::vector<std::string> argv = {testing::BuiltBinary("ctl/loyaltyctl"),
                                     "admin",
                                     "--url",
                                     "https://127.0.0.1:" + std::to_string(admin_port_),
                                     "--tls-dir",
                                     pki_.AdminBundle()};
    argv.insert(argv.end(), args.begin(), args.end());
    Process ctl(argv, dir_.file("ctl-" + std::to_string(++ctl_runs_) + ".log"));
    const int status = ctl.Wait();
    *output = ctl.Log();
    return status;
  }

  // `loyaltyctl admin --json ARGS` parsed into *out.
  bool CtlJson(const std::vector<std::string>& args, google::protobuf::Message* out) {
    std::vector<std::string> all = {"--json"};
    all.insert(all.end(), args.begin(), args.end());
    std::string output;
    const int status = Ctl(all, &output);
    EXPECT_EQ(status, 0) << output;
    const std::string err = proto::ParseJson(output, out);
    EXPECT_EQ(err, "") << output;
    return status == 0 && err.empty();
  }

  // A counter or gauge of the server's metrics (`loyaltyctl admin metrics`);
  // -1 when it cannot be read.
  int64_t Metric(const std::string& name) {
    std::string output;
    if (Ctl({"metrics"}, &output) != 0) return -1;
    std::istringstream lines(output);
    for (std::string line; std::getline(lines, line);) {
      if (line.starts_with(name + " ")) return std::stoll(line.substr(name.size() + 1));
    }
    return -1;
  }

  std::map<std::string, v1::StoreStatus> Stores() {
    v1::StoreList list;
    std::map<std::string, v1::StoreStatus> out;
    if (!CtlJson({"stores"}, &list)) return out;
    for (const auto& s : list.stores()) out[s.store_id()] = s;
    return out;
  }

  v1::AdminMemberResponse Member(int card) {
    v1::AdminMemberResponse member;
    CtlJson({"members", "lookup", Card(card)}, &member);
    return member;
  }

  // The member's whole history (up to the API's 1000 events), through the
  // admin API: the CLI prints only the latest events.
  std::vector<v1::Event> History(int card) {
    ctl::Url url;
    url.host = "127.0.0.1";
    url.port = std::to_string(admin_port_);
    auto client = ctl::AdminClient::Create(url, pki_.AdminBundle());
    EXPECT_TRUE(client.ok());
    if (!client.ok()) return {};
    auto reply = (*client)->Call("GET", "/v1/admin/members/" + Card(card) + "?history=1000");
    EXPECT_TRUE(reply.ok());
    if (!reply.ok()) return {};
    EXPECT_EQ(reply->status, 200u) << reply->body;
    v1::AdminMemberResponse member;
    EXPECT_EQ(proto::ParseJson(reply->body, &member), "") << reply->body;
    return {member.history().begin(), member.history().end()};
  }

 private:
  bool StartOnce() {
    process_ = std::make_unique<Process>(
        std::vector<std::string>{
            testing::BuiltBinary("server/loyalty-server"), "--data-dir", data_dir_,
            "--tls-dir", pki_.ServerBundle(), "--crl", (pki_.ca() / "crl.pem").string(), "--listen",
            "127.0.0.1:" + std::to_string(port_), "--admin-listen", "127.0.0.1:0"},
        log_);
    const auto limit = std::chrono::seconds(60);
    const std::string sync_at = process_->WaitForLine("sync listening on 127.0.0.1:", limit);
    const std::string admin_at = process_->WaitForLine("admin listening on 127.0.0.1:", limit);
    if (sync_at.empty() || admin_at.empty()) return false;
    port_ = static_cast<uint16_t>(std::stoi(sync_at));
    admin_port_ = std::stoi(admin_at);
    return true;
  }

  const testing::TempDir& dir_;
  const Pki& pki_;
  uint16_t port_;
  const std::string data_dir_;
  int admin_port_ = 0;
  std::string log_;
  std::unique_ptr<Process> process_;
  int ctl_runs_ = 0;
};

// A loyalty-agent process for one store terminal, restartable on the same
// data directory. port() is 0 while it is down; the tills read it.
class Agent {
 public:
  Agent(const testing::TempDir& dir, std::string store, std::string tls_dir, uint16_t server_port,
        int sync_interval_ms = 500)
      : dir_(dir),
        store_(std::move(store)),
        tls_dir_(std::move(tls_dir)),
        server_port_(server_port),
        sync_interval_ms_(sync_interval_ms),
        log_(dir.file("agent-" + store_ + ".log")) {}

  // Runs the agent under `launcher` (e.g. faketime) from the next Start().
  void set_launcher(std::vector<std::string> launcher) { launcher_ = std::move(launcher); }

  int Start() {
    std::vector<std::string> argv = launcher_;
    for (std::string arg :
         {testing::BuiltBinary("agent/loyalty-agent"), std::string("--data-dir"),
          dir_.file("data-" + store_), std::string("--listen"), std::string("127.0.0.1:0"),
          std::string("--store-id"), store_, std::string("--terminal-id"), std::string("T1"),
          std::string("--server"), "127.0.0.1:" + std::to_string(server_port_),
          std::string("--tls-dir"), tls_dir_, std::string("--sync-interval-ms"),
          std::to_string(sync_interval_ms_)}) {
      argv.push_back(std::move(arg));
    }
    process_ = std::make_unique<Process>(std::move(argv), log_);
    const std::string rest =
        process_->WaitForLine("listening on 127.0.0.1:", std::chrono::seconds(60));
    const int port = rest.empty() ? 0 : std::atoi(rest.c_str());
    http_ = port > 0 ? std::make_unique<HttpClient>("127.0.0.1", port) : nullptr;
    port_ = port;
    return port;
  }
  void Kill() {
    port_ = 0;
    process_->Kill();
  }
  int Terminate() {
    port_ = 0;
    return process_->Terminate();
  }
  const std::string& store() const { return store_; }
  int port() const { return port_; }
  std::string Log() const { return Tail(log_); }
  HttpClient& http() { return *http_; }

  v1::SyncStatusResponse Status() {
    v1::SyncStatusResponse out;
    auto res = http_->Get("/v1/sync");
    EXPECT_EQ(res.status, 200) << res.body;
    EXPECT_EQ(proto::ParseJson(res.body, &out), "") << res.body;
    return out;
  }

  // One sync round now (POST /v1/sync); true when it succeeded.
  bool SyncOnce(v1::SyncStatusResponse* status = nullptr) {
    auto res = http_->Request("POST", "/v1/sync?timeout_ms=20000", "", 30000);
    if (res.status != 200) return false;
    v1::SyncStatusResponse s;
    if (!proto::ParseJson(res.body, &s).empty()) return false;
    if (status) *status = s;
    return true;
  }

  // Rounds until one succeeds with an empty outbox.
  bool SyncUntilDrained() {
    return Eventually([&] {
      v1::SyncStatusResponse s;
      return SyncOnce(&s) && s.pending_events() == 0;
    });
  }

  v1::MemberResponse Member(int card) {
    auto res = http_->Get("/v1/members/" + Card(card));
    EXPECT_EQ(res.status, 200) << res.body;
    v1::MemberResponse parsed;
    EXPECT_EQ(proto::ParseJson(res.body, &parsed), "") << res.body;
    return parsed;
  }

  void Enrol(int card, Ledger* ledger) {
    auto res =
        http_->Post("/v1/members", R"({"card":")" + Card(card) + R"(","display_name":"Member )" +
                                       std::to_string(card) + "\"}");
    ASSERT_EQ(res.status, 201) << res.body;
    ledger->Enrolled(store_, card);
  }

 private:
  const testing::TempDir& dir_;
  std::string store_, tls_dir_;
  uint16_t server_port_;
  int sync_interval_ms_;
  std::string log_;
  std::vector<std::string> launcher_;
  std::atomic<int> port_{0};
  std::unique_ptr<Process> process_;
  std::unique_ptr<HttpClient> http_;
};

// The body of checkout `n`: the same bytes every time, so that a retry is the
// same request (a commit is idempotent on pos_txn_id).
std::string CommitBody(const std::string& txn, int card, int n, int unit_price = 0) {
  const int price = unit_price > 0 ? unit_price : 100 + (n * 37) % 2000;
  return R"({"pos_txn_id":")" + txn + R"(","card":")" + Card(card) +
         R"(","lines":[{"sku":"S1","category":"Coffee","quantity":1,"unit_price":)" +
         std::to_string(price) + "}]}";
}

// Commits `txn` on `http`; true with the answer recorded in `ledger`.
bool Commit(HttpClient& http, const std::string& store, const std::string& txn, int card, int n,
            Ledger* ledger, int unit_price = 0) {
  auto res = http.Post("/v1/checkout/commit", CommitBody(txn, card, n, unit_price));
  if (res.status != 200) {
    ADD_FAILURE() << txn << ": " << res.status << " " << res.body;
    return false;
  }
  v1::CommitResponse answer;
  EXPECT_EQ(proto::ParseJson(res.body, &answer), "") << res.body;
  EXPECT_EQ(answer.pos_txn_id(), txn);
  ledger->Committed(store, card, answer);
  return true;
}

// `count` checkouts on `agent` from `threads` clients, spread over `cards`.
void Checkouts(Agent& agent, const std::vector<int>& cards, int count, const std::string& prefix,
               Ledger* ledger, int threads = 4, int unit_price = 0) {
  std::atomic<int> next{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      HttpClient http("127.0.0.1", agent.port());
      for (int n = next++; n < count; n = next++) {
        const int card = cards[n % cards.size()];
        if (!Commit(http, agent.store(), prefix + std::to_string(n), card, n, ledger, unit_price)) {
          return;
        }
      }
    });
  }
  for (auto& w : workers) w.join();
}

// A POS that keeps selling on `agent` from its own thread: basket after
// basket, each retried with the same pos_txn_id until the agent answers it
// (as a POS does after a timeout or while the agent restarts), and each
// answer recorded in `ledger`. Stop() lets the basket in flight finish.
class Till {
 public:
  Till(Agent& agent, std::vector<int> cards, std::string prefix, Ledger* ledger)
      : agent_(agent), cards_(std::move(cards)), prefix_(std::move(prefix)), ledger_(ledger) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Till() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int retries() const { return retries_; }
  bool failed() const { return failed_; }

 private:
  void Run() {
    std::unique_ptr<HttpClient> http;
    int http_port = 0;
    for (int n = 0; !stop_; ++n) {
      const std::string txn = prefix_ + std::to_string(n);
      const int card = cards_[n % cards_.size()];
      const std::string body = CommitBody(txn, card, n);
      const auto deadline = Clock::now() + std::chrono::seconds(120);
      for (;;) {
        if (Clock::now() > deadline) {
          ADD_FAILURE() << txn << " was never answered";
          failed_ = true;
          return;
        }
        const int port = agent_.port();
        if (port == 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          continue;
        }
        if (!http || http_port != port) {
          http = std::make_unique<HttpClient>("127.0.0.1", port);
          http_port = port;
        }
        auto res = http->Request("POST", "/v1/checkout/commit", body, 10000);
        if (res.status == 200) {
          v1::CommitResponse answer;
          EXPECT_EQ(proto::ParseJson(res.body, &answer), "") << res.body;
          ledger_->Committed(agent_.store(), card, answer);
          break;
        }
        if (res.status != 0 && res.status != 503) {
          ADD_FAILURE() << txn << ": " << res.status << " " << res.body;
          failed_ = true;
          return;
        }
        // No answer: the agent is down or restarting. Same request again.
        ++retries_;
        http.reset();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
  }

  Agent& agent_;
  const std::vector<int> cards_;
  const std::string prefix_;
  Ledger* ledger_;
  std::atomic<bool> stop_{false};
  std::atomic<int> retries_{0};
  std::atomic<bool> failed_{false};
  std::thread thread_;
};

// Asks `agent` for a sync round again and again (as `loyaltyctl sync` would),
// so that rounds run while the server comes and goes instead of waiting out
// the agent's backoff.
class SyncPoker {
 public:
  explicit SyncPoker(Agent& agent) : agent_(agent) {
    thread_ = std::thread([this] {
      while (!stop_) {
        HttpClient http("127.0.0.1", agent_.port());
        http.Request("POST", "/v1/sync?timeout_ms=3000", "", 10000);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  ~SyncPoker() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  Agent& agent_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::vector<int> Cards(int first, int count) {
  std::vector<int> out;
  for (int i = 0; i < count; ++i) out.push_back(first + i);
  return out;
}

// The server's ledger holds exactly what `ledger` says the POS was told:
// per store, the number of events received (none rejected); per member, the
// balance (the sum of the points each acknowledged commit earned), and a
// history with each acknowledged purchase exactly once and nothing else.
void ExpectServerHolds(Server& server, const Ledger& ledger) {
  auto stores = server.Stores();
  for (const auto& [store, events] : ledger.store_events()) {
    SCOPED_TRACE("store " + store);
    ASSERT_EQ(stores.count(store), 1u);
    EXPECT_EQ(stores[store].events_received(), events);
    EXPECT_EQ(stores[store].events_rejected(), 0);
  }
  for (int card : ledger.cards()) {
    SCOPED_TRACE("card " + std::to_string(card));
    const auto member = server.Member(card);
    const std::vector<std::string> txns = ledger.txns(card);
    EXPECT_EQ(member.member().points_balance(), ledger.points(card));
    EXPECT_EQ(member.member().qualifying_visits(), static_cast<int64_t>(txns.size()));

    const std::vector<v1::Event> history = server.History(card);
    ASSERT_LT(history.size(), 1000u) << "history truncated: use more members";
    std::map<std::string, int> purchases;
    int enrolments = 0;
    int visits = 0;
    for (const auto& e : history) {
      if (e.has_purchase()) ++purchases[e.purchase().pos_txn_id()];
      if (e.has_enrolment()) ++enrolments;
      if (e.has_visit()) ++visits;
    }
    EXPECT_EQ(enrolments, ledger.enrolments(card));
    EXPECT_EQ(visits, static_cast<int>(txns.size()));
    EXPECT_EQ(purchases.size(), txns.size());
    for (const auto& txn : txns) {
      EXPECT_EQ(purchases[txn], 1) << txn << " on the server " << purchases[txn] << " times";
    }
  }
}

// The terminal shows the server's balance and tier for every member, with
// nothing of its own pending.
void ExpectTerminalAgrees(Agent& agent, Server& server, const std::vector<int>& cards) {
  for (int card : cards) {
    SCOPED_TRACE("card " + std::to_string(card));
    const auto authoritative = server.Member(card).member();
    const auto shown = agent.Member(card).member();
    EXPECT_EQ(shown.points_balance(), authoritative.points_balance());
    EXPECT_EQ(shown.pending_points(), 0);
    EXPECT_EQ(shown.tier(), authoritative.tier());
    EXPECT_EQ(shown.member_id(), authoritative.member_id());
  }
}

class ServerE2eTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(pki_.ok()); }
  testing::TempDir dir_;
  Pki pki_{dir_};
};

TEST_F(ServerE2eTest, OfflineCheckoutsReachTheServerExactlyOnceWhenItStarts) {
  constexpr int kMembers = 8;
  constexpr int kCheckouts = 1000;
  const uint16_t port = FreePort();  // nobody listens there yet
  Agent agent(dir_, "S1", pki_.Store("S1"), port);
  ASSERT_GT(agent.Start(), 0) << agent.Log();
  Ledger ledger;
  const auto cards = Cards(0, kMembers);
  for (int card : cards) agent.Enrol(card, &ledger);
  Checkouts(agent, cards, kCheckouts, "off-", &ledger);
  ASSERT_EQ(ledger.commits(), kCheckouts);
  EXPECT_FALSE(agent.SyncOnce());
  const auto offline = agent.Status();
  EXPECT_FALSE(offline.connected());
  EXPECT_EQ(offline.pending_events(), ledger.store_events()["S1"]);

  Server server(dir_, pki_, port);
  ASSERT_TRUE(server.Start()) << server.Log();
  const auto started = Clock::now();
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log();
  // One more round brings down the snapshots of the last batch.
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log();
  std::cout << "uploaded " << ledger.store_events()["S1"] << " events in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count()
            << " ms" << std::endl;

  ExpectServerHolds(server, ledger);
  ExpectTerminalAgrees(agent, server, cards);
  // Each member has some 250 events: head office's printout shows the
  // latest and says that they are only the latest.
  std::string lookup;
  EXPECT_EQ(server.Ctl({"members", "lookup", Card(cards[0])}, &lookup), 0) << lookup;
  EXPECT_NE(lookup.find("history (latest 50 events):"), std::string::npos) << lookup;
  const auto online = agent.Status();
  EXPECT_EQ(online.pending_events(), 0);
  EXPECT_EQ(online.dead_letters(), 0);
  EXPECT_TRUE(online.connected());
  EXPECT_FALSE(online.has_last_error());
  EXPECT_EQ(agent.Terminate(), 0) << agent.Log();
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
}

TEST_F(ServerE2eTest, TwoOfflineStoresSellingToOneMemberBothShowTheServersBalanceAndTier) {
  constexpr int kCard = 7;
  // Neither store alone reaches Gold (15 visits); together they do.
  constexpr int kSalesA = 8;
  constexpr int kSalesB = 9;
  const uint16_t port = FreePort();
  Agent a(dir_, "S1", pki_.Store("S1"), port);
  Agent b(dir_, "S2", pki_.Store("S2"), port);
  ASSERT_GT(a.Start(), 0) << a.Log();
  ASSERT_GT(b.Start(), 0) << b.Log();
  Ledger ledger;
  a.Enrol(kCard, &ledger);  // the same card enrolled at both stores offline
  b.Enrol(kCard, &ledger);
  Checkouts(a, {kCard}, kSalesA, "a-", &ledger, 1, 1000);
  Checkouts(b, {kCard}, kSalesB, "b-", &ledger, 1, 1000);
  const auto local_a = a.Member(kCard).member();
  const auto local_b = b.Member(kCard).member();
  EXPECT_NE(local_a.tier(), "Gold");
  EXPECT_NE(local_b.tier(), "Gold");
  EXPECT_EQ(local_a.points_balance() + local_b.points_balance(), ledger.points(kCard));

  Server server(dir_, pki_, port);
  ASSERT_TRUE(server.Start()) << server.Log();
  ASSERT_TRUE(a.SyncUntilDrained()) << a.Log();
  ASSERT_TRUE(b.SyncUntilDrained()) << b.Log();

  ExpectServerHolds(server, ledger);
  const auto member = server.Member(kCard);
  EXPECT_EQ(member.member().points_balance(), ledger.points(kCard));
  EXPECT_EQ(member.member().tier(), "Gold");
  EXPECT_EQ(member.member().qualifying_visits(), kSalesA + kSalesB);
  EXPECT_EQ(member.aliases_size(), 1) << "one member, the other enrolment merged into it";

  // Both terminals pull and show the authoritative member.
  ASSERT_TRUE(Eventually([&] {
    a.SyncOnce();
    b.SyncOnce();
    const auto ma = a.Member(kCard).member();
    const auto mb = b.Member(kCard).member();
    return ma.points_balance() == member.member().points_balance() &&
           mb.points_balance() == member.member().points_balance() && ma.tier() == "Gold" &&
           mb.tier() == "Gold" && ma.member_id() == member.member().member_id() &&
           mb.member_id() == member.member().member_id();
  })) << a.Member(kCard).DebugString()
      << b.Member(kCard).DebugString() << member.DebugString();
  ExpectTerminalAgrees(a, server, {kCard});
  ExpectTerminalAgrees(b, server, {kCard});
}

TEST_F(ServerE2eTest, APromotionPublishedWithLoyaltyctlReachesAConnectedTerminalByPush) {
  Server server(dir_, pki_, 0);
  ASSERT_TRUE(server.Start()) << server.Log();
  // Idle rounds every 10 minutes: within the poll limit the promotion can
  // only arrive by push.
  Agent agent(dir_, "S1", pki_.Store("S1"), server.port(), 600000);
  ASSERT_GT(agent.Start(), 0) << agent.Log();
  Ledger ledger;
  agent.Enrol(1, &ledger);
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log();
  ASSERT_TRUE(agent.Status().connected());
  // Ingested member changes are not pushed (terminals pull them on their
  // interval): the only push to come is the promotion's.
  const int64_t pushes = server.Metric("loyalty_pushes_sent_total");
  ASSERT_EQ(pushes, 0) << server.Log();
  const std::string basket =
      R"({"card":")" + Card(1) +
      R"(","lines":[{"sku":"S1","category":"Coffee","quantity":1,"unit_price":1000}]})";
  v1::QuoteResponse before;
  auto res = agent.http().Post("/v1/checkout/quote", basket);
  ASSERT_EQ(res.status, 200) << res.body;
  ASSERT_EQ(proto::ParseJson(res.body, &before), "");

  const std::string offer_file = dir_.file("offer.json");
  std::ofstream(offer_file) << R"({"id":"e2e-push","name":"Pushed bonus","stackable":true,)"
                               R"("bonus_points":25})";
  const auto published = Clock::now();
  std::string output;
  ASSERT_EQ(server.Ctl({"promotions", "put", offer_file}, &output), 0) << output;
  EXPECT_NE(output.find("published e2e-push"), std::string::npos) << output;
  const bool arrived = Eventually(
      [&] {
        const v1::MemberResponse shown = agent.Member(1);
        for (const auto& o : shown.offers()) {
          if (o.offer_id() == "e2e-push") return true;
        }
        return false;
      },
      std::chrono::seconds(60));
  const auto elapsed = Clock::now() - published;
  ASSERT_TRUE(arrived) << agent.Log() << server.Log();
  std::cout << "promotion published with loyaltyctl shown at the terminal after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
            << " ms (including loyaltyctl's own start and TLS handshake)" << std::endl;

  EXPECT_GE(server.Metric("loyalty_pushes_sent_total"), pushes + 1) << "no push for the promotion";

  v1::QuoteResponse after;
  res = agent.http().Post("/v1/checkout/quote", basket);
  ASSERT_EQ(res.status, 200) << res.body;
  ASSERT_EQ(proto::ParseJson(res.body, &after), "");
  EXPECT_EQ(after.points_earned(), before.points_earned() + 25);
  bool applied = false;
  for (const auto& o : after.offers()) applied |= o.offer_id() == "e2e-push";
  EXPECT_TRUE(applied) << after.DebugString();
}

// Store IT reads how stale a terminal is from its last successful sync:
// an agent restarted while the server is down still reports the one before
// the restart, through the API and through `loyaltyctl sync --status`.
TEST_F(ServerE2eTest, TheLastSuccessfulSyncSurvivesAnAgentRestartWhileTheServerIsDown) {
  Server server(dir_, pki_, 0);
  ASSERT_TRUE(server.Start()) << server.Log();
  // Rounds only when asked, so the last success is the one the test ran.
  Agent agent(dir_, "S1", pki_.Store("S1"), server.port(), 600'000);
  ASSERT_GT(agent.Start(), 0) << agent.Log();
  Ledger ledger;
  agent.Enrol(1, &ledger);
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log();
  const int64_t before = agent.Status().last_success_ms();
  ASSERT_GT(before, 0);
  // The agent first, so that no round of it sees the server go away.
  EXPECT_EQ(agent.Terminate(), 0) << agent.Log();
  EXPECT_EQ(server.Terminate(), 0) << server.Log();

  ASSERT_GT(agent.Start(), 0) << agent.Log();
  EXPECT_FALSE(agent.SyncOnce());  // the server is down
  const auto after = agent.Status();
  EXPECT_FALSE(after.connected());
  EXPECT_TRUE(after.has_last_error()) << after.DebugString();
  EXPECT_EQ(after.last_success_ms(), before) << after.DebugString();

  Process ctl({testing::BuiltBinary("ctl/loyaltyctl"), "sync", "--status", "--url",
               "http://127.0.0.1:" + std::to_string(agent.port())},
              dir_.file("ctl-sync-status.log"));
  EXPECT_EQ(ctl.Wait(), 0) << ctl.Log();
  EXPECT_EQ(ctl.Log().find("never"), std::string::npos) << ctl.Log();
  EXPECT_NE(ctl.Log().find(core::FormatDateTime(before)), std::string::npos) << ctl.Log();
  EXPECT_EQ(agent.Terminate(), 0) << agent.Log();
}

// Issue #4's end-to-end path, all real processes: visits at two stores move
// a member from "few visits" to "some visits" on the server; a promotion
// head office targets at "some visits" with loyaltyctl reaches a third
// store's terminal, which applies it to that member and not to one outside
// the segment.
TEST_F(ServerE2eTest, ASegmentTargetedPromotionReachesAThirdStoreForItsMembersOnly) {
  Server server(dir_, pki_, 0);
  ASSERT_TRUE(server.Start()) << server.Log();
  // Rounds only when the test asks for them.
  Agent s1(dir_, "S1", pki_.Store("S1"), server.port(), 600000);
  Agent s2(dir_, "S2", pki_.Store("S2"), server.port(), 600000);
  Agent s3(dir_, "S3", pki_.Store("S3"), server.port(), 600000);
  ASSERT_GT(s1.Start(), 0) << s1.Log();
  ASSERT_GT(s2.Start(), 0) << s2.Log();
  ASSERT_GT(s3.Start(), 0) << s3.Log();
  constexpr int kRegular = 1, kNewcomer = 2;
  Ledger ledger;
  s1.Enrol(kRegular, &ledger);
  s1.Enrol(kNewcomer, &ledger);
  ASSERT_TRUE(Commit(s1.http(), "S1", "s1-1", kRegular, 1, &ledger));
  ASSERT_TRUE(Commit(s1.http(), "S1", "s1-2", kNewcomer, 2, &ledger));
  ASSERT_TRUE(s1.SyncUntilDrained()) << s1.Log();

  auto segments = [&](int card) {
    const auto ids = server.Member(card).member().segment_ids();
    return std::set<std::string>(ids.begin(), ids.end());
  };
  EXPECT_TRUE(segments(kRegular).count("few-visits")) << server.Log();
  EXPECT_FALSE(segments(kRegular).count("some-visits"));

  // Two more visits at store S2, which learnt the member from the feed.
  ASSERT_TRUE(s2.SyncUntilDrained()) << s2.Log();
  ASSERT_TRUE(Commit(s2.http(), "S2", "s2-1", kRegular, 3, &ledger));
  ASSERT_TRUE(Commit(s2.http(), "S2", "s2-2", kRegular, 4, &ledger));
  ASSERT_TRUE(s2.SyncUntilDrained()) << s2.Log();
  EXPECT_TRUE(segments(kRegular).count("some-visits")) << server.Log();
  EXPECT_FALSE(segments(kRegular).count("few-visits"));
  EXPECT_TRUE(segments(kNewcomer).count("few-visits"));

  const std::string offer_file = dir_.file("some-visits-offer.json");
  std::ofstream(offer_file) << R"({"id":"e2e-habit","name":"Habit bonus","stackable":true,)"
                               R"("segment_ids":["some-visits"],"bonus_points":40})";
  std::string output;
  ASSERT_EQ(server.Ctl({"promotions", "put", offer_file}, &output), 0) << output;

  ASSERT_TRUE(s3.SyncUntilDrained()) << s3.Log();
  auto quote = [&](int card) {
    const std::string basket =
        R"({"card":")" + Card(card) +
        R"(","lines":[{"sku":"S1","category":"Coffee","quantity":1,"unit_price":1000}]})";
    auto res = s3.http().Post("/v1/checkout/quote", basket);
    EXPECT_EQ(res.status, 200) << res.body;
    v1::QuoteResponse parsed;
    EXPECT_EQ(proto::ParseJson(res.body, &parsed), "") << res.body;
    return parsed;
  };
  auto has_offer = [](const auto& offers) {
    for (const auto& o : offers) {
      if (o.offer_id() == "e2e-habit") return true;
    }
    return false;
  };
  const v1::QuoteResponse regular = quote(kRegular);
  const v1::QuoteResponse newcomer = quote(kNewcomer);
  EXPECT_TRUE(has_offer(regular.offers())) << regular.DebugString() << s3.Log();
  EXPECT_FALSE(has_offer(newcomer.offers())) << newcomer.DebugString();
  EXPECT_EQ(regular.points_earned(), newcomer.points_earned() + 40);
  EXPECT_TRUE(has_offer(s3.Member(kRegular).offers()));
  EXPECT_FALSE(has_offer(s3.Member(kNewcomer).offers()));
}

TEST_F(ServerE2eTest, AgentKilledAtRandomDuringSyncLosesAndDoublesNothing) {
  constexpr int kMembers = 12;
  constexpr int kBacklog = 300;
  constexpr int kKills = 24;
  std::mt19937 rng(Seed());
  const uint16_t port = FreePort();
  Agent agent(dir_, "S1", pki_.Store("S1"), port);
  ASSERT_GT(agent.Start(), 0) << agent.Log();
  Ledger ledger;
  const auto cards = Cards(100, kMembers);
  for (int card : cards) agent.Enrol(card, &ledger);
  Checkouts(agent, cards, kBacklog, "backlog-", &ledger);  // recorded offline

  Server server(dir_, pki_, port);
  ASSERT_TRUE(server.Start()) << server.Log();
  int with_backlog = 0;
  {
    Till till(agent, cards, "till-", &ledger);
    std::uniform_int_distribution<int> delay_ms(20, 300);
    for (int kill = 0; kill < kKills && !till.failed(); ++kill) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      if (agent.Status().pending_events() > 0) ++with_backlog;
      agent.Kill();
      ASSERT_GT(agent.Start(), 0) << "restart " << kill << ": " << agent.Log();
    }
    till.Stop();
    ASSERT_FALSE(till.failed());
    std::cout << kKills << " SIGKILLs (" << with_backlog << " with events waiting for upload), "
              << ledger.commits() << " commits acknowledged, " << till.retries()
              << " retried after a kill" << std::endl;
  }
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log();
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log();

  ExpectServerHolds(server, ledger);
  ExpectTerminalAgrees(agent, server, cards);
  EXPECT_EQ(agent.Status().dead_letters(), 0);
  EXPECT_EQ(agent.Terminate(), 0) << agent.Log();
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
}

TEST_F(ServerE2eTest, ServerKilledAtRandomDuringSyncKeepsEveryAcknowledgedCommitExactlyOnce) {
  constexpr int kMembers = 6;
  constexpr int kBacklog = 150;
  constexpr int kKills = 24;
  std::mt19937 rng(Seed());
  const uint16_t port = FreePort();
  Agent a(dir_, "S1", pki_.Store("S1"), port);
  Agent b(dir_, "S2", pki_.Store("S2"), port);
  ASSERT_GT(a.Start(), 0) << a.Log();
  ASSERT_GT(b.Start(), 0) << b.Log();
  Ledger ledger;
  const auto cards_a = Cards(200, kMembers);
  const auto cards_b = Cards(300, kMembers);
  for (int card : cards_a) a.Enrol(card, &ledger);
  for (int card : cards_b) b.Enrol(card, &ledger);
  Checkouts(a, cards_a, kBacklog, "a-backlog-", &ledger);
  Checkouts(b, cards_b, kBacklog, "b-backlog-", &ledger);

  Server server(dir_, pki_, port);
  ASSERT_TRUE(server.Start()) << server.Log();
  {
    Till till_a(a, cards_a, "a-till-", &ledger);
    Till till_b(b, cards_b, "b-till-", &ledger);
    SyncPoker poke_a(a);
    SyncPoker poke_b(b);
    std::uniform_int_distribution<int> delay_ms(20, 300);
    for (int kill = 0; kill < kKills; ++kill) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      server.Kill();
      ASSERT_TRUE(server.Start()) << "restart " << kill << ": " << server.Log();
    }
    till_a.Stop();
    till_b.Stop();
    ASSERT_FALSE(till_a.failed());
    ASSERT_FALSE(till_b.failed());
    std::cout << kKills << " SIGKILLs of the server, " << ledger.commits()
              << " commits acknowledged" << std::endl;
  }
  ASSERT_TRUE(a.SyncUntilDrained()) << a.Log() << server.Log();
  ASSERT_TRUE(b.SyncUntilDrained()) << b.Log() << server.Log();
  ASSERT_TRUE(a.SyncUntilDrained()) << a.Log();

  ExpectServerHolds(server, ledger);
  ExpectTerminalAgrees(a, server, cards_a);
  ExpectTerminalAgrees(b, server, cards_b);
  EXPECT_EQ(a.Status().dead_letters(), 0);
  EXPECT_EQ(b.Status().dead_letters(), 0);
  EXPECT_EQ(a.Terminate(), 0) << a.Log();
  EXPECT_EQ(b.Terminate(), 0) << b.Log();
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
}

// The server's disk fills up while a store keeps selling: the server
// refuses the batches it cannot store (the store keeps them in its outbox
// and says why), stays up and answers head office; once there is room the
// store catches up and the server holds every checkout exactly once.
TEST_F(ServerE2eTest, AServerWithAFullDiskKeepsNothingHalfDoneAndCatchesUpOnceThereIsRoom) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  testing::SmallDisk disk(24 << 20);
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here: " << disk.why();
  Server server(dir_, pki_, 0, disk.file("server-data"));
  ASSERT_TRUE(server.Start()) << server.Log();
  // Rounds only when asked, so the test knows which round met the full disk.
  Agent agent(dir_, "S1", pki_.Store("S1"), server.port(), 600'000);
  ASSERT_GT(agent.Start(), 0) << agent.Log();
  Ledger ledger;
  const auto cards = Cards(0, 6);
  for (int card : cards) agent.Enrol(card, &ledger);
  Checkouts(agent, cards, 60, "before-", &ledger);
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log();

  ASSERT_GT(disk.FillUp("filler"), 0u);
  Checkouts(agent, cards, 300, "full-", &ledger);
  EXPECT_FALSE(agent.SyncOnce());
  const auto refused = agent.Status();
  EXPECT_GT(refused.pending_events(), 0);
  ASSERT_TRUE(refused.has_last_error());
  EXPECT_EQ(refused.last_error().code(), "disk_full") << refused.DebugString();
  EXPECT_EQ(refused.dead_letters(), 0) << "a full disk is not the events' fault";
  // Still up, and head office can still read.
  EXPECT_EQ(server.Stores().count("S1"), 1u);
  std::string health;
  EXPECT_EQ(server.Ctl({"health"}, &health), 0) << health;
  EXPECT_NE(health.find("status           ok"), std::string::npos) << health;
  EXPECT_NE(server.Log().find("not ingested"), std::string::npos) << server.Log();

  std::filesystem::remove(disk.file("filler"));
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log() << server.Log();
  ASSERT_TRUE(agent.SyncUntilDrained()) << agent.Log();
  ExpectServerHolds(server, ledger);
  ExpectTerminalAgrees(agent, server, cards);
  EXPECT_EQ(agent.Terminate(), 0) << agent.Log();
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
}

// A terminal whose clock is an hour fast (faketime shifts the agent's
// clock only): both sides measure it when it connects, log it with what to
// do, and show it: GET /v1/sync on the terminal, loyaltyctl admin stores at
// head office.
TEST_F(ServerE2eTest, ATerminalClockAnHourFastIsMeasuredAndReportedByBothSides) {
  const std::string libfaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
  if (!std::filesystem::exists(libfaketime)) {
    GTEST_SKIP() << "libfaketime is not installed (scripts/setup installs faketime)";
  }
  Server server(dir_, pki_, 0);
  ASSERT_TRUE(server.Start()) << server.Log();
  Agent agent(dir_, "S1", pki_.Store("S1"), server.port(), 600'000);
  // env execs the agent itself (faketime would fork and keep SIGTERM to
  // itself); the sanitizer builds accept a preloaded library first.
  agent.set_launcher({"/usr/bin/env", "LD_PRELOAD=" + libfaketime, "FAKETIME=+1h",
                      "FAKETIME_DONT_FAKE_MONOTONIC=1", "ASAN_OPTIONS=verify_asan_link_order=0"});
  ASSERT_GT(agent.Start(), 0) << agent.Log();
  ASSERT_TRUE(agent.SyncOnce()) << agent.Log();
  constexpr int64_t kHour = 3'600'000;
  constexpr int64_t kSlack = 60'000;  // transit, and a slow machine

  const auto status = agent.Status();
  ASSERT_TRUE(status.has_clock_skew_ms()) << status.DebugString();
  EXPECT_NEAR(status.clock_skew_ms(), kHour, kSlack);
  EXPECT_NE(agent.Log().find("s ahead of the server's"), std::string::npos) << agent.Log();

  const auto stores = server.Stores();
  ASSERT_EQ(stores.count("S1"), 1u);
  ASSERT_EQ(stores.at("S1").terminals_size(), 1) << stores.at("S1").DebugString();
  const v1::TerminalStatus& terminal = stores.at("S1").terminals(0);
  EXPECT_EQ(terminal.terminal_id(), "T1");
  EXPECT_TRUE(terminal.connected());
  EXPECT_NEAR(terminal.clock_skew_ms(), kHour, kSlack);
  EXPECT_NE(server.Log().find("terminal T1: its clock is"), std::string::npos) << server.Log();
  std::string table;
  EXPECT_EQ(server.Ctl({"stores"}, &table), 0) << table;
  EXPECT_NE(table.find("s ahead)"), std::string::npos) << table;
  EXPECT_EQ(agent.Terminate(), 0) << agent.Log();
  EXPECT_EQ(server.Terminate(), 0) << server.Log();
}

}  // namespace
}  // namespace loyalty

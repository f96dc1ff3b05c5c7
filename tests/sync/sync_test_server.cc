#include "tests/sync/sync_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <vector>

#include "pki/bundle.h"
#include "sync/tls.h"

namespace loyalty::testing {

namespace v1 = loyalty::v1;
namespace net = boost::asio;

namespace {
int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

SyncTestServer::SyncTestServer(const std::filesystem::path& tls_dir, const std::string& db_path,
                               uint16_t port) {
  auto store = storage::OpenSqliteServerStore(db_path);
  if (!store.ok()) return;
  store_ = std::move(*store);
  auto bundle = pki::LoadBundle(tls_dir);
  if (!bundle.ok()) return;
  auto ctx = sync::MakeServerContextWithoutCrl(*bundle);
  if (!ctx.ok()) return;
  sync::ConnectionCallbacks callbacks;
  callbacks.on_open = [this](const sync::ConnectionPtr& c) {
    std::lock_guard lock(conns_mutex_);
    conns_.insert(c);
  };
  callbacks.on_frame = [this](const sync::ConnectionPtr& c, v1::Frame f) {
    OnFrame(c, std::move(f));
  };
  callbacks.on_close = [this](const sync::ConnectionPtr& c, const core::Error&) {
    std::lock_guard lock(conns_mutex_);
    conns_.erase(c);
  };
  auto server =
      sync::Server::Listen(ioc_, net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port),
                           *ctx, sync::ServerOptions{}, callbacks);
  if (!server.ok()) return;
  server_ = *server;
  port_ = server_->local_endpoint().port();
  thread_ = std::thread([this] { ioc_.run(); });
}

SyncTestServer::~SyncTestServer() {
  if (server_) server_->Stop();
  CloseAll();
  work_.reset();
  ioc_.stop();
  if (thread_.joinable()) thread_.join();
}

void SyncTestServer::CloseAll() {
  std::set<sync::ConnectionPtr> conns;
  {
    std::lock_guard lock(conns_mutex_);
    conns = conns_;
  }
  for (const auto& c : conns) c->Close();
}

storage::ServerStore::Totals SyncTestServer::Totals() {
  return WithStore([](storage::ServerStore& s) {
    auto t = s.LedgerTotals();
    return t.ok() ? *t : storage::ServerStore::Totals{-1, -1, -1};
  });
}

void SyncTestServer::PutOffer(const v1::Offer& offer) {
  uint64_t version = WithStore([&](storage::ServerStore& s) {
    auto v = s.PutOffer(offer);
    return v.ok() ? *v : 0;
  });
  Push(version);
}

void SyncTestServer::Push(uint64_t version) {
  std::set<sync::ConnectionPtr> conns;
  {
    std::lock_guard lock(conns_mutex_);
    conns = conns_;
  }
  for (const auto& c : conns) {
    v1::Frame push;
    push.mutable_push()->set_latest_version(version);
    c->Send(std::move(push));
  }
}

void SyncTestServer::OnFrame(const sync::ConnectionPtr& conn, v1::Frame frame) {
  v1::Frame reply;
  reply.set_correlation_id(frame.correlation_id());
  if (frame.has_upload_batch()) {
    const auto& batch = frame.upload_batch();
    std::vector<v1::Event> events(batch.events().begin(), batch.events().end());
    auto outcome = WithStore(
        [&](storage::ServerStore& s) { return s.Ingest(conn->peer().id, events, NowMs()); });
    ++batches_;
    if (!outcome.ok()) {
      reply.mutable_error()->set_code(outcome.error().code);
      reply.mutable_error()->set_message(outcome.error().message);
      conn->Send(std::move(reply));
      return;
    }
    if (drop_after_commit_ > 0) {
      --drop_after_commit_;
      conn->Close();  // committed, but the ack never leaves
      return;
    }
    auto* ack = reply.mutable_upload_ack();
    ack->set_batch_id(batch.batch_id());
    for (const auto& id : outcome->acknowledged) *ack->add_acknowledged() = id;
    for (const auto& r : outcome->rejected) *ack->add_rejected() = r;
    conn->Send(std::move(reply));
    if (!outcome->touched_members.empty()) Push(outcome->latest_version);
    return;
  }
  if (frame.has_changes_request()) {
    auto page = WithStore([&](storage::ServerStore& s) {
      return s.Changes(frame.changes_request().after_version(),
                       frame.changes_request().max_changes());
    });
    if (!page.ok()) {
      reply.mutable_error()->set_code(page.error().code);
      reply.mutable_error()->set_message(page.error().message);
    } else {
      *reply.mutable_changes_page() = std::move(*page);
    }
    conn->Send(std::move(reply));
    return;
  }
  reply.mutable_error()->set_code("unexpected_frame");
  reply.mutable_error()->set_message("the test server does not handle this frame");
  conn->Send(std::move(reply));
}

// ------------------------------------------------------------ CuttingProxy --

struct CuttingProxy::Impl {
  int listen_fd = -1;
  std::atomic<bool> stop{false};
  std::thread acceptor;
  std::mutex mutex;
  std::vector<std::thread> pumps;
  std::vector<int> fds;
};

CuttingProxy::CuttingProxy(uint16_t target_port) : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.listen_fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(im.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(im.listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::listen(im.listen_fd, 16);
  socklen_t len = sizeof addr;
  ::getsockname(im.listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  im.acceptor = std::thread([this, target_port] {
    Impl& self = *impl_;
    while (!self.stop) {
      pollfd ready{self.listen_fd, POLLIN, 0};
      if (::poll(&ready, 1, 100) <= 0) continue;
      int client = ::accept(self.listen_fd, nullptr, nullptr);
      if (client < 0) continue;
      int upstream = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in target{};
      target.sin_family = AF_INET;
      target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      target.sin_port = htons(target_port);
      if (::connect(upstream, reinterpret_cast<sockaddr*>(&target), sizeof target) != 0) {
        ::close(client);
        ::close(upstream);
        continue;
      }
      // Bytes through this connection, both ways; cut once past the limit.
      auto total = std::make_shared<std::atomic<std::size_t>>(0);
      auto cut = std::make_shared<std::atomic<bool>>(false);
      std::size_t limit = cut_after_;
      if (cut_hi_ > 0) {
        static thread_local std::mt19937_64 rng{std::random_device{}()};
        limit = std::uniform_int_distribution<std::size_t>(cut_lo_, cut_hi_)(rng);
      }
      auto pump = [this, total, cut, limit, client, upstream](int from, int to) {
        char buf[512];
        while (!impl_->stop && !*cut) {
          pollfd p{from, POLLIN, 0};
          if (::poll(&p, 1, 100) <= 0) continue;
          ssize_t n = ::read(from, buf, sizeof buf);
          if (n <= 0) break;
          std::size_t send = static_cast<std::size_t>(n);
          if (limit > 0 && *total + send >= limit) {
            send = limit > *total ? limit - *total : 0;
            if (send > 0 && ::write(to, buf, send) < 0) break;
            *total += send;
            if (!cut->exchange(true)) ++cuts_;
            break;
          }
          if (::write(to, buf, send) != static_cast<ssize_t>(send)) break;
          *total += send;
        }
        *cut = true;
        ::shutdown(client, SHUT_RDWR);
        ::shutdown(upstream, SHUT_RDWR);
      };
      std::lock_guard lock(self.mutex);
      self.fds.push_back(client);
      self.fds.push_back(upstream);
      self.pumps.emplace_back(pump, client, upstream);
      self.pumps.emplace_back(pump, upstream, client);
    }
  });
}

CuttingProxy::~CuttingProxy() {
  impl_->stop = true;
  impl_->acceptor.join();
  for (auto& t : impl_->pumps) t.join();
  for (int fd : impl_->fds) ::close(fd);
  ::close(impl_->listen_fd);
}

}  // namespace loyalty::testing

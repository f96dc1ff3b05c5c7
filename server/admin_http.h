// AdminHttpServer: HTTPS/1.1 for the admin API (admin_api.h), in Beast's
// async-ssl server shape: one session per connection on its own strand,
// do_x/on_x pairs, the shared_ptr captured by the pending handler keeps the
// session alive. Mutual TLS with the head-office CA: the context comes from
// sync::MakeServerContext (client certificate required, CRL checked), and
// after the handshake only a certificate whose identity kind is admin is
// served; any other (a store's, say) gets 403 forbidden_identity and the
// connection closes, with a log line saying why. Every read has a timeout
// and size limits; the accept loop survives errors.
//
// Ownership: shared_ptr; the pending accept keeps it alive until Stop().
// Thread safety: SetTlsContext and Stop may be called from any thread;
// local_endpoint() is immutable. The handler is called on a session's
// strand and may answer from any thread.
#pragma once

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>

#include "core/result.h"
#include "server/admin_api.h"

namespace loyalty::server {

struct AdminHttpOptions {
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(15)};
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};
  std::size_t max_body_bytes = 1 << 20;  // programmes and offers are small
  std::size_t max_header_bytes = 8192;
};

using AdminHandler = std::function<void(AdminRequest, std::function<void(AdminReply)>)>;

class AdminHttpServer : public std::enable_shared_from_this<AdminHttpServer> {
 public:
  // Binds and listens on `endpoint` (port 0: ephemeral) and starts
  // accepting. Error "unavailable" when the endpoint cannot be bound.
  static core::Result<std::shared_ptr<AdminHttpServer>> Listen(
      boost::asio::io_context& ioc, const boost::asio::ip::tcp::endpoint& endpoint,
      std::shared_ptr<boost::asio::ssl::context> ctx, AdminHttpOptions options,
      AdminHandler handler);

  AdminHttpServer(const AdminHttpServer&) = delete;
  AdminHttpServer& operator=(const AdminHttpServer&) = delete;

  const boost::asio::ip::tcp::endpoint& local_endpoint() const { return local_endpoint_; }

  // Connections accepted from now on use `ctx` (e.g. with a reloaded CRL).
  void SetTlsContext(std::shared_ptr<boost::asio::ssl::context> ctx);

  // Stops accepting; open sessions end at their next idle timeout or close.
  void Stop();

 private:
  AdminHttpServer(boost::asio::io_context& ioc, std::shared_ptr<boost::asio::ssl::context> ctx,
                  AdminHttpOptions options, AdminHandler handler);
  void DoAccept();
  void OnAccept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& ioc_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
  boost::asio::ip::tcp::endpoint local_endpoint_;
  const AdminHttpOptions options_;
  const AdminHandler handler_;
  bool stopped_ = false;  // on strand_

  std::mutex ctx_mutex_;
  std::shared_ptr<boost::asio::ssl::context> ctx_;  // guarded by ctx_mutex_
};

}  // namespace loyalty::server

// The sync server's listening side: accepts TCP connections on one endpoint
// and runs each as a server-role Connection (connection.h) on its own strand.
// The accept loop survives errors: a failed accept is reported to
// on_accept_error and retried after a short pause (so running out of file
// descriptors does not spin). Owned through shared_ptr; the pending accept
// keeps it alive until Stop().
//
// Thread safety: local_endpoint() is immutable; SetTlsContext and Stop may be
// called from any thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "core/result.h"
#include "sync/connection.h"

namespace loyalty::sync {

struct ServerOptions {
  ConnectionOptions connection;
  std::string server_version = "0.1.0";
};

class Server : public std::enable_shared_from_this<Server> {
 public:
  // Binds and listens on `endpoint` (port 0: an ephemeral port, see
  // local_endpoint()) and starts accepting. `callbacks` are given to every
  // connection. io_error if the endpoint cannot be bound.
  static core::Result<std::shared_ptr<Server>> Listen(
      boost::asio::io_context& ioc, const boost::asio::ip::tcp::endpoint& endpoint,
      std::shared_ptr<boost::asio::ssl::context> ctx, ServerOptions options,
      ConnectionCallbacks callbacks, std::function<void(const core::Error&)> on_accept_error = {});

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  const boost::asio::ip::tcp::endpoint& local_endpoint() const { return local_endpoint_; }

  // Connections accepted from now on use `ctx` (e.g. with a reloaded CRL);
  // open ones keep the context they started with.
  void SetTlsContext(std::shared_ptr<boost::asio::ssl::context> ctx);

  // Stops accepting. Open connections are not touched.
  void Stop();

 private:
  Server(boost::asio::io_context& ioc, std::shared_ptr<boost::asio::ssl::context> ctx,
         ServerOptions options, ConnectionCallbacks callbacks,
         std::function<void(const core::Error&)> on_accept_error);

  void DoAccept();
  void OnAccept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& ioc_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
  boost::asio::ip::tcp::endpoint local_endpoint_;
  const ServerOptions options_;
  const ConnectionCallbacks callbacks_;
  const std::function<void(const core::Error&)> on_accept_error_;
  bool stopped_ = false;  // on strand_

  std::mutex ctx_mutex_;
  std::shared_ptr<boost::asio::ssl::context> ctx_;  // guarded by ctx_mutex_
};

}  // namespace loyalty::sync

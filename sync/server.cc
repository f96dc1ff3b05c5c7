#include "sync/server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/beast/core/bind_handler.hpp>

#include "sync/protocol.h"

namespace loyalty::sync {
namespace {

namespace net = boost::asio;
using net::ip::tcp;

constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

}  // namespace

Server::Server(net::io_context& ioc, std::shared_ptr<net::ssl::context> ctx, ServerOptions options,
               ConnectionCallbacks callbacks,
               std::function<void(const core::Error&)> on_accept_error)
    : ioc_(ioc),
      strand_(net::make_strand(ioc)),
      acceptor_(strand_),
      retry_timer_(strand_),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      on_accept_error_(std::move(on_accept_error)),
      ctx_(std::move(ctx)) {}

core::Result<std::shared_ptr<Server>> Server::Listen(
    net::io_context& ioc, const tcp::endpoint& endpoint, std::shared_ptr<net::ssl::context> ctx,
    ServerOptions options, ConnectionCallbacks callbacks,
    std::function<void(const core::Error&)> on_accept_error) {
  std::shared_ptr<Server> server(new Server(ioc, std::move(ctx), std::move(options),
                                            std::move(callbacks), std::move(on_accept_error)));
  boost::system::error_code ec;
  auto& acceptor = server->acceptor_;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (!ec) server->local_endpoint_ = acceptor.local_endpoint(ec);
  if (ec) {
    return core::MakeError(code::kIoError, "cannot listen on " + endpoint.address().to_string() +
                                               ":" + std::to_string(endpoint.port()) + ": " +
                                               ec.message());
  }
  net::dispatch(server->strand_, [server] { server->DoAccept(); });
  return server;
}

void Server::SetTlsContext(std::shared_ptr<net::ssl::context> ctx) {
  std::lock_guard<std::mutex> lock(ctx_mutex_);
  ctx_ = std::move(ctx);
}

void Server::Stop() {
  net::dispatch(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    boost::system::error_code ec;
    self->acceptor_.close(ec);
    self->retry_timer_.cancel();
  });
}

void Server::DoAccept() {
  if (stopped_) return;
  // Each connection gets its own strand.
  acceptor_.async_accept(net::make_strand(ioc_),
                         boost::beast::bind_front_handler(&Server::OnAccept, shared_from_this()));
}

void Server::OnAccept(boost::system::error_code ec, tcp::socket socket) {
  if (stopped_) return;
  if (ec) {
    if (on_accept_error_) {
      on_accept_error_(core::MakeError(code::kIoError, "accept: " + ec.message()));
    }
    retry_timer_.expires_after(kAcceptRetryDelay);
    retry_timer_.async_wait(
        [self = shared_from_this()](boost::system::error_code) { self->DoAccept(); });
    return;
  }
  std::shared_ptr<net::ssl::context> ctx;
  {
    std::lock_guard<std::mutex> lock(ctx_mutex_);
    ctx = ctx_;
  }
  Connection::Accepted(std::move(socket), std::move(ctx), options_.connection, callbacks_,
                       options_.server_version)
      ->Start();
  DoAccept();
}

}  // namespace loyalty::sync

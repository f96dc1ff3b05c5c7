#include "server/admin_http.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>

#include "pki/identity.h"

namespace loyalty::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

class AdminSession : public std::enable_shared_from_this<AdminSession> {
 public:
  AdminSession(tcp::socket socket, std::shared_ptr<ssl::context> ctx,
               const AdminHttpOptions& options, AdminHandler handler)
      : ctx_(std::move(ctx)),
        stream_(std::move(socket), *ctx_),
        options_(options),
        handler_(std::move(handler)) {
    boost::system::error_code ec;
    remote_ = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec).address().to_string();
  }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->DoHandshake(); });
  }

 private:
  void DoHandshake() {
    beast::get_lowest_layer(stream_).expires_after(options_.handshake_timeout);
    stream_.async_handshake(
        ssl::stream_base::server,
        beast::bind_front_handler(&AdminSession::OnHandshake, shared_from_this()));
  }

  void OnHandshake(beast::error_code ec) {
    if (ec) {
      std::string why = ec == beast::error::timeout ? "TLS handshake timed out"
                                                    : "TLS handshake: " + ec.message();
      if (long verify = SSL_get_verify_result(stream_.native_handle()); verify != X509_V_OK) {
        why += std::string(" (peer certificate: ") + X509_verify_cert_error_string(verify) + ")";
      }
      spdlog::warn("admin connection from {} refused: {}", remote_, why);
      return;  // dropping the last reference closes the socket
    }
    auto identity =
        pki::IdentityFromCertificate(SSL_get0_peer_certificate(stream_.native_handle()));
    if (!identity) {
      forbidden_ = identity.error().message;
    } else if (identity->kind != pki::IdentityKind::kAdmin) {
      forbidden_ = "expected an admin certificate, got " +
                   std::string(pki::KindName(identity->kind)) + " \"" + identity->id + "\"";
    } else {
      admin_ = identity->id;
    }
    if (forbidden_) {
      spdlog::warn("admin connection from {} refused: forbidden_identity: {}", remote_,
                   *forbidden_);
    }
    DoRead();
  }

  void DoRead() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
    beast::get_lowest_layer(stream_).expires_after(options_.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&AdminSession::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream || ec == net::ssl::error::stream_truncated ||
        ec == beast::error::timeout) {
      // The client is done (or idle): close quietly. stream_truncated means
      // it closed TCP without close_notify; harmless, the request framing
      // tells us whether a request was complete.
      return DoShutdown();
    }
    if (ec == http::error::body_limit) {
      return Write(ErrorReply(core::MakeError(core::code::kTooLarge, "request body too large")),
                   false);
    }
    if (ec == http::error::header_limit) {
      AdminReply reply = ErrorReply(core::MakeError(core::code::kTooLarge, "headers too large"));
      reply.status = 431;
      return Write(std::move(reply), false);
    }
    if (ec) {
      if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
        return Write(ErrorReply(core::MakeError(core::code::kInvalidRequest, "malformed HTTP")),
                     false);
      }
      spdlog::debug("admin connection from {}: read: {}", remote_, ec.message());
      return;
    }
    http::request<http::string_body> request = parser_->release();
    keep_alive_ = request.keep_alive();
    if (forbidden_) {
      AdminReply reply = ErrorReply(core::MakeError("forbidden_identity", *forbidden_));
      reply.status = 403;
      return Write(std::move(reply), false);
    }
    AdminRequest admin_request{std::string(request.method_string()), std::string(request.target()),
                               std::move(request.body()), admin_};
    // The handler may answer from the database thread; come back to the
    // strand before touching the stream.
    auto self = shared_from_this();
    handler_(std::move(admin_request), [self](AdminReply reply) {
      net::post(self->stream_.get_executor(), [self, reply = std::move(reply)]() mutable {
        self->Write(std::move(reply), self->keep_alive_);
      });
    });
  }

  void Write(AdminReply reply, bool keep_alive) {
    auto response = std::make_shared<http::response<http::string_body>>();
    response->version(11);
    response->result(reply.status);
    response->set(http::field::server, "loyalty-server");
    response->set(http::field::content_type, reply.content_type);
    response->keep_alive(keep_alive);
    response->body() = std::move(reply.body);
    response->prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(options_.idle_timeout);
    http::async_write(
        stream_, *response,
        [self = shared_from_this(), response, keep_alive](beast::error_code ec, std::size_t) {
          if (ec) return;  // the client went away
          if (keep_alive) return self->DoRead();
          self->DoShutdown();
        });
  }

  void DoShutdown() {
    // One-way close, as in sync::Connection: do not wait for the peer's
    // close_notify.
    SSL_set_shutdown(stream_.native_handle(),
                     SSL_get_shutdown(stream_.native_handle()) | SSL_RECEIVED_SHUTDOWN);
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {});
  }

  std::shared_ptr<ssl::context> ctx_;  // outlives stream_'s SSL*
  ssl::stream<beast::tcp_stream> stream_;
  const AdminHttpOptions options_;
  AdminHandler handler_;
  std::string remote_;
  std::string admin_;
  std::optional<std::string> forbidden_;
  bool keep_alive_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
};

}  // namespace

AdminHttpServer::AdminHttpServer(net::io_context& ioc, std::shared_ptr<ssl::context> ctx,
                                 AdminHttpOptions options, AdminHandler handler)
    : ioc_(ioc),
      strand_(net::make_strand(ioc)),
      acceptor_(strand_),
      retry_timer_(strand_),
      options_(options),
      handler_(std::move(handler)),
      ctx_(std::move(ctx)) {}

core::Result<std::shared_ptr<AdminHttpServer>> AdminHttpServer::Listen(
    net::io_context& ioc, const tcp::endpoint& endpoint, std::shared_ptr<ssl::context> ctx,
    AdminHttpOptions options, AdminHandler handler) {
  std::shared_ptr<AdminHttpServer> server(
      new AdminHttpServer(ioc, std::move(ctx), options, std::move(handler)));
  boost::system::error_code ec;
  auto& acceptor = server->acceptor_;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (!ec) server->local_endpoint_ = acceptor.local_endpoint(ec);
  if (ec) {
    return core::MakeError(core::code::kUnavailable,
                           "cannot listen on " + endpoint.address().to_string() + ":" +
                               std::to_string(endpoint.port()) + ": " + ec.message());
  }
  net::dispatch(server->strand_, [server] { server->DoAccept(); });
  return server;
}

void AdminHttpServer::SetTlsContext(std::shared_ptr<ssl::context> ctx) {
  std::lock_guard lock(ctx_mutex_);
  ctx_ = std::move(ctx);
}

void AdminHttpServer::Stop() {
  net::dispatch(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    boost::system::error_code ec;
    self->acceptor_.close(ec);
    self->retry_timer_.cancel();
  });
}

void AdminHttpServer::DoAccept() {
  if (stopped_) return;
  acceptor_.async_accept(net::make_strand(ioc_),
                         beast::bind_front_handler(&AdminHttpServer::OnAccept, shared_from_this()));
}

void AdminHttpServer::OnAccept(boost::system::error_code ec, tcp::socket socket) {
  if (stopped_) return;
  if (ec) {
    spdlog::warn("admin accept failed: {}; retrying", ec.message());
    retry_timer_.expires_after(kAcceptRetryDelay);
    retry_timer_.async_wait(
        [self = shared_from_this()](boost::system::error_code) { self->DoAccept(); });
    return;
  }
  std::shared_ptr<ssl::context> ctx;
  {
    std::lock_guard lock(ctx_mutex_);
    ctx = ctx_;
  }
  std::make_shared<AdminSession>(std::move(socket), std::move(ctx), options_, handler_)->Start();
  DoAccept();
}

}  // namespace loyalty::server

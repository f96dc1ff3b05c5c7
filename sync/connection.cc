#include "sync/connection.h"

#include <openssl/ssl.h>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <span>
#include <variant>

#include "sync/framing.h"
#include "sync/tls.h"

namespace loyalty::sync {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using net::ip::tcp;

constexpr std::size_t kReadChunk = 16 * 1024;

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

v1::Frame ErrorFrame(const core::Error& error) {
  v1::Frame frame;
  frame.mutable_error()->set_code(error.code);
  frame.mutable_error()->set_message(error.message);
  frame.mutable_error()->set_fatal(true);
  return frame;
}

}  // namespace

Connection::Connection(Role role, Stream stream, std::shared_ptr<net::ssl::context> ctx,
                       ConnectionOptions options, ConnectionCallbacks callbacks)
    : role_(role),
      stream_(std::move(stream)),
      ctx_(std::move(ctx)),
      options_(options),
      callbacks_(std::move(callbacks)) {}

ConnectionPtr Connection::Accepted(tcp::socket socket, std::shared_ptr<net::ssl::context> ctx,
                                   ConnectionOptions options, ConnectionCallbacks callbacks,
                                   std::string server_version) {
  Stream stream(beast::tcp_stream(std::move(socket)), *ctx);
  ConnectionPtr conn(new Connection(Role::kServer, std::move(stream), std::move(ctx), options,
                                    std::move(callbacks)));
  conn->server_version_ = std::move(server_version);
  boost::system::error_code ec;
  conn->remote_ = beast::get_lowest_layer(conn->stream_).socket().remote_endpoint(ec);
  conn->DisableNagle();
  return conn;
}

ConnectionPtr Connection::Connect(net::any_io_executor executor,
                                  std::shared_ptr<net::ssl::context> ctx, const std::string& host,
                                  std::uint16_t port, const std::string& server_name,
                                  v1::Hello hello, ConnectionOptions options,
                                  ConnectionCallbacks callbacks) {
  Stream stream(beast::tcp_stream(net::make_strand(executor)), *ctx);
  ConnectionPtr conn(new Connection(Role::kClient, std::move(stream), std::move(ctx), options,
                                    std::move(callbacks)));
  if (hello.protocol_version() == 0) hello.set_protocol_version(kProtocolVersion);
  conn->hello_ = std::move(hello);
  conn->server_name_ = server_name;
  net::dispatch(conn->stream_.get_executor(), [conn, host, port] { conn->DoResolve(host, port); });
  return conn;
}

void Connection::Start() {
  net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->DoHandshake(); });
}

void Connection::Send(v1::Frame frame) {
  net::post(stream_.get_executor(), [self = shared_from_this(), f = std::move(frame)]() mutable {
    self->Enqueue(std::move(f));
  });
}

void Connection::SendEncoded(std::string encoded) {
  net::post(stream_.get_executor(), [self = shared_from_this(), e = std::move(encoded)]() mutable {
    self->EnqueueEncoded(std::move(e));
  });
}

void Connection::Close() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    if (self->state_ == State::kClosing || self->state_ == State::kClosed) return;
    core::Error reason = core::MakeError(code::kClosedLocally, "closed by this side");
    if (self->state_ != State::kOpen) return self->Fail(std::move(reason));
    self->state_ = State::kClosing;
    self->close_reason_ = std::move(reason);
    self->close_after_flush_ = true;
    if (!self->writing_) self->DoShutdown();
  });
}

void Connection::DoResolve(const std::string& host, std::uint16_t port) {
  auto resolver = std::make_shared<tcp::resolver>(stream_.get_executor());
  resolver->async_resolve(
      host, std::to_string(port),
      [self = shared_from_this(), resolver](beast::error_code ec, tcp::resolver::results_type r) {
        self->OnResolve(ec, std::move(r));
      });
}

void Connection::OnResolve(beast::error_code ec, tcp::resolver::results_type results) {
  if (ec) return Fail(core::MakeError(code::kConnectFailed, "resolve: " + ec.message()));
  beast::get_lowest_layer(stream_).expires_after(options_.connect_timeout);
  beast::get_lowest_layer(stream_).async_connect(
      results, beast::bind_front_handler(&Connection::OnConnect, shared_from_this()));
}

void Connection::OnConnect(beast::error_code ec, const tcp::endpoint& endpoint) {
  if (ec == beast::error::timeout) {
    return Fail(core::MakeError(code::kTimeout, "connect timed out"));
  }
  if (ec) return Fail(core::MakeError(code::kConnectFailed, "connect: " + ec.message()));
  remote_ = endpoint;
  DisableNagle();
  if (auto s = SetExpectedHost(stream_.native_handle(), server_name_); !s) return Fail(s.error());
  DoHandshake();
}

// Frames are request/answer: a small frame held back by Nagle's algorithm
// until the peer's delayed ACK (40 ms on Linux) would stall every round trip.
void Connection::DisableNagle() {
  boost::system::error_code ec;
  beast::get_lowest_layer(stream_).socket().set_option(tcp::no_delay(true), ec);
}

void Connection::DoHandshake() {
  state_ = State::kHandshake;
  beast::get_lowest_layer(stream_).expires_after(options_.handshake_timeout);
  stream_.async_handshake(role_ == Role::kServer ? Stream::server : Stream::client,
                          beast::bind_front_handler(&Connection::OnHandshake, shared_from_this()));
}

void Connection::OnHandshake(beast::error_code ec) {
  if (state_ == State::kClosed) return;
  SSL* ssl = stream_.native_handle();
  if (ec) {
    if (ec == beast::error::timeout) {
      return Fail(core::MakeError(code::kTimeout, "TLS handshake timed out"));
    }
    std::string message = "TLS handshake: " + ec.message();
    if (long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
      message += std::string(" (peer certificate: ") + X509_verify_cert_error_string(verify) + ")";
    }
    return Fail(core::MakeError(code::kTlsHandshakeFailed, message));
  }
  auto identity = pki::IdentityFromCertificate(SSL_get0_peer_certificate(ssl));
  if (!identity) {
    return Refuse(core::MakeError(code::kForbiddenIdentity, identity.error().message));
  }
  peer_ = std::move(*identity);
  peer_certificate_.reset(SSL_get1_peer_certificate(ssl));
  pki::IdentityKind wanted =
      role_ == Role::kServer ? pki::IdentityKind::kStore : pki::IdentityKind::kServer;
  if (peer_.kind != wanted) {
    return Refuse(
        core::MakeError(code::kForbiddenIdentity,
                        "expected a " + std::string(pki::KindName(wanted)) + " certificate, got " +
                            std::string(pki::KindName(peer_.kind)) + " \"" + peer_.id + "\""));
  }
  state_ = State::kHello;
  if (role_ == Role::kClient) {
    v1::Frame frame;
    *frame.mutable_hello() = hello_;
    frame.mutable_hello()->set_agent_time_ms(NowMs());
    Enqueue(std::move(frame));
  }
  DoRead();
}

void Connection::DoRead() {
  beast::get_lowest_layer(stream_).expires_after(
      state_ == State::kOpen ? options_.idle_timeout : options_.handshake_timeout);
  stream_.async_read_some(read_buffer_.prepare(kReadChunk),
                          beast::bind_front_handler(&Connection::OnRead, shared_from_this()));
}

void Connection::OnRead(beast::error_code ec, std::size_t bytes) {
  if (state_ == State::kClosed || state_ == State::kClosing) return;
  read_buffer_.commit(bytes);
  if (ec) return Fail(ErrorFromIo(ec, "read"));
  while (state_ == State::kHello || state_ == State::kOpen) {
    auto data = read_buffer_.data();
    std::span<const std::uint8_t> input(static_cast<const std::uint8_t*>(data.data()), data.size());
    DecodeResult result = DecodeFrame(input, options_.max_frame_size);
    if (std::holds_alternative<NeedMore>(result)) return DoRead();
    if (auto* error = std::get_if<core::Error>(&result)) return Refuse(std::move(*error));
    auto& decoded = std::get<DecodedFrame>(result);
    read_buffer_.consume(decoded.consumed);
    HandleFrame(std::move(decoded.frame));
  }
}

void Connection::HandleFrame(v1::Frame frame) {
  if (state_ == State::kHello) {
    return role_ == Role::kServer ? HandleHello(frame) : HandleHelloAck(frame);
  }
  if (frame.has_error() && frame.error().fatal()) {
    return Fail(core::MakeError(frame.error().code(), "peer: " + frame.error().message()));
  }
  if (callbacks_.on_frame) callbacks_.on_frame(shared_from_this(), std::move(frame));
}

void Connection::HandleHello(const v1::Frame& frame) {
  if (!frame.has_hello()) {
    return Refuse(core::MakeError(code::kExpectedHello, "the first frame must be a Hello"));
  }
  const v1::Hello& hello = frame.hello();
  if (hello.protocol_version() < kMinProtocolVersion ||
      hello.protocol_version() > kProtocolVersion) {
    return Refuse(core::MakeError(code::kUnsupportedProtocolVersion,
                                  "this server speaks protocol versions " +
                                      std::to_string(kMinProtocolVersion) + " to " +
                                      std::to_string(kProtocolVersion) + ", the agent sent " +
                                      std::to_string(hello.protocol_version())));
  }
  if (hello.terminal_id().empty() || hello.terminal_id().size() > 64) {
    return Refuse(core::MakeError(code::kInvalidHello, "terminal_id must have 1 to 64 characters"));
  }
  peer_hello_ = hello;
  if (hello.agent_time_ms() > 0) peer_clock_offset_ms_ = hello.agent_time_ms() - NowMs();
  v1::Frame ack;
  ack.set_correlation_id(frame.correlation_id());
  ack.mutable_hello_ack()->set_protocol_version(hello.protocol_version());
  ack.mutable_hello_ack()->set_server_version(server_version_);
  ack.mutable_hello_ack()->set_store_id(peer_.id);
  ack.mutable_hello_ack()->set_server_time_ms(NowMs());
  Enqueue(std::move(ack));
  state_ = State::kOpen;
  if (callbacks_.on_open) callbacks_.on_open(shared_from_this());
}

void Connection::HandleHelloAck(const v1::Frame& frame) {
  if (frame.has_error()) {
    return Fail(core::MakeError(frame.error().code(), "server: " + frame.error().message()));
  }
  if (!frame.has_hello_ack()) {
    return Refuse(core::MakeError(code::kExpectedHello, "the first frame must be a HelloAck"));
  }
  if (frame.hello_ack().protocol_version() != hello_.protocol_version()) {
    return Refuse(core::MakeError(code::kUnsupportedProtocolVersion,
                                  "the server answered with protocol version " +
                                      std::to_string(frame.hello_ack().protocol_version())));
  }
  if (frame.hello_ack().server_time_ms() > 0) {
    peer_clock_offset_ms_ = frame.hello_ack().server_time_ms() - NowMs();
  }
  state_ = State::kOpen;
  if (callbacks_.on_open) callbacks_.on_open(shared_from_this());
}

void Connection::Enqueue(v1::Frame frame) {
  if (state_ == State::kClosing || state_ == State::kClosed) return;  // on_close tells the owner
  auto bytes = EncodeFrame(frame, options_.max_frame_size);
  if (!bytes) return Fail(bytes.error());
  EnqueueEncoded(std::move(*bytes));
}

void Connection::EnqueueEncoded(std::string bytes) {
  if (state_ == State::kClosing || state_ == State::kClosed) return;  // on_close tells the owner
  if (bytes.size() <= kFrameHeaderSize || bytes.size() - kFrameHeaderSize > options_.max_frame_size) {
    return Fail(core::MakeError(code::kFrameTooLarge,
                                "refusing to send an encoded frame of " +
                                    std::to_string(bytes.size()) + " bytes"));
  }
  if (write_queue_.size() >= options_.max_queued_frames) {
    return Fail(core::MakeError(
        code::kWriteQueueFull,
        "the peer is not reading; " + std::to_string(write_queue_.size()) + " frames queued"));
  }
  write_queue_.push_back(std::move(bytes));
  // Before the Hello exchange starts, frames wait so that Hello goes first.
  if (!writing_ && state_ != State::kConnecting && state_ != State::kHandshake) DoWrite();
}

void Connection::DoWrite() {
  writing_ = true;
  beast::get_lowest_layer(stream_).expires_after(options_.write_timeout);
  net::async_write(stream_, net::buffer(write_queue_.front()),
                   beast::bind_front_handler(&Connection::OnWrite, shared_from_this()));
}

void Connection::OnWrite(beast::error_code ec, std::size_t) {
  writing_ = false;
  if (state_ == State::kClosed) return;
  if (ec) return Fail(ErrorFromIo(ec, "write"));
  write_queue_.pop_front();
  if (!write_queue_.empty()) return DoWrite();
  if (close_after_flush_) DoShutdown();
}

void Connection::DoShutdown() {
  // One-way close: send our close_notify and stop, without waiting for the
  // peer's (TLS allows it, and a peer that never answers would otherwise
  // hold the connection until the timeout). Marking the peer's close_notify
  // as received makes SSL_shutdown complete once ours is written.
  SSL_set_shutdown(stream_.native_handle(),
                   SSL_get_shutdown(stream_.native_handle()) | SSL_RECEIVED_SHUTDOWN);
  beast::get_lowest_layer(stream_).expires_after(options_.write_timeout);
  stream_.async_shutdown(beast::bind_front_handler(&Connection::OnShutdown, shared_from_this()));
}

void Connection::OnShutdown(beast::error_code) {
  // An error here is harmless: everything we meant to send was already
  // written, and the peer may have closed first.
  Finish();
}

void Connection::Refuse(core::Error error) {
  if (state_ == State::kClosing || state_ == State::kClosed) return;
  // Frames not yet started are dropped; the refusal is the last word.
  while (write_queue_.size() > (writing_ ? 1u : 0u)) write_queue_.pop_back();
  auto bytes = EncodeFrame(ErrorFrame(error), options_.max_frame_size);
  close_reason_ = std::move(error);
  state_ = State::kClosing;
  close_after_flush_ = true;
  if (bytes) write_queue_.push_back(std::move(*bytes));
  if (!writing_) write_queue_.empty() ? DoShutdown() : DoWrite();
}

void Connection::Fail(core::Error error) {
  if (state_ == State::kClosed) return;
  if (close_reason_.code.empty()) close_reason_ = std::move(error);
  Finish();
}

core::Error Connection::ErrorFromIo(beast::error_code ec, const char* what) const {
  if (ec == beast::error::timeout) {
    return core::MakeError(code::kTimeout, std::string(what) + " timed out");
  }
  // stream_truncated: the peer closed TCP without a TLS close_notify. Harmless
  // for us: frames are length-prefixed, so a cut-off frame is never delivered.
  if (ec == net::error::eof || ec == net::ssl::error::stream_truncated) {
    return core::MakeError(code::kConnectionClosed, "the peer closed the connection");
  }
  return core::MakeError(code::kIoError, std::string(what) + ": " + ec.message());
}

void Connection::Finish() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  // Cancels whatever is pending. write_queue_ is kept: an aborted write may
  // still reference its front until its handler runs.
  beast::get_lowest_layer(stream_).close();
  ConnectionCallbacks callbacks = std::move(callbacks_);
  callbacks_ = {};
  if (callbacks.on_close) callbacks.on_close(shared_from_this(), close_reason_);
}

}  // namespace loyalty::sync

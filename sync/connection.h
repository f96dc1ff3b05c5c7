// One framed, mutually authenticated TLS connection between an agent and the
// server, in either role, in Beast's session shape: do_x/on_x pairs on one
// strand; the shared_ptr captured by the pending handler keeps the
// connection alive, nothing else does.
//
// Life cycle: TLS handshake (with a timeout) -> the peer's identity is read
// from its verified certificate (the server accepts only store certificates,
// the client only a server certificate) -> Hello exchange (the client sends
// Hello, the server answers HelloAck, or a fatal SyncError if it does not
// speak the version, then closes) -> open: frames flow both ways until either
// side closes. Every read has a timeout (handshake_timeout before open,
// idle_timeout after) and a size limit (max_frame_size); the write queue is
// bounded (a peer that does not read is disconnected with write_queue_full).
// A framing error sends a fatal SyncError and closes.
//
// Callbacks run on the connection's strand. on_close runs exactly once per
// connection, whatever the outcome (also for a failed handshake), with the
// reason; code "closed" means this side called Close(). After on_close the
// connection drops its callbacks, so they may capture the owner strongly.
//
// Thread safety: Send and Close may be called from any thread. peer(),
// peer_certificate(), peer_hello(), peer_clock_offset_ms() and
// remote_endpoint() are immutable once on_open has run.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "core/result.h"
#include "loyalty/v1/sync.pb.h"
#include "pki/identity.h"
#include "pki/openssl_handles.h"
#include "sync/protocol.h"

namespace loyalty::sync {

struct ConnectionOptions {
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(30)};  // TLS + Hello
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};  // between frames once open
  std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};
  std::size_t max_frame_size = kDefaultMaxFrameSize;
  std::size_t max_queued_frames = 256;
};

class Connection;
using ConnectionPtr = std::shared_ptr<Connection>;

struct ConnectionCallbacks {
  std::function<void(const ConnectionPtr&)> on_open;
  std::function<void(const ConnectionPtr&, v1::Frame)> on_frame;
  std::function<void(const ConnectionPtr&, const core::Error&)> on_close;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Stream = boost::asio::ssl::stream<boost::beast::tcp_stream>;

  // Server role over an accepted socket (whose executor should be a strand).
  // Call Start() to begin the handshake.
  static ConnectionPtr Accepted(boost::asio::ip::tcp::socket socket,
                                std::shared_ptr<boost::asio::ssl::context> ctx,
                                ConnectionOptions options, ConnectionCallbacks callbacks,
                                std::string server_version);

  // Client role: resolves and connects to host:port, verifies that the server
  // certificate names `server_name`, then sends `hello` (protocol_version 0
  // is replaced by kProtocolVersion). Starts at once.
  static ConnectionPtr Connect(boost::asio::any_io_executor executor,
                               std::shared_ptr<boost::asio::ssl::context> ctx,
                               const std::string& host, std::uint16_t port,
                               const std::string& server_name, v1::Hello hello,
                               ConnectionOptions options, ConnectionCallbacks callbacks);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Start();
  // Queues `frame`; once open, frames go out in order.
  void Send(v1::Frame frame);
  // Queues a frame already encoded (header and body, as EncodeFrame or
  // EncodeUploadFrame make it), in the same order as Send's.
  void SendEncoded(std::string encoded);
  // Sends what is queued, then shuts TLS down and closes.
  void Close();

  const pki::Identity& peer() const { return peer_; }
  // The certificate the peer presented; null before the handshake.
  X509* peer_certificate() const { return peer_certificate_.get(); }
  const v1::Hello& peer_hello() const { return peer_hello_; }  // server role only
  // The peer's clock minus ours, in ms, from the time its Hello (or HelloAck)
  // carried and the time it arrived (so a few ms of transit too); 0 when it
  // sent none.
  std::int64_t peer_clock_offset_ms() const { return peer_clock_offset_ms_; }
  const boost::asio::ip::tcp::endpoint& remote_endpoint() const { return remote_; }

 private:
  enum class Role { kServer, kClient };
  enum class State { kConnecting, kHandshake, kHello, kOpen, kClosing, kClosed };

  Connection(Role role, Stream stream, std::shared_ptr<boost::asio::ssl::context> ctx,
             ConnectionOptions options, ConnectionCallbacks callbacks);

  void DoResolve(const std::string& host, std::uint16_t port);
  void OnResolve(boost::beast::error_code ec, boost::asio::ip::tcp::resolver::results_type r);
  void OnConnect(boost::beast::error_code ec, const boost::asio::ip::tcp::endpoint& endpoint);
  void DisableNagle();
  void DoHandshake();
  void OnHandshake(boost::beast::error_code ec);
  void DoRead();
  void OnRead(boost::beast::error_code ec, std::size_t bytes);
  void HandleFrame(v1::Frame frame);
  void HandleHello(const v1::Frame& frame);
  void HandleHelloAck(const v1::Frame& frame);
  void Enqueue(v1::Frame frame);
  void EnqueueEncoded(std::string encoded);
  void DoWrite();
  void OnWrite(boost::beast::error_code ec, std::size_t bytes);
  void DoShutdown();
  void OnShutdown(boost::beast::error_code ec);
  // Sends a fatal SyncError, then closes; `error` becomes the close reason.
  void Refuse(core::Error error);
  // Closes at once with `error` as the reason.
  void Fail(core::Error error);
  core::Error ErrorFromIo(boost::beast::error_code ec, const char* what) const;
  void Finish();

  const Role role_;
  Stream stream_;
  std::shared_ptr<boost::asio::ssl::context> ctx_;  // outlives stream_'s SSL*
  const ConnectionOptions options_;
  ConnectionCallbacks callbacks_;
  State state_ = State::kConnecting;
  std::string server_version_;  // server role
  std::string server_name_;     // client role
  v1::Hello hello_;             // client role: what to send
  pki::Identity peer_;
  pki::X509Ptr peer_certificate_;
  v1::Hello peer_hello_;
  std::int64_t peer_clock_offset_ms_ = 0;
  boost::asio::ip::tcp::endpoint remote_;
  boost::beast::flat_buffer read_buffer_;
  std::deque<std::string> write_queue_;
  bool writing_ = false;
  bool close_after_flush_ = false;
  core::Error close_reason_;
};

}  // namespace loyalty::sync

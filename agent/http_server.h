// HttpServer: the agent's HTTP/1.1 server (Boost.Beast, plain TCP on
// loopback), in the shape of Beast's async server example: one Session per
// connection on its own strand, do_x/on_x pairs, keep-alive, an idle timeout
// on every read, header and body size limits, and an accept loop that
// survives errors (e.g. running out of file descriptors).
//
// Handlers are asynchronous. The server calls the HttpHandler on the
// connection's strand with the parsed request and a Respond completion; the
// handler may call Respond later from any thread (typically the checkout
// service's writer thread), and the server posts the write back to the
// connection's strand. The request reference is valid only during the
// handler call: copy what is needed later. A Respond that is destroyed
// without being called answers 500, so a lost callback never hangs a client.
//
// Requests that never reach the handler are answered by the server itself
// with the API's error JSON: 413 `too_large` (body over the limit), 431
// `too_large` (headers over the limit), 400 `invalid_request` (not HTTP).
//
// Event streams (Server-Sent Events): a GET whose path is a key of
// options.event_streams is not answered by the handler. The session writes
// a `200 text/event-stream` header, hands an EventStream to that path's
// StreamHandler, and from then on writes whatever is sent on it, in order,
// until either side closes. The body is delimited by the connection's end
// (`Connection: close`): a stream owns its connection. While a stream is
// quiet the session writes a comment line every heartbeat_interval, so
// proxies and the client see a live connection and a vanished client is
// noticed. A client more than max_stream_queue events behind is
// disconnected (EventSource clients reconnect and start afresh).
//
// Lifetime: Start() binds and spawns the I/O threads; Stop() stops
// accepting, lets in-flight requests finish (up to stop_grace), closes idle
// connections and open event streams, and joins the threads. Every Respond must have been called or
// destroyed before the HttpServer is destroyed (stop the service that holds
// them first). Start/Stop/the destructor are for one owning thread; Respond
// is thread-safe.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/result.h"

namespace loyalty::agent {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

// Completes one request: status, body, Content-Type and, for a 405, the
// methods the path accepts (the Allow header, e.g. "POST"). Call once, from
// any thread; later calls are ignored.
class Respond {
 public:
  using Fn = std::function<void(unsigned status, std::string body, std::string content_type,
                                std::string allow)>;
  Respond() = default;
  template <std::invocable<unsigned, std::string, std::string, std::string> F>
  Respond(F fn) : fn_(std::move(fn)) {}

  void operator()(unsigned status, std::string body, std::string content_type,
                  std::string allow = {}) const {
    fn_(status, std::move(body), std::move(content_type), std::move(allow));
  }
  explicit operator bool() const { return static_cast<bool>(fn_); }

 private:
  Fn fn_;
};

using HttpHandler = std::function<void(const HttpRequest& request, Respond respond)>;

// The server side of one open event stream. Thread-safe: Send and Close may
// be called from any thread, before or after the stream has ended.
class EventStream {
 public:
  virtual ~EventStream() = default;

  // Queues `event` (see FormatSseEvent) to be written after everything sent
  // before it. Returns false, and drops it, once the stream has ended.
  virtual bool Send(std::string event) = 0;

  // Ends the stream once the events already queued are written.
  virtual void Close() = 0;

  // `on_close` runs once when the stream ends for any reason (the client
  // left, Close, Stop, a write error or timeout, a full queue): on an I/O
  // thread, or at once on the caller's thread if the stream has already
  // ended. It must not block. Replaces an earlier callback.
  virtual void OnClose(std::function<void()> on_close) = 0;
};

// Called on an I/O thread for each new stream, after its header is queued.
// The request reference is valid only during the call. Keep the stream for
// as long as events are to be sent on it, and drop it in OnClose.
using StreamHandler =
    std::function<void(const HttpRequest& request, std::shared_ptr<EventStream> stream)>;

// Server-Sent Events framing. An event of type `event` (empty: the default
// "message") carrying `data` (one "data:" line per line of it) and, when
// non-zero, the id the client sends back as Last-Event-ID.
std::string FormatSseEvent(std::string_view event, std::string_view data, uint64_t id = 0);
// Tells the client how long to wait before reconnecting.
std::string FormatSseRetry(std::chrono::milliseconds delay);

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: ephemeral; see HttpServer::local_endpoint()
  int io_threads = 2;
  std::size_t max_body_bytes = 65536;
  std::size_t max_header_bytes = 8192;
  std::chrono::milliseconds idle_timeout{30'000};   // waiting for (the rest of) a request
  std::chrono::milliseconds write_timeout{30'000};  // writing a response
  std::chrono::milliseconds stop_grace{10'000};     // in-flight requests at Stop()
  // Called (on an I/O thread) for each request the server answers itself,
  // e.g. to count it in the metrics. Must be thread-safe.
  std::function<void(unsigned status)> on_rejected;
  // Paths (without the query) served as event streams to GET requests.
  std::map<std::string, StreamHandler, std::less<>> event_streams;
  std::chrono::milliseconds heartbeat_interval{15'000};  // comment on a quiet stream
  std::size_t max_stream_queue = 64;                     // events waiting per stream
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the I/O threads. Error "unavailable" when the
  // address cannot be bound.
  core::Status Start();

  // The bound address (with the real port when options.port was 0).
  boost::asio::ip::tcp::endpoint local_endpoint() const { return endpoint_; }

  // Idempotent. Blocks until the I/O threads have exited.
  void Stop();

  struct Shared;  // state shared with the connections; defined in the .cc

 private:
  class Listener;

  std::shared_ptr<Shared> shared_;
  boost::asio::io_context ioc_;
  // Keeps the I/O threads running while a request is with a handler and no
  // socket operation is pending (the service holds the only reference).
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::shared_ptr<Listener> listener_;
  boost::asio::ip::tcp::endpoint endpoint_;
  std::vector<std::thread> threads_;
  bool started_ = false;
  bool stopped_ = false;
};

// The API's error body, {"error":{"code":...,"message":...}}, for responses
// the transport layer writes itself.
std::string ErrorJson(std::string_view code, std::string_view message);

}  // namespace loyalty::agent

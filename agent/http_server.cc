#include "agent/http_server.h"

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "proto/json.h"

namespace loyalty::agent {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string ErrorJson(std::string_view code, std::string_view message) {
  std::string out = "{\"error\":{\"code\":";
  proto::AppendJsonString(code, &out);
  out.append(",\"message\":");
  proto::AppendJsonString(message, &out);
  out.append("}}");
  return out;
}

std::string FormatSseEvent(std::string_view event, std::string_view data, uint64_t id) {
  std::string out;
  if (!event.empty()) {
    out.append("event: ").append(event).push_back('\n');
  }
  if (id != 0) out.append("id: ").append(std::to_string(id)).push_back('\n');
  // A line break inside the data would end the field: one "data:" line per
  // line, which the client joins back with '\n'.
  std::size_t start = 0;
  for (;;) {
    const std::size_t nl = data.find('\n', start);
    std::string_view line = data.substr(start, nl == std::string_view::npos ? nl : nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.append("data: ").append(line).push_back('\n');
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  out.push_back('\n');  // the blank line that dispatches the event
  return out;
}

std::string FormatSseRetry(std::chrono::milliseconds delay) {
  return "retry: " + std::to_string(delay.count()) + "\n\n";
}

namespace {
class Session;
}  // namespace

// What the connections share with the server object. Sessions hold it by
// shared_ptr, so it outlives every one of them.
struct HttpServer::Shared {
  HttpServerOptions options;
  HttpHandler handler;
  std::atomic<bool> stopping{false};

  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;  // guarded by mu
  int in_flight = 0;  // requests read and not yet answered; guarded by mu

  void Add(Session* s, std::weak_ptr<Session> w) {
    std::lock_guard lock(mu);
    sessions.emplace(s, std::move(w));
  }
  void Remove(Session* s) {
    std::lock_guard lock(mu);
    sessions.erase(s);
    cv.notify_all();
  }
  void BeginRequest() {
    std::lock_guard lock(mu);
    ++in_flight;
  }
  void EndRequest() {
    std::lock_guard lock(mu);
    --in_flight;
    cv.notify_all();
  }
};

namespace {

using Shared = HttpServer::Shared;

// Bytes of a rejected request's remaining body read and discarded before
// closing, so the kernel does not reset the connection (and lose our 413)
// while the client is still sending.
constexpr std::size_t kMaxDrainBytes = 1 << 20;
constexpr auto kDrainTimeout = std::chrono::seconds(2);

// The EventStream of a session. Holds the session weakly: a handler that
// keeps its stream past the end does not keep the connection alive.
class SessionEventStream final : public EventStream {
 public:
  explicit SessionEventStream(std::weak_ptr<Session> session) : session_(std::move(session)) {}

  bool Send(std::string event) override;
  void Close() override;
  void OnClose(std::function<void()> on_close) override;

  // From the session: the stream has ended. Runs the close callback once.
  void MarkEnded();

 private:
  std::weak_ptr<Session> session_;
  std::mutex mu_;
  bool ended_ = false;              // guarded by mu_
  std::function<void()> on_close_;  // guarded by mu_
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, std::shared_ptr<Shared> shared)
      : stream_(std::move(socket)), shared_(std::move(shared)) {}

  ~Session() {
    if (event_stream_) event_stream_->MarkEnded();
    shared_->Remove(this);
  }

  void Run() {
    shared_->Add(this, weak_from_this());
    // The socket came from the acceptor on this session's strand executor;
    // dispatch so the first read starts on that strand.
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::DoRead, shared_from_this()));
  }

  // From Stop(): closes the connection unless a request is being served, in
  // which case the response goes out with "Connection: close".
  void CloseIfIdle() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->streaming_) return self->EndStream();
      if (!self->busy_) {
        beast::error_code ec;
        self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        self->stream_.cancel();
      }
    });
  }

  // Called by the Respond completion, on any thread. A handler that answers
  // at once (a quote) is still on this session's strand: the write starts
  // right there instead of after a trip through the scheduler.
  void PostResponse(unsigned status, std::string body, std::string content_type,
                    std::string allow) {
    net::dispatch(stream_.get_executor(),
                  [self = shared_from_this(), status, body = std::move(body),
                   content_type = std::move(content_type), allow = std::move(allow)]() mutable {
                    self->OnResponse(status, std::move(body), std::move(content_type),
                                     std::move(allow));
                  });
  }

  // From the EventStream, on any thread.
  void PostStreamEvent(std::string event) {
    net::post(stream_.get_executor(),
              [self = shared_from_this(), event = std::move(event)]() mutable {
                self->QueueStreamData(std::move(event));
              });
  }
  void PostStreamClose() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->stream_writing_ || !self->stream_queue_.empty()) {
        self->close_after_flush_ = true;
      } else {
        self->EndStream();
      }
    });
  }

 private:
  void DoRead() {
    if (shared_->stopping) return DoClose();
    parser_.emplace();
    parser_->body_limit(shared_->options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(shared_->options.max_header_bytes));
    stream_.expires_after(shared_->options.idle_timeout);
    // The header first, so that a client waiting for "100 Continue" (curl
    // and libcurl do for bodies over 1 KiB) gets it instead of a stall, and
    // a Content-Length over the limit is refused before the body is sent.
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return OnRead(ec, 0);
    const HttpRequest& request = parser_->get();
    if (beast::iequals(request[http::field::expect], "100-continue")) {
      continue_ = {http::status::continue_, request.version()};
      stream_.expires_after(shared_->options.write_timeout);
      http::async_write(stream_, continue_,
                        [self = shared_from_this()](beast::error_code wec, std::size_t) {
                          if (wec) return self->Fail(wec, "write");
                          self->DoReadBody();
                        });
      return;
    }
    DoReadBody();
  }

  void DoReadBody() {
    stream_.expires_after(shared_->options.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec == http::error::end_of_stream) return DoClose();
    if (ec == http::error::body_limit) {
      return Reject(413, "too_large",
                    "request body is larger than " +
                        std::to_string(shared_->options.max_body_bytes) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return Reject(431, "too_large",
                    "request headers are larger than " +
                        std::to_string(shared_->options.max_header_bytes) + " bytes");
    }
    if (ec == beast::error::timeout) {
      // An idle keep-alive connection; nothing to answer.
      spdlog::debug("http: closing idle connection");
      return DoClose();
    }
    if (ec == net::error::operation_aborted) return;  // closed by Stop()
    if (ec && ec.category() == http::make_error_code(http::error::bad_method).category()) {
      return Reject(400, "invalid_request", "malformed HTTP request: " + ec.message());
    }
    if (ec) return Fail(ec, "read");

    if (const HttpRequest& request = parser_->get(); request.method() == http::verb::get) {
      const std::string_view target(request.target().data(), request.target().size());
      const auto it = shared_->options.event_streams.find(target.substr(0, target.find('?')));
      if (it != shared_->options.event_streams.end()) {
        if (shared_->stopping) return DoClose();
        return StartStream(it->second, request);
      }
    }

    busy_ = true;
    shared_->BeginRequest();
    const HttpRequest& request = parser_->get();
    keep_alive_ = request.keep_alive();
    version_ = request.version();

    // One completion per request. Its shared state answers 500 if every copy
    // is dropped without a call, so a handler bug cannot hang the client.
    struct Slot {
      std::shared_ptr<Session> session;
      std::atomic<bool> done{false};
      void Complete(unsigned status, std::string body, std::string content_type,
                    std::string allow = {}) {
        if (done.exchange(true)) return;
        session->PostResponse(status, std::move(body), std::move(content_type), std::move(allow));
      }
      ~Slot() {
        if (!done) {
          spdlog::error("http: a handler dropped its response; answering 500");
          Complete(500, ErrorJson("internal", "the request was not answered"), "application/json");
        }
      }
    };
    auto slot = std::make_shared<Slot>();
    slot->session = shared_from_this();
    Respond respond = [slot](unsigned status, std::string body, std::string content_type,
                             std::string allow) {
      slot->Complete(status, std::move(body), std::move(content_type), std::move(allow));
    };
    try {
      shared_->handler(request, std::move(respond));
    } catch (const std::exception& e) {
      spdlog::error("http: handler threw: {}", e.what());
      slot->Complete(500, ErrorJson("internal", "internal error"), "application/json");
    } catch (...) {
      spdlog::error("http: handler threw an unknown exception");
      slot->Complete(500, ErrorJson("internal", "internal error"), "application/json");
    }
  }

  // Answers a request the handler never sees, then closes: what is left of
  // the request on the wire cannot be trusted as the start of the next one.
  void Reject(unsigned status, std::string_view code, const std::string& message) {
    spdlog::debug("http: rejecting request: {} {}", status, message);
    if (shared_->options.on_rejected) shared_->options.on_rejected(status);
    busy_ = true;
    shared_->BeginRequest();
    keep_alive_ = false;
    version_ = 11;
    drain_after_write_ = true;
    OnResponse(status, ErrorJson(code, message), "application/json");
  }

  void OnResponse(unsigned status, std::string body, std::string content_type,
                  std::string allow = {}) {
    res_ = {};
    res_.version(version_);
    res_.result(status);
    res_.set(http::field::server, "loyalty-agent");
    res_.set(http::field::content_type, content_type);
    if (!allow.empty()) res_.set(http::field::allow, allow);
    res_.set(http::field::cache_control, "no-store");
    res_.keep_alive(keep_alive_ && !shared_->stopping);
    res_.body() = std::move(body);
    res_.prepare_payload();
    stream_.expires_after(shared_->options.write_timeout);
    http::async_write(stream_, res_,
                      beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t /*bytes*/) {
    busy_ = false;
    shared_->EndRequest();
    if (ec) return Fail(ec, "write");
    if (drain_after_write_) return DoDrain();
    if (!res_.keep_alive()) return DoClose();
    DoRead();
  }

  void DoDrain() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(kDrainTimeout);
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(16 * 1024),
                            beast::bind_front_handler(&Session::OnDrain, shared_from_this()));
  }

  void OnDrain(beast::error_code ec, std::size_t bytes) {
    drained_ += bytes;
    // EOF, timeout or enough: let the session end and the socket close.
    if (ec || drained_ >= kMaxDrainBytes || shared_->stopping) return;
    stream_.async_read_some(buffer_.prepare(16 * 1024),
                            beast::bind_front_handler(&Session::OnDrain, shared_from_this()));
  }

  // ---- event streams (strand only)

  // Serves `request` as an event stream: the header, then whatever the
  // handler sends. The connection belongs to the stream from now on.
  void StartStream(const StreamHandler& handler, const HttpRequest& request) {
    streaming_ = true;
    http::response<http::empty_body> header{http::status::ok, request.version()};
    header.set(http::field::server, "loyalty-agent");
    header.set(http::field::content_type, "text/event-stream; charset=utf-8");
    header.set(http::field::cache_control, "no-store");
    header.keep_alive(false);  // the body ends with the connection
    std::ostringstream head;
    head << header.base();
    stream_queue_.push_back(head.str());
    DoStreamWrite();
    heartbeat_.emplace(stream_.get_executor());
    ArmHeartbeat();
    DoMonitorRead();
    event_stream_ = std::make_shared<SessionEventStream>(weak_from_this());
    try {
      handler(request, event_stream_);
    } catch (const std::exception& e) {
      spdlog::error("http: stream handler threw: {}", e.what());
      EndStream();
    } catch (...) {
      spdlog::error("http: stream handler threw an unknown exception");
      EndStream();
    }
  }

  void QueueStreamData(std::string data) {
    if (stream_ended_ || close_after_flush_) return;
    if (stream_queue_.size() >= shared_->options.max_stream_queue) {
      spdlog::warn("http: event stream client is {} events behind; closing its stream",
                   stream_queue_.size());
      return EndStream();
    }
    stream_queue_.push_back(std::move(data));
    if (!stream_writing_) DoStreamWrite();
  }

  void DoStreamWrite() {
    stream_writing_ = true;
    stream_.expires_after(shared_->options.write_timeout);
    net::async_write(stream_, net::buffer(stream_queue_.front()),
                     beast::bind_front_handler(&Session::OnStreamWrite, shared_from_this()));
  }

  void OnStreamWrite(beast::error_code ec, std::size_t /*bytes*/) {
    stream_writing_ = false;
    if (ec) {
      Fail(ec, "stream write");
      return EndStream();
    }
    stream_queue_.pop_front();
    if (stream_ended_) return;
    if (!stream_queue_.empty()) return DoStreamWrite();
    if (close_after_flush_) EndStream();
  }

  // The client sends nothing on an event stream; this read is how a client
  // that leaves is noticed at once rather than at the next write. It reads
  // the socket directly: the stream's timeouts are for writes only.
  void DoMonitorRead() {
    stream_.socket().async_read_some(
        net::buffer(monitor_buf_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) return self->EndStream();  // EOF, reset or cancelled
          self->DoMonitorRead();
        });
  }

  void ArmHeartbeat() {
    heartbeat_->expires_after(shared_->options.heartbeat_interval);
    heartbeat_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->stream_ended_) return;
      if (self->stream_queue_.empty()) self->QueueStreamData(": keep-alive\n\n");
      self->ArmHeartbeat();
    });
  }

  // Idempotent. Pending operations complete with operation_aborted and the
  // session ends with the last of them.
  void EndStream() {
    if (stream_ended_) return;
    stream_ended_ = true;
    if (heartbeat_) heartbeat_->cancel();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.cancel();
    if (event_stream_) event_stream_->MarkEnded();
  }

  void DoClose() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    // The session ends when this handler returns; the socket closes with it.
  }

  void Fail(beast::error_code ec, const char* what) {
    // Resets and aborts are what clients do; not worth more than debug.
    if (ec == net::error::connection_reset || ec == net::error::broken_pipe ||
        ec == net::error::operation_aborted || ec == beast::error::timeout ||
        ec == http::error::partial_message) {
      spdlog::debug("http: {}: {}", what, ec.message());
    } else {
      spdlog::warn("http: {}: {}", what, ec.message());
    }
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::shared_ptr<Shared> shared_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;      // alive while being written
  http::response<http::empty_body> continue_;  // "100 Continue", ditto
  // Strand-only state.
  bool busy_ = false;
  bool keep_alive_ = false;
  bool drain_after_write_ = false;
  unsigned version_ = 11;
  std::size_t drained_ = 0;
  // Event stream state, strand-only.
  bool streaming_ = false;
  bool stream_writing_ = false;
  bool stream_ended_ = false;
  bool close_after_flush_ = false;
  std::deque<std::string> stream_queue_;  // front() is being written
  std::optional<net::steady_timer> heartbeat_;
  std::array<char, 256> monitor_buf_{};
  std::shared_ptr<SessionEventStream> event_stream_;
};

bool SessionEventStream::Send(std::string event) {
  {
    std::lock_guard lock(mu_);
    if (ended_) return false;
  }
  auto session = session_.lock();
  if (!session) return false;
  session->PostStreamEvent(std::move(event));
  return true;
}

void SessionEventStream::Close() {
  if (auto session = session_.lock()) session->PostStreamClose();
}

void SessionEventStream::OnClose(std::function<void()> on_close) {
  {
    std::lock_guard lock(mu_);
    if (!ended_) {
      on_close_ = std::move(on_close);
      return;
    }
  }
  if (on_close) on_close();
}

void SessionEventStream::MarkEnded() {
  std::function<void()> on_close;
  {
    std::lock_guard lock(mu_);
    if (ended_) return;
    ended_ = true;
    on_close = std::move(on_close_);
  }
  if (on_close) on_close();
}

}  // namespace

class HttpServer::Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& ioc, std::shared_ptr<Shared> shared)
      : ioc_(ioc),
        acceptor_(net::make_strand(ioc)),
        backoff_(acceptor_.get_executor()),
        shared_(std::move(shared)) {}

  core::Status Open(const tcp::endpoint& endpoint) {
    beast::error_code ec;
    auto fail = [&](const char* what) {
      return core::MakeError("unavailable",
                             std::string("cannot ") + what + " " + endpoint.address().to_string() +
                                 ":" + std::to_string(endpoint.port()) + ": " + ec.message());
    };
    acceptor_.open(endpoint.protocol(), ec);
    if (ec) return fail("open");
    acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (ec) return fail("configure");
    acceptor_.bind(endpoint, ec);
    if (ec) return fail("bind");
    acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return fail("listen on");
    return {};
  }

  tcp::endpoint local_endpoint() const {
    beast::error_code ec;
    return acceptor_.local_endpoint(ec);
  }

  void Run() {
    net::dispatch(acceptor_.get_executor(),
                  beast::bind_front_handler(&Listener::DoAccept, shared_from_this()));
  }

  void Close() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
      self->backoff_.cancel();
    });
  }

 private:
  void DoAccept() {
    if (shared_->stopping) return;
    acceptor_.async_accept(net::make_strand(ioc_),
                           beast::bind_front_handler(&Listener::OnAccept, shared_from_this()));
  }

  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (shared_->stopping || ec == net::error::operation_aborted) return;
    if (ec) {
      // E.g. EMFILE: keep serving the open connections and retry shortly
      // rather than spinning or giving up on accepting for good.
      spdlog::warn("http: accept: {}; retrying", ec.message());
      backoff_.expires_after(std::chrono::milliseconds(100));
      backoff_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
        if (!wait_ec) self->DoAccept();
      });
      return;
    }
    std::make_shared<Session>(std::move(socket), shared_)->Run();
    DoAccept();
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer backoff_;
  std::shared_ptr<Shared> shared_;
};

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : shared_(std::make_shared<Shared>()), ioc_(std::max(1, options.io_threads)) {
  shared_->options = std::move(options);
  shared_->handler = std::move(handler);
}

HttpServer::~HttpServer() { Stop(); }

core::Status HttpServer::Start() {
  if (started_) return core::MakeError("internal", "HttpServer started twice");
  beast::error_code ec;
  const auto address = net::ip::make_address(shared_->options.host, ec);
  if (ec) {
    return core::MakeError("invalid_request", "bad listen address '" + shared_->options.host + "'");
  }
  listener_ = std::make_shared<Listener>(ioc_, shared_);
  if (auto st = listener_->Open(tcp::endpoint(address, shared_->options.port)); !st) return st;
  endpoint_ = listener_->local_endpoint();
  listener_->Run();
  work_.emplace(ioc_.get_executor());
  started_ = true;
  const int n = std::max(1, shared_->options.io_threads);
  threads_.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    threads_.emplace_back([this] {
      // Handlers never throw (errors are values); a throw here is a bug we
      // log and survive rather than take the whole agent down.
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("http: I/O thread caught: {}", e.what());
        }
      }
    });
  }
  return {};
}

void HttpServer::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  shared_->stopping = true;
  listener_->Close();
  {
    std::vector<std::shared_ptr<Session>> sessions;
    {
      std::lock_guard lock(shared_->mu);
      for (auto& [ptr, weak] : shared_->sessions) {
        if (auto s = weak.lock()) sessions.push_back(std::move(s));
      }
    }
    for (auto& s : sessions) s->CloseIfIdle();
  }
  {
    std::unique_lock lock(shared_->mu);
    const bool drained = shared_->cv.wait_for(lock, shared_->options.stop_grace, [&] {
      return shared_->in_flight == 0 && shared_->sessions.empty();
    });
    if (!drained) {
      spdlog::warn("http: stopping with {} request(s) in flight, {} connection(s) open",
                   shared_->in_flight, shared_->sessions.size());
    }
  }
  work_.reset();
  ioc_.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace loyalty::agent

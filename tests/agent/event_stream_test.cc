// HttpServer event streams (Server-Sent Events) over real sockets: the
// header, events in order, heartbeats, the client leaving, a client that
// stops reading, Close, and Stop with streams open.
#include <utility>  // before Boost.Asio (Boost 1.74)

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "agent/http_server.h"
#include "ctl/http_client.h"

namespace loyalty::agent {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

// A client of one event stream: sends the request and collects everything
// the server writes, on its own thread, until the connection ends.
class StreamClient {
 public:
  explicit StreamClient(const net::ip::tcp::endpoint& server, const std::string& target = "/events")
      : socket_(ioc_) {
    socket_.connect(server);
    const std::string request =
        "GET " + target + " HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
    net::write(socket_, net::buffer(request));
    reader_ = std::thread([this] {
      char buf[4096];
      for (;;) {
        boost::system::error_code ec;
        const std::size_t n = socket_.read_some(net::buffer(buf), ec);
        std::lock_guard lock(mu_);
        received_.append(buf, n);
        if (ec) {
          ended_ = true;
          cv_.notify_all();
          return;
        }
        cv_.notify_all();
      }
    });
  }
  ~StreamClient() {
    Leave();
    reader_.join();
  }

  // Waits until what was received contains `needle`.
  bool WaitFor(const std::string& needle, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return received_.find(needle) != std::string::npos; });
  }
  // Waits until the server closes the connection.
  bool WaitForEnd(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return ended_; });
  }
  std::string Received() {
    std::lock_guard lock(mu_);
    return received_;
  }
  // Closes the connection from this side.
  void Leave() {
    boost::system::error_code ec;
    socket_.shutdown(net::ip::tcp::socket::shutdown_both, ec);
  }

 private:
  net::io_context ioc_;
  net::ip::tcp::socket socket_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string received_;
  bool ended_ = false;
};

// The streams the server opened, for the test to send on.
struct Streams {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::shared_ptr<EventStream>> open;
  int closed = 0;

  StreamHandler Handler(std::string first_event = "") {
    return [this, first_event](const HttpRequest&, std::shared_ptr<EventStream> stream) {
      if (!first_event.empty()) stream->Send(first_event);
      stream->OnClose([this] {
        std::lock_guard lock(mu);
        ++closed;
        cv.notify_all();
      });
      std::lock_guard lock(mu);
      open.push_back(std::move(stream));
      cv.notify_all();
    };
  }
  std::shared_ptr<EventStream> WaitOpen(std::size_t n) {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, 5s, [&] { return open.size() >= n; })) return nullptr;
    return open[n - 1];
  }
  bool WaitClosed(int n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 5s, [&] { return closed >= n; });
  }
};

class EventStreamTest : public ::testing::Test {
 protected:
  void Start(HttpServerOptions options = {}, std::string first_event = "") {
    options.port = 0;
    options.event_streams.emplace("/events", streams_.Handler(std::move(first_event)));
    server_ = std::make_unique<HttpServer>(
        std::move(options), [](const HttpRequest&, Respond r) { r(200, "plain", "text/plain"); });
    auto st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.error().message;
  }
  net::ip::tcp::endpoint Endpoint() const { return server_->local_endpoint(); }

  Streams streams_;
  std::unique_ptr<HttpServer> server_;
};

TEST(SseFormat, FramesEventsAndSplitsMultiLineData) {
  EXPECT_EQ(FormatSseEvent("state", "{\"a\":1}"), "event: state\ndata: {\"a\":1}\n\n");
  EXPECT_EQ(FormatSseEvent("", "one\ntwo\r\nthree", 7),
            "id: 7\ndata: one\ndata: two\ndata: three\n\n");
  EXPECT_EQ(FormatSseEvent("x", ""), "event: x\ndata: \n\n");
  EXPECT_EQ(FormatSseRetry(2500ms), "retry: 2500\n\n");
}

TEST_F(EventStreamTest, SendsTheHeaderTheFirstEventAndLaterEventsInOrder) {
  Start({}, FormatSseEvent("state", "now"));
  StreamClient client(Endpoint(), "/events?since=0");
  ASSERT_TRUE(client.WaitFor("data: now\n\n")) << client.Received();
  auto stream = streams_.WaitOpen(1);
  ASSERT_TRUE(stream);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(stream->Send(FormatSseEvent("", std::to_string(i))));
  ASSERT_TRUE(client.WaitFor("data: 19\n\n")) << client.Received();

  const std::string got = client.Received();
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("Content-Type: text/event-stream"), std::string::npos) << got;
  EXPECT_NE(got.find("Cache-Control: no-store"), std::string::npos) << got;
  EXPECT_EQ(got.find("Content-Length"), std::string::npos) << got;
  std::size_t at = got.find("data: now");
  for (int i = 0; i < 20; ++i) {
    const std::size_t next = got.find("data: " + std::to_string(i) + "\n", at);
    ASSERT_NE(next, std::string::npos) << i;
    EXPECT_GT(next, at);
    at = next;
  }
}

TEST_F(EventStreamTest, OtherRequestsStillGoToTheHandler) {
  Start();
  ctl::Url url;
  url.host = "127.0.0.1";
  url.port = std::to_string(Endpoint().port());
  ctl::HttpClient client(url, 10s);
  auto r = client.Call(boost::beast::http::verb::get, "/other");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, "plain");
  // A stream path with another method is an ordinary request too.
  auto post = client.Call(boost::beast::http::verb::post, "/events", "x");
  ASSERT_TRUE(post.ok()) << post.error().message;
  EXPECT_EQ(post->body, "plain");
}

TEST_F(EventStreamTest, AQuietStreamGetsHeartbeatComments) {
  HttpServerOptions options;
  options.heartbeat_interval = 50ms;
  Start(options);
  StreamClient client(Endpoint());
  ASSERT_TRUE(client.WaitFor(": keep-alive\n\n")) << client.Received();
}

TEST_F(EventStreamTest, AClientThatLeavesEndsTheStream) {
  Start();
  {
    StreamClient client(Endpoint());
    ASSERT_TRUE(streams_.WaitOpen(1));
    client.Leave();
    EXPECT_TRUE(streams_.WaitClosed(1));
  }
  auto stream = streams_.WaitOpen(1);
  EXPECT_FALSE(stream->Send("late\n\n"));
  // A close callback set after the end runs at once.
  bool called = false;
  stream->OnClose([&] { called = true; });
  EXPECT_TRUE(called);
}

TEST_F(EventStreamTest, CloseEndsTheStreamAfterWhatWasQueued) {
  Start();
  StreamClient client(Endpoint());
  auto stream = streams_.WaitOpen(1);
  ASSERT_TRUE(stream);
  stream->Send(FormatSseEvent("", "last"));
  stream->Close();
  ASSERT_TRUE(client.WaitForEnd()) << client.Received();
  EXPECT_NE(client.Received().find("data: last\n\n"), std::string::npos);
  EXPECT_TRUE(streams_.WaitClosed(1));
}

TEST_F(EventStreamTest, AClientThatStopsReadingIsDisconnectedWhenItsQueueIsFull) {
  HttpServerOptions options;
  options.max_stream_queue = 4;
  Start(options);
  // The client sends its request and never reads: the kernel's buffers fill,
  // then the session's queue.
  net::io_context ioc;
  net::ip::tcp::socket socket(ioc);
  socket.connect(Endpoint());
  net::write(socket, net::buffer(std::string("GET /events HTTP/1.1\r\nHost: x\r\n\r\n")));
  auto stream = streams_.WaitOpen(1);
  ASSERT_TRUE(stream);
  const std::string big = FormatSseEvent("", std::string(1 << 20, 'x'));
  for (int i = 0; i < 200 && stream->Send(big); ++i) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(streams_.WaitClosed(1));
  EXPECT_FALSE(stream->Send(big));
}

TEST_F(EventStreamTest, StopClosesOpenStreamsPromptly) {
  HttpServerOptions options;
  options.stop_grace = 10s;
  Start(options, FormatSseEvent("", "hello"));
  StreamClient a(Endpoint());
  StreamClient b(Endpoint());
  ASSERT_TRUE(a.WaitFor("data: hello"));
  ASSERT_TRUE(b.WaitFor("data: hello"));
  ASSERT_TRUE(streams_.WaitOpen(2));

  const auto start = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);  // not the grace period
  EXPECT_TRUE(streams_.WaitClosed(2));
  EXPECT_TRUE(a.WaitForEnd());
  EXPECT_TRUE(b.WaitForEnd());
  EXPECT_FALSE(streams_.WaitOpen(2)->Send("after stop\n\n"));
}

}  // namespace
}  // namespace loyalty::agent

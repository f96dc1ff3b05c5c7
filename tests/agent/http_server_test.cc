// HttpServer with an in-test handler: the transport behaviour (keep-alive,
// asynchronous completions, size limits, errors, stop) without the service.
#include "agent/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <future>
#include <thread>

#include "ctl/http_client.h"

namespace loyalty::agent {
namespace {

using boost::beast::http::verb;
namespace net = boost::asio;

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpHandler handler, HttpServerOptions options = {}) {
    options.port = 0;
    server_ = std::make_unique<HttpServer>(std::move(options), std::move(handler));
    auto st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.error().message;
    ASSERT_NE(server_->local_endpoint().port(), 0);
  }

  ctl::HttpClient Client() {
    ctl::Url url;
    url.host = "127.0.0.1";
    url.port = std::to_string(server_->local_endpoint().port());
    return ctl::HttpClient(url, std::chrono::seconds(10));
  }

  // Sends raw bytes on a new connection and returns everything the server
  // writes back until it closes.
  std::string Raw(const std::string& bytes) {
    net::io_context ioc;
    net::ip::tcp::socket socket(ioc);
    socket.connect(server_->local_endpoint());
    net::write(socket, net::buffer(bytes));
    // Done sending: the server sees end of stream after these requests.
    boost::system::error_code ec;
    socket.shutdown(net::ip::tcp::socket::shutdown_send, ec);
    std::string reply;
    char buf[4096];
    for (;;) {
      const std::size_t n = socket.read_some(net::buffer(buf), ec);
      reply.append(buf, n);
      if (ec) break;
    }
    return reply;
  }

  static HttpHandler Echo() {
    return [](const HttpRequest& req, Respond respond) {
      respond(200, std::string(req.target()) + ":" + req.body(), "text/plain");
    };
  }

  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, ServesManyRequestsOnOneKeptAliveConnection) {
  Start(Echo());
  auto client = Client();
  for (int i = 0; i < 10; ++i) {
    auto r = client.Call(verb::post, "/x" + std::to_string(i), "body");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 200u);
    EXPECT_EQ(r->body, "/x" + std::to_string(i) + ":body");
    EXPECT_EQ(r->content_type, "text/plain");
  }
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST_F(HttpServerTest, HonoursConnectionCloseAndHttp10) {
  Start(Echo());
  const std::string reply = Raw("GET /a HTTP/1.0\r\nHost: x\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.0 200", 0), 0u) << reply;
  const std::string closed = Raw("GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(closed.rfind("HTTP/1.1 200", 0), 0u) << closed;
  EXPECT_NE(closed.find("/b:"), std::string::npos);
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Start(Echo());
  const std::string reply =
      Raw("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
          "GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const auto first = reply.find("/1:");
  const auto second = reply.find("/2:");
  ASSERT_NE(first, std::string::npos) << reply;
  ASSERT_NE(second, std::string::npos) << reply;
  EXPECT_LT(first, second);
}

TEST_F(HttpServerTest, RespondMayBeCalledLaterFromAnotherThread) {
  std::vector<std::thread> workers;
  std::mutex mu;
  Start([&](const HttpRequest& req, Respond respond) {
    std::string body = req.body();  // the request is only valid during the call
    std::lock_guard lock(mu);
    workers.emplace_back([respond = std::move(respond), body] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      respond(201, "later:" + body, "application/json");
      respond(500, "ignored", "text/plain");  // a second call is ignored
    });
  });
  auto client = Client();
  for (int i = 0; i < 3; ++i) {
    auto r = client.Call(verb::post, "/", "n" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 201u);
    EXPECT_EQ(r->body, "later:n" + std::to_string(i));
  }
  server_->Stop();
  for (auto& t : workers) t.join();
}

TEST_F(HttpServerTest, OversizeBodyIs413TooLargeAndTheServerCarriesOn) {
  std::atomic<int> handled{0};
  std::atomic<int> rejected{0};
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  options.on_rejected = [&](unsigned status) {
    if (status == 413) ++rejected;
  };
  Start(
      [&](const HttpRequest&, Respond respond) {
        ++handled;
        respond(200, "ok", "text/plain");
      },
      options);
  auto client = Client();
  auto big = client.Call(verb::post, "/", std::string(5000, 'x'));
  ASSERT_TRUE(big.ok()) << big.error().message;
  EXPECT_EQ(big->status, 413u);
  EXPECT_EQ(big->body,
            R"({"error":{"code":"too_large","message":"request body is larger than 1024 bytes"}})");
  EXPECT_EQ(handled.load(), 0);
  EXPECT_EQ(rejected.load(), 1);

  // A chunked body over the limit is refused too.
  const std::string chunked =
      Raw("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
          "800\r\n" +
          std::string(0x800, 'y') + "\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.rfind("HTTP/1.1 413", 0), 0u) << chunked.substr(0, 200);

  auto small = client.Call(verb::post, "/", std::string(1000, 'x'));
  ASSERT_TRUE(small.ok()) << small.error().message;
  EXPECT_EQ(small->status, 200u);
  EXPECT_EQ(handled.load(), 1);
}

TEST_F(HttpServerTest, ExpectContinueGets100ContinueUnlessTheBodyIsTooLarge) {
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  Start(Echo(), options);
  const std::string ok =
      Raw("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbody");
  EXPECT_EQ(ok.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", 0), 0u) << ok;
  EXPECT_NE(ok.find("/e:body"), std::string::npos) << ok;
  const std::string big =
      Raw("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(big.rfind("HTTP/1.1 413", 0), 0u) << big;
}

TEST_F(HttpServerTest, OversizeHeadersAre431TooLarge) {
  HttpServerOptions options;
  options.max_header_bytes = 1024;
  Start(Echo(), options);
  const std::string reply =
      Raw("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'h') + "\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 431", 0), 0u) << reply.substr(0, 200);
  EXPECT_NE(reply.find("too_large"), std::string::npos);
}

TEST_F(HttpServerTest, GarbageIs400AndDoesNotReachTheHandler) {
  std::atomic<int> handled{0};
  Start([&](const HttpRequest&, Respond respond) {
    ++handled;
    respond(200, "", "text/plain");
  });
  const std::string reply = Raw("\x01\x02 not http at all\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
  EXPECT_NE(reply.find("invalid_request"), std::string::npos);
  EXPECT_EQ(handled.load(), 0);
  // A client that connects and leaves is no error either.
  EXPECT_EQ(Raw(""), "");
}

TEST_F(HttpServerTest, AHandlerThatThrowsOrDropsItsResponseGets500) {
  Start([](const HttpRequest& req, Respond /*respond*/) {
    if (req.target() == "/throw") throw std::runtime_error("boom");
    // "/drop": respond goes out of scope uncalled.
  });
  auto client = Client();
  auto thrown = client.Call(verb::get, "/throw");
  ASSERT_TRUE(thrown.ok());
  EXPECT_EQ(thrown->status, 500u);
  EXPECT_NE(thrown->body.find("\"internal\""), std::string::npos);
  auto dropped = client.Call(verb::get, "/drop");
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped->status, 500u);
}

TEST_F(HttpServerTest, StopLetsAnInFlightRequestFinish) {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::thread worker;
  Start([&](const HttpRequest&, Respond respond) {
    worker = std::thread([respond = std::move(respond), released] {
      released.wait();
      respond(200, "finished", "text/plain");
    });
    entered.set_value();
  });
  auto call = std::async(std::launch::async, [&] {
    auto client = Client();
    return client.Call(verb::get, "/slow");
  });
  entered.get_future().wait();
  // Stop blocks until the in-flight request is answered.
  auto stopping = std::async(std::launch::async, [&] { server_->Stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  release.set_value();
  stopping.get();
  auto r = call.get();
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(r->body, "finished");
  worker.join();

  // After Stop nothing is accepted any more.
  ctl::Url url;
  url.host = "127.0.0.1";
  url.port = std::to_string(server_->local_endpoint().port());
  ctl::HttpClient late(url, std::chrono::seconds(2));
  EXPECT_FALSE(late.Call(verb::get, "/").ok());
}

TEST_F(HttpServerTest, StopClosesIdleKeptAliveConnections) {
  Start(Echo());
  auto client = Client();
  ASSERT_TRUE(client.Call(verb::get, "/").ok());
  server_->Stop();  // returns although the client still holds its connection
  SUCCEED();
}

TEST(HttpServerBind, ABusyPortIsAnError) {
  HttpServerOptions any_port;
  any_port.port = 0;
  HttpServer first(any_port, [](const HttpRequest&, Respond r) { r(200, "", "text/plain"); });
  ASSERT_TRUE(first.Start().ok());
  HttpServerOptions options;
  options.port = first.local_endpoint().port();
  HttpServer second(options, [](const HttpRequest&, Respond r) { r(200, "", "text/plain"); });
  auto st = second.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, "unavailable");
}

}  // namespace
}  // namespace loyalty::agent

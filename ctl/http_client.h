// HttpClient: a small synchronous HTTP/1.1 client (Boost.Beast) for
// loyaltyctl and the tests: one keep-alive connection to one server, opened
// on first use and reopened when the server closed it.
//
// Transport failures are Errors with code "unavailable" (could not resolve
// or connect, reset, timeout); the caller decides what to tell the user.
// HTTP error statuses are not errors here: they come back as replies.
//
// Not thread-safe: one client per thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"

namespace loyalty::ctl {

// "http://HOST:PORT" with an optional path prefix; the port defaults to 80.
struct Url {
  std::string host;
  std::string port = "80";
  std::string base_path;  // without a trailing '/', e.g. "" or "/loyalty"
};

// Error code "invalid_request" when `url` is not an http:// URL.
core::Result<Url> ParseUrl(std::string_view url);

struct HttpReply {
  unsigned status = 0;
  std::string content_type;
  std::string allow;  // a 405's Allow header
  std::string body;
};

class HttpClient {
 public:
  explicit HttpClient(Url url, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `method target` (target is appended to the URL's base path) with
  // `body` as application/json when non-empty, and reads the reply.
  core::Result<HttpReply> Call(boost::beast::http::verb method, std::string_view target,
                               std::string_view body = {});

  // How many TCP connections this client has opened (keep-alive tests).
  int connections_opened() const { return connections_opened_; }

 private:
  core::Status Connect();
  void Disconnect();
  void RunIo();  // runs the pending asynchronous operation to completion

  Url url_;
  std::chrono::milliseconds timeout_;
  boost::asio::io_context ioc_;
  std::unique_ptr<boost::beast::tcp_stream> stream_;
  int connections_opened_ = 0;
};

}  // namespace loyalty::ctl

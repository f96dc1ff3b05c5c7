#include "ctl/http_client.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace loyalty::ctl {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

core::Error Unavailable(std::string message) {
  return core::MakeError(core::code::kUnavailable, std::move(message));
}

}  // namespace

core::Result<Url> ParseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) {
    return core::MakeError(core::code::kInvalidRequest,
                           "--url: '" + std::string(url) + "' must start with http://");
  }
  std::string_view rest = url.substr(kScheme.size());
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  Url out;
  if (slash != std::string_view::npos) {
    out.base_path = std::string(rest.substr(slash));
    while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  }
  std::size_t colon;
  if (!authority.empty() && authority.front() == '[') {  // [v6]:port
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return core::MakeError(core::code::kInvalidRequest, "--url: bad IPv6 address");
    }
    out.host = std::string(authority.substr(1, close - 1));
    colon = authority.find(':', close);
  } else {
    colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
  }
  if (colon != std::string_view::npos) out.port = std::string(authority.substr(colon + 1));
  const bool port_ok = !out.port.empty() && out.port.size() <= 5 &&
                       out.port.find_first_not_of("0123456789") == std::string::npos &&
                       std::stoi(out.port) > 0 && std::stoi(out.port) <= 65535;
  if (out.host.empty() || !port_ok) {
    return core::MakeError(core::code::kInvalidRequest,
                           "--url: '" + std::string(url) + "' is not http://HOST:PORT");
  }
  return out;
}

HttpClient::HttpClient(Url url, std::chrono::milliseconds timeout)
    : url_(std::move(url)), timeout_(timeout) {}

HttpClient::~HttpClient() { Disconnect(); }

core::Status HttpClient::Connect() {
  beast::error_code ec;
  tcp::resolver resolver(ioc_);
  auto endpoints = resolver.resolve(url_.host, url_.port, ec);
  if (ec) return Unavailable("cannot resolve " + url_.host + ": " + ec.message());
  auto stream = std::make_unique<beast::tcp_stream>(ioc_);
  // Asynchronous operations run to completion right here: only they honour
  // the tcp_stream's timeout, the synchronous ones would wait forever.
  stream->expires_after(timeout_);
  stream->async_connect(endpoints, [&ec](beast::error_code e, const tcp::endpoint&) { ec = e; });
  RunIo();
  if (ec) {
    return Unavailable("cannot connect to " + url_.host + ":" + url_.port + ": " + ec.message());
  }
  stream->socket().set_option(tcp::no_delay(true), ec);
  stream_ = std::move(stream);
  ++connections_opened_;
  return {};
}

void HttpClient::RunIo() {
  ioc_.restart();
  ioc_.run();
}

void HttpClient::Disconnect() {
  if (!stream_) return;
  beast::error_code ec;
  stream_->socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_->socket().close(ec);
  stream_.reset();
}

core::Result<HttpReply> HttpClient::Call(http::verb method, std::string_view target,
                                         std::string_view body) {
  http::request<http::string_body> req{method, url_.base_path + std::string(target), 11};
  req.set(http::field::host, url_.host + ":" + url_.port);
  req.set(http::field::user_agent, "loyaltyctl");
  req.set(http::field::accept, "application/json");
  if (!body.empty() || method == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
  }
  req.keep_alive(true);
  req.prepare_payload();

  // A kept-alive connection may have been closed by the server meanwhile;
  // then the first attempt fails before any reply and one retry on a fresh
  // connection is safe (the server did not read the request).
  const bool reused = stream_ != nullptr;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!stream_) {
      if (auto st = Connect(); !st) return st.error();
    }
    beast::error_code ec;
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    stream_->expires_after(timeout_);
    http::async_write(*stream_, req, [&](beast::error_code e, std::size_t) {
      ec = e;
      if (ec) return;
      stream_->expires_after(timeout_);
      http::async_read(*stream_, buffer, parser,
                       [&ec](beast::error_code e2, std::size_t) { ec = e2; });
    });
    RunIo();
    if (ec) {
      Disconnect();
      const bool stale = reused && attempt == 0 &&
                         (ec == http::error::end_of_stream || ec == net::error::connection_reset ||
                          ec == net::error::broken_pipe || ec == net::error::eof);
      if (stale) continue;
      return Unavailable("HTTP exchange with " + url_.host + ":" + url_.port +
                         " failed: " + ec.message());
    }
    auto res = parser.release();
    HttpReply reply;
    reply.status = res.result_int();
    reply.content_type = std::string(res[http::field::content_type]);
    reply.allow = std::string(res[http::field::allow]);
    reply.body = std::move(res.body());
    if (!res.keep_alive()) Disconnect();
    return reply;
  }
  return Unavailable("HTTP exchange with " + url_.host + ":" + url_.port + " failed");
}

}  // namespace loyalty::ctl

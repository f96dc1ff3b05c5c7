#include "tests/support/http_client.h"

// <utility> first: Boost 1.74's asio/awaitable.hpp uses std::exchange unincluded.
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace loyalty::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct HttpClient::Impl {
  std::string host;
  int port;
  asio::io_context io;
  std::unique_ptr<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
};

HttpClient::HttpClient(std::string host, int port) : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
}

HttpClient::~HttpClient() = default;

HttpResponse HttpClient::Request(const std::string& method, const std::string& target,
                                 const std::string& body, int timeout_ms) {
  Impl& d = *impl_;
  for (int attempt = 0; attempt < 2; ++attempt) {
    beast::error_code ec;
    const bool fresh = !d.stream;
    if (fresh) {
      d.stream = std::make_unique<beast::tcp_stream>(d.io);
      d.buffer.clear();
      d.stream->expires_after(std::chrono::milliseconds(timeout_ms));
      d.stream->connect(
          asio::ip::tcp::endpoint(asio::ip::make_address(d.host), static_cast<uint16_t>(d.port)),
          ec);
      if (ec) {
        d.stream.reset();
        return {};
      }
    }
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, d.host);
    req.keep_alive(true);
    if (!body.empty() || method == "POST") {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    d.stream->expires_after(std::chrono::milliseconds(timeout_ms));
    http::write(*d.stream, req, ec);
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    if (!ec) http::read(*d.stream, d.buffer, parser, ec);
    if (ec) {
      d.stream.reset();
      // A kept-alive connection the server closed meanwhile: retry once on a
      // new one. A failure on a fresh connection is the answer.
      if (fresh) return {};
      continue;
    }
    auto res = parser.release();
    HttpResponse out{static_cast<int>(res.result_int()), res.body(),
                     std::string(res[http::field::content_type])};
    if (!res.keep_alive()) d.stream.reset();
    return out;
  }
  return {};
}

}  // namespace loyalty::testing

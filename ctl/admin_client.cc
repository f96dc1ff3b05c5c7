#include "ctl/admin_client.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "pki/bundle.h"
#include "sync/tls.h"

namespace loyalty::ctl {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

core::Result<Url> ParseHttpsUrl(std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  if (!url.starts_with(kScheme)) {
    return core::MakeError(core::code::kInvalidRequest,
                           "--url: '" + std::string(url) + "' must start with https://");
  }
  // Same shape as an http:// URL; only the scheme and default port differ.
  std::string rest(url.substr(kScheme.size()));
  const std::string authority = rest.substr(0, rest.find('/'));
  const bool has_port =
      authority.find(':', authority.rfind(']') == std::string::npos ? 0 : authority.rfind(']')) !=
      std::string::npos;
  if (!has_port) rest.insert(authority.size(), ":443");
  auto parsed = ParseUrl("http://" + rest);
  if (!parsed) {
    return core::MakeError(core::code::kInvalidRequest,
                           "--url: '" + std::string(url) + "' is not https://HOST:PORT");
  }
  return parsed;
}

core::Result<std::unique_ptr<AdminClient>> AdminClient::Create(Url url,
                                                               const std::filesystem::path& tls_dir,
                                                               std::chrono::milliseconds timeout,
                                                               std::string server_name) {
  auto bundle = pki::LoadBundle(tls_dir);
  if (!bundle) {
    return core::MakeError(core::code::kInvalidRequest, "--tls-dir: " + bundle.error().message +
                                                            " (" + bundle.error().code + ")");
  }
  auto ctx = sync::MakeClientContext(*bundle);
  if (!ctx) {
    return core::MakeError(core::code::kInvalidRequest, "--tls-dir: " + ctx.error().message);
  }
  if (server_name.empty()) server_name = url.host;
  return std::unique_ptr<AdminClient>(
      new AdminClient(std::move(url), *ctx, timeout, std::move(server_name)));
}

AdminClient::AdminClient(Url url, std::shared_ptr<ssl::context> ctx,
                         std::chrono::milliseconds timeout, std::string server_name)
    : url_(std::move(url)),
      server_name_(std::move(server_name)),
      ctx_(std::move(ctx)),
      timeout_(timeout) {}

AdminClient::~AdminClient() = default;

core::Result<HttpReply> AdminClient::Call(std::string_view method, std::string_view target,
                                          std::string_view body) {
  auto unavailable = [this](const std::string& what, const beast::error_code& ec) {
    return core::MakeError(core::code::kUnavailable, "cannot reach " + url_.host + ":" + url_.port +
                                                         ": " + what + ": " + ec.message());
  };
  net::io_context ioc;
  ssl::stream<beast::tcp_stream> stream(ioc, *ctx_);
  if (auto s = sync::SetExpectedHost(stream.native_handle(), server_name_); !s) {
    return core::MakeError(core::code::kInvalidRequest, "--server-name: " + s.error().message);
  }
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto endpoints = resolver.resolve(url_.host, url_.port, ec);
  if (ec) return unavailable("resolve", ec);

  // Asynchronous operations run to completion one at a time, so that every
  // step has the tcp_stream's timeout.
  auto run = [&ioc] {
    ioc.restart();
    ioc.run();
  };
  auto& lowest = beast::get_lowest_layer(stream);
  lowest.expires_after(timeout_);
  lowest.async_connect(endpoints, [&ec](beast::error_code e, const tcp::endpoint&) { ec = e; });
  run();
  if (ec) return unavailable("connect", ec);
  lowest.expires_after(timeout_);
  stream.async_handshake(ssl::stream_base::client, [&ec](beast::error_code e) { ec = e; });
  run();
  if (ec) {
    if (SSL_get_verify_result(stream.native_handle()) == X509_V_ERR_HOSTNAME_MISMATCH ||
        SSL_get_verify_result(stream.native_handle()) == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      return core::MakeError(core::code::kUnavailable,
                             "cannot reach " + url_.host + ":" + url_.port +
                                 ": the server's certificate does not name \"" + server_name_ +
                                 "\"; give --server-name the name it was issued for "
                                 "(pki issue-server --host)");
    }
    return unavailable("TLS handshake", ec);
  }

  http::request<http::string_body> request;
  request.method_string(std::string(method));
  request.target(url_.base_path + std::string(target));
  request.version(11);
  request.set(http::field::host, url_.host);
  request.set(http::field::user_agent, "loyaltyctl");
  request.keep_alive(false);
  if (!body.empty()) {
    request.set(http::field::content_type, "application/json");
    request.body() = std::string(body);
  }
  request.prepare_payload();
  lowest.expires_after(timeout_);
  http::async_write(stream, request, [&ec](beast::error_code e, std::size_t) { ec = e; });
  run();
  if (ec) return unavailable("write", ec);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  lowest.expires_after(timeout_);
  http::async_read(stream, buffer, parser, [&ec](beast::error_code e, std::size_t) { ec = e; });
  run();
  if (ec) return unavailable("read", ec);
  HttpReply reply;
  reply.status = parser.get().result_int();
  reply.content_type = std::string(parser.get()[http::field::content_type]);
  reply.body = std::move(parser.get().body());
  // The server closes after answering (keep_alive false); a close_notify is
  // a courtesy the reply does not depend on.
  lowest.expires_after(std::chrono::seconds(1));
  stream.async_shutdown([](beast::error_code) {});
  run();
  return reply;
}

}  // namespace loyalty::ctl

// AdminClient: a small synchronous HTTPS/1.1 client (Boost.Beast over
// OpenSSL) for `loyaltyctl admin` and the server tests. Mutual TLS with an
// admin bundle (pki/bundle.h): the bundle's CA is the only trust anchor and
// the server certificate must name the URL's host (DNS name or IP). One
// connection per call: admin commands are few, and this keeps the client
// simple.
//
// Errors: bad URL or unusable bundle: invalid_request (a usage error);
// cannot resolve, connect, complete the TLS handshake (e.g. the server does
// not trust us), or read the reply in time: unavailable. HTTP error
// statuses are not errors here: they come back as replies.
//
// Not thread-safe: one client per thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"
#include "ctl/http_client.h"

namespace boost::asio::ssl {
class context;
}

namespace loyalty::ctl {

// "https://HOST:PORT[/prefix]"; the port defaults to 443.
core::Result<Url> ParseHttpsUrl(std::string_view url);

class AdminClient {
 public:
  // `server_name`: the name the server's certificate must carry, when it
  // is not the URL's host (e.g. https://127.0.0.1:7444 on the server itself,
  // whose certificate names loyalty.example.com).
  static core::Result<std::unique_ptr<AdminClient>> Create(
      Url url, const std::filesystem::path& tls_dir,
      std::chrono::milliseconds timeout = std::chrono::seconds(10), std::string server_name = {});
  ~AdminClient();
  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;

  // Sends `method target` (appended to the URL's base path) with `body` as
  // application/json when non-empty, and reads the reply.
  core::Result<HttpReply> Call(std::string_view method, std::string_view target,
                               std::string_view body = {});

 private:
  AdminClient(Url url, std::shared_ptr<boost::asio::ssl::context> ctx,
              std::chrono::milliseconds timeout, std::string server_name);

  Url url_;
  std::string server_name_;
  std::shared_ptr<boost::asio::ssl::context> ctx_;
  std::chrono::milliseconds timeout_;
};

}  // namespace loyalty::ctl

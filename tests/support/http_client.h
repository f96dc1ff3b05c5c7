// A blocking HTTP/1.1 client for tests, with keep-alive and a timeout.
#pragma once

#include <memory>
#include <string>

namespace loyalty::testing {

struct HttpResponse {
  int status = 0;  // 0: no response (connection failed or closed)
  std::string body;
  std::string content_type;
};

class HttpClient {
 public:
  HttpClient(std::string host, int port);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request on the kept-alive connection (reconnecting if needed).
  HttpResponse Request(const std::string& method, const std::string& target,
                       const std::string& body = "", int timeout_ms = 10000);
  HttpResponse Get(const std::string& target) { return Request("GET", target); }
  HttpResponse Post(const std::string& target, const std::string& body) {
    return Request("POST", target, body);
  }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loyalty::testing

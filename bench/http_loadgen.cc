// http_loadgen: drives a running loyalty-agent over loopback HTTP with
// keep-alive connections and reports throughput and latency percentiles.
//
//   http_loadgen --port P --mode quote|commit --connections N --seconds S
//                [--members M] [--host 127.0.0.1]
//
// Commits use unique pos_txn_ids; members are the synthetic ones from
// loyalty-bench-seed. Prints one summary line and a JSON line.
// <utility> first: Boost 1.74's asio/awaitable.hpp uses std::exchange unincluded.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_data.h"
#include "bench/latency.h"

namespace loyalty::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Config {
  std::string host = "127.0.0.1";
  std::string port = "8080";
  std::string mode = "quote";
  int connections = 16;
  double seconds = 10;
  int64_t members = 1000;
};

struct Totals {
  Latencies latencies;
  int64_t ok = 0;
  int64_t errors = 0;
};

std::string Body(const Config& config, std::mt19937_64& rng, int conn, int64_t n) {
  static const char* kCategories[] = {"Coffee", "Bakery", "Dairy", "Produce", "Snacks"};
  const int64_t member = static_cast<int64_t>(rng() % static_cast<uint64_t>(config.members));
  std::string body = "{";
  if (config.mode == "commit") {
    body += "\"pos_txn_id\":\"lg-" + std::to_string(::getpid()) + "-" + std::to_string(conn) +
            "-" + std::to_string(n) + "\",";
  }
  body += "\"card\":\"" + CardNumber(member) + "\",\"lines\":[";
  for (int i = 0; i < 3; ++i) {
    if (i) body += ",";
    body += "{\"sku\":\"SKU-" + std::to_string(rng() % 5000) + "\",\"category\":\"" +
            kCategories[rng() % 5] + "\",\"quantity\":" + std::to_string(1 + rng() % 3) +
            ",\"unit_price\":" + std::to_string(99 + rng() % 1500) + "}";
  }
  return body + "]}";
}

class Client : public std::enable_shared_from_this<Client> {
 public:
  Client(asio::io_context& io, const Config& config, const tcp::resolver::results_type& endpoints,
         int id, Clock::time_point deadline, Totals& totals)
      : stream_(io), config_(config), endpoints_(endpoints), id_(id), deadline_(deadline),
        totals_(totals), rng_(static_cast<uint64_t>(id) * 7919 + 1) {}

  void Start() {
    stream_.async_connect(endpoints_, [self = shared_from_this()](beast::error_code ec,
                                                                  const tcp::endpoint&) {
      if (ec) {
        std::cerr << "connect: " << ec.message() << "\n";
        ++self->totals_.errors;
        return;
      }
      self->Send();
    });
  }

 private:
  void Send() {
    if (Clock::now() >= deadline_) return;
    req_ = {};
    req_.method(http::verb::post);
    req_.target(config_.mode == "commit" ? "/v1/checkout/commit" : "/v1/checkout/quote");
    req_.version(11);
    req_.set(http::field::host, config_.host);
    req_.set(http::field::content_type, "application/json");
    req_.keep_alive(true);
    req_.body() = Body(config_, rng_, id_, ++n_);
    req_.prepare_payload();
    started_ = Clock::now();
    http::async_write(stream_, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Fail(ec);
      self->Receive();
    });
  }

  void Receive() {
    res_ = {};
    http::async_read(stream_, buffer_, res_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->Fail(ec);
                       self->totals_.latencies.Add(
                           std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() -
                                                                                self->started_)
                               .count());
                       if (self->res_.result_int() == 200) {
                         ++self->totals_.ok;
                       } else {
                         if (self->totals_.errors++ < 5) {
                           std::cerr << self->res_.result_int() << " " << self->res_.body() << "\n";
                         }
                       }
                       self->Send();
                     });
  }

  void Fail(beast::error_code ec) {
    if (totals_.errors++ < 5) std::cerr << "connection " << id_ << ": " << ec.message() << "\n";
  }

  beast::tcp_stream stream_;
  const Config& config_;
  tcp::resolver::results_type endpoints_;
  int id_;
  Clock::time_point deadline_;
  Totals& totals_;
  std::mt19937_64 rng_;
  int64_t n_ = 0;
  Clock::time_point started_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

int Run(const Config& config) {
  asio::io_context io;
  tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(config.host, config.port);
  Totals totals;
  totals.latencies.Reserve(1 << 20);
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::milliseconds(static_cast<int64_t>(config.seconds * 1000));
  for (int i = 0; i < config.connections; ++i) {
    std::make_shared<Client>(io, config, endpoints, i, deadline, totals)->Start();
  }
  io.run();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double rate = static_cast<double>(totals.ok) / elapsed;
  const double p50 = totals.latencies.PercentileMicros(0.50);
  const double p99 = totals.latencies.PercentileMicros(0.99);
  std::cout << config.mode << ": " << totals.ok << " ok, " << totals.errors << " errors in "
            << elapsed << " s = " << static_cast<int64_t>(rate) << "/s over "
            << config.connections << " connections; p50 " << p50 << " us, p99 " << p99
            << " us\n";
  std::cout << "{\"mode\":\"" << config.mode << "\",\"ok\":" << totals.ok
            << ",\"errors\":" << totals.errors << ",\"per_second\":" << rate
            << ",\"p50_us\":" << p50 << ",\"p99_us\":" << p99 << "}\n";
  return totals.errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace loyalty::bench

int main(int argc, char** argv) {
  loyalty::bench::Config config;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--host") config.host = value;
    else if (flag == "--port") config.port = value;
    else if (flag == "--mode") config.mode = value;
    else if (flag == "--connections") config.connections = std::atoi(value.c_str());
    else if (flag == "--seconds") config.seconds = std::atof(value.c_str());
    else if (flag == "--members") config.members = std::atoll(value.c_str());
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  if (config.mode != "quote" && config.mode != "commit") {
    std::cerr << "--mode must be quote or commit\n";
    return 2;
  }
  return loyalty::bench::Run(config);
}

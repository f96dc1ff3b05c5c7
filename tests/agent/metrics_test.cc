#include "agent/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace loyalty::agent {
namespace {

bool Contains(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(Metrics, CountsRequestsByRouteAndStatus) {
  Metrics m({"/v1/health", "/v1/checkout/commit"});
  m.Observe(0, 200, 0.0001);
  m.Observe(0, 200, 0.0001);
  m.Observe(1, 409, 0.003);
  const std::string text = m.Render();
  EXPECT_TRUE(Contains(text, "# TYPE loyalty_http_requests_total counter\n")) << text;
  EXPECT_TRUE(
      Contains(text, "loyalty_http_requests_total{route=\"/v1/health\",status=\"200\"} 2\n"))
      << text;
  EXPECT_TRUE(Contains(
      text, "loyalty_http_requests_total{route=\"/v1/checkout/commit\",status=\"409\"} 1\n"));
  // Series never observed are not printed.
  EXPECT_FALSE(Contains(text, "status=\"500\""));
}

TEST(Metrics, HistogramBucketsAreCumulativeAndEndWithInf) {
  Metrics m({"r"});
  m.Observe(0, 200, 0.0004);  // first bucket
  m.Observe(0, 200, 0.02);    // le=0.025
  m.Observe(0, 200, 10.0);    // only +Inf
  const std::string text = m.Render();
  EXPECT_TRUE(Contains(text, "# TYPE loyalty_http_request_duration_seconds histogram\n"));
  const std::string p = "loyalty_http_request_duration_seconds_bucket{route=\"r\",status=\"200\",";
  EXPECT_TRUE(Contains(text, p + "le=\"0.0005\"} 1\n")) << text;
  EXPECT_TRUE(Contains(text, p + "le=\"0.01\"} 1\n")) << text;
  EXPECT_TRUE(Contains(text, p + "le=\"0.025\"} 2\n")) << text;
  EXPECT_TRUE(Contains(text, p + "le=\"2.5\"} 2\n")) << text;
  EXPECT_TRUE(Contains(text, p + "le=\"+Inf\"} 3\n")) << text;
  EXPECT_TRUE(Contains(
      text, "loyalty_http_request_duration_seconds_count{route=\"r\",status=\"200\"} 3\n"));
  EXPECT_TRUE(Contains(
      text, "loyalty_http_request_duration_seconds_sum{route=\"r\",status=\"200\"} 10.0204"))
      << text;
}

TEST(Metrics, UncommonStatusesAreCountedByClassAndBadRoutesIgnored) {
  Metrics m({"r"});
  m.Observe(0, 202, 0);
  m.Observe(0, 418, 0);
  m.Observe(0, 599, 0);
  m.Observe(0, 42, 0);
  m.Observe(-1, 200, 0);
  m.Observe(7, 200, 0);
  const std::string text = m.Render();
  EXPECT_TRUE(Contains(text, "{route=\"r\",status=\"2xx\"} 1\n")) << text;
  EXPECT_TRUE(Contains(text, "{route=\"r\",status=\"4xx\"} 1\n")) << text;
  EXPECT_TRUE(Contains(text, "{route=\"r\",status=\"5xx\"} 1\n")) << text;
  EXPECT_TRUE(Contains(text, "{route=\"r\",status=\"other\"} 1\n")) << text;
  EXPECT_FALSE(Contains(text, "status=\"200\""));
}

TEST(Metrics, EscapesLabelValuesAndRendersGauges) {
  Metrics m({"a\"b\\c\nd"});
  m.Observe(0, 200, 0);
  m.AddGauge("loyalty_pending_events", "Events waiting.", [] { return 42.0; });
  const std::string text = m.Render();
  EXPECT_TRUE(Contains(text, "route=\"a\\\"b\\\\c\\nd\"")) << text;
  EXPECT_TRUE(Contains(text, "# TYPE loyalty_pending_events gauge\nloyalty_pending_events 42\n"))
      << text;
  EXPECT_EQ(m.RouteIndex("a\"b\\c\nd"), 0);
  EXPECT_EQ(m.RouteIndex("zzz"), -1);
}

TEST(Metrics, ConcurrentObservationsAreAllCounted) {
  Metrics m({"r"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) m.Observe(0, 200, 0.001);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(
      Contains(m.Render(), "loyalty_http_requests_total{route=\"r\",status=\"200\"} 40000\n"));
}

}  // namespace
}  // namespace loyalty::agent

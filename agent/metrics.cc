#include "agent/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace loyalty::agent {
namespace {

// Label values are escaped as the text format requires: \\, \" and \n.
void AppendLabelValue(std::string_view v, std::string* out) {
  for (char c : v) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '"') {
      out->append("\\\"");
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

std::string FormatDouble(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", d);
  return buf;
}

}  // namespace

Metrics::Metrics(std::vector<std::string> routes)
    : routes_(std::move(routes)), series_(new Series[routes_.size() * kSlots]) {}

int Metrics::RouteIndex(std::string_view route) const {
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    if (routes_[i] == route) return static_cast<int>(i);
  }
  return -1;
}

std::size_t Metrics::SlotFor(unsigned status) {
  for (std::size_t i = 0; i < kStatuses.size(); ++i) {
    if (kStatuses[i] == status) return i;
  }
  if (status >= 200 && status < 300) return kStatuses.size();
  if (status >= 400 && status < 500) return kStatuses.size() + 1;
  if (status >= 500 && status < 600) return kStatuses.size() + 2;
  return kStatuses.size() + 3;
}

std::string Metrics::SlotLabel(std::size_t slot) {
  if (slot < kStatuses.size()) return std::to_string(kStatuses[slot]);
  switch (slot - kStatuses.size()) {
    case 0:
      return "2xx";
    case 1:
      return "4xx";
    case 2:
      return "5xx";
    default:
      return "other";
  }
}

void Metrics::Observe(int route, unsigned status, double seconds) {
  if (route < 0 || static_cast<std::size_t>(route) >= routes_.size()) return;
  Series& s = series_[static_cast<std::size_t>(route) * kSlots + SlotFor(status)];
  if (!(seconds >= 0)) seconds = 0;  // also catches NaN
  std::size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  if (b < kBuckets.size()) s.buckets[b].fetch_add(1, std::memory_order_relaxed);
  s.sum_ns.fetch_add(static_cast<uint64_t>(seconds * 1e9), std::memory_order_relaxed);
  // Counted last so a concurrent Render never shows more bucket hits than
  // count for long; Prometheus tolerates the small skew of relaxed reads.
  s.count.fetch_add(1, std::memory_order_relaxed);
}

void Metrics::AddGauge(std::string name, std::string help, std::function<double()> read) {
  gauges_.push_back(Gauge{std::move(name), std::move(help), std::move(read)});
}

std::string Metrics::Render() const {
  std::string out;
  out.reserve(4096);
  out.append(
      "# HELP loyalty_http_requests_total HTTP requests answered, by route and status.\n"
      "# TYPE loyalty_http_requests_total counter\n");
  auto labels = [&](std::size_t r, std::size_t slot, std::string* o) {
    o->append("route=\"");
    AppendLabelValue(routes_[r], o);
    o->append("\",status=\"");
    o->append(SlotLabel(slot));
    o->append("\"");
  };
  for (std::size_t r = 0; r < routes_.size(); ++r) {
    for (std::size_t slot = 0; slot < kSlots; ++slot) {
      const uint64_t n = series_[r * kSlots + slot].count.load(std::memory_order_relaxed);
      if (n == 0) continue;
      out.append("loyalty_http_requests_total{");
      labels(r, slot, &out);
      out.append("} ").append(std::to_string(n)).append("\n");
    }
  }
  out.append(
      "# HELP loyalty_http_request_duration_seconds Time from request read to response "
      "ready, by route and status.\n"
      "# TYPE loyalty_http_request_duration_seconds histogram\n");
  for (std::size_t r = 0; r < routes_.size(); ++r) {
    for (std::size_t slot = 0; slot < kSlots; ++slot) {
      const Series& s = series_[r * kSlots + slot];
      const uint64_t n = s.count.load(std::memory_order_relaxed);
      if (n == 0) continue;
      uint64_t cumulative = 0;
      for (std::size_t b = 0; b < kBuckets.size(); ++b) {
        cumulative += s.buckets[b].load(std::memory_order_relaxed);
        out.append("loyalty_http_request_duration_seconds_bucket{");
        labels(r, slot, &out);
        out.append(",le=\"").append(FormatDouble(kBuckets[b])).append("\"} ");
        out.append(std::to_string(std::min(cumulative, n))).append("\n");
      }
      out.append("loyalty_http_request_duration_seconds_bucket{");
      labels(r, slot, &out);
      out.append(",le=\"+Inf\"} ").append(std::to_string(n)).append("\n");
      out.append("loyalty_http_request_duration_seconds_sum{");
      labels(r, slot, &out);
      out.append("} ")
          .append(FormatDouble(static_cast<double>(s.sum_ns.load(std::memory_order_relaxed)) / 1e9))
          .append("\n");
      out.append("loyalty_http_request_duration_seconds_count{");
      labels(r, slot, &out);
      out.append("} ").append(std::to_string(n)).append("\n");
    }
  }
  for (const Gauge& g : gauges_) {
    out.append("# HELP ").append(g.name).append(" ").append(g.help).append("\n");
    out.append("# TYPE ").append(g.name).append(" gauge\n");
    out.append(g.name).append(" ").append(FormatDouble(g.read ? g.read() : 0)).append("\n");
  }
  return out;
}

}  // namespace loyalty::agent

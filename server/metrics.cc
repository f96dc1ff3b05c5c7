#include "server/metrics.h"

#include <sstream>

namespace loyalty::server {

void ServerMetrics::BatchIngested(int64_t acknowledged, int64_t rejected, double seconds) {
  events_acked_.fetch_add(static_cast<uint64_t>(acknowledged), std::memory_order_relaxed);
  events_rejected_.fetch_add(static_cast<uint64_t>(rejected), std::memory_order_relaxed);
  batches_.fetch_add(1, std::memory_order_relaxed);
  batch_micros_sum_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) batch_buckets_[i].fetch_add(1, std::memory_order_relaxed);
  }
}

void ServerMetrics::FeedVersion(uint64_t version) {
  uint64_t current = feed_version_.load(std::memory_order_relaxed);
  while (version > current &&
         !feed_version_.compare_exchange_weak(current, version, std::memory_order_relaxed)) {
  }
}

void ServerMetrics::AdminRequest(unsigned status) {
  auto& counter = status < 400   ? admin_ok_
                  : status < 500 ? admin_client_errors_
                                 : admin_server_errors_;
  counter.fetch_add(1, std::memory_order_relaxed);
}

std::string ServerMetrics::Render() const {
  std::ostringstream out;
  auto load = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
        << name << ' ' << value << '\n';
  };
  metric("loyalty_connected_agents", "gauge", "Agent connections open now.", load(connected_));
  metric("loyalty_refused_connections_total", "counter",
         "Sync connections closed before they opened (TLS, identity or Hello refused).",
         load(refused_));
  metric("loyalty_frames_received_total", "counter", "Sync frames received from agents.",
         load(frames_in_));
  metric("loyalty_frames_sent_total", "counter", "Sync frames sent to agents.", load(frames_out_));
  metric("loyalty_pushes_sent_total", "counter", "Push notifications sent to agents.",
         load(pushes_));
  metric("loyalty_member_lookups_found_total", "counter",
         "Online member lookups from terminals that found the member.", load(lookups_found_));
  metric("loyalty_member_lookups_missed_total", "counter",
         "Online member lookups from terminals for an unknown card.", load(lookups_missed_));
  metric("loyalty_ingested_events_total", "counter",
         "Uploaded events acknowledged (applied now or before).", load(events_acked_));
  metric("loyalty_rejected_events_total", "counter", "Uploaded events rejected for good.",
         load(events_rejected_));
  metric("loyalty_feed_version", "gauge", "Latest change-feed version.", load(feed_version_));
  metric("loyalty_folded_events_total", "counter",
         "Acknowledged events folded into the member ledger.", load(events_folded_));
  metric("loyalty_unfolded_events", "gauge",
         "Events acknowledged to their terminal and not yet folded into the ledger.",
         load(unfolded_));

  const char* h = "loyalty_ingest_batch_seconds";
  out << "# HELP " << h << " Time to record one upload batch in the inbox (before its acknowledgement).\n"
      << "# TYPE " << h << " histogram\n";
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    out << h << "_bucket{le=\"" << kBuckets[i] << "\"} " << load(batch_buckets_[i]) << '\n';
  }
  out << h << "_bucket{le=\"+Inf\"} " << load(batches_) << '\n'
      << h << "_sum " << static_cast<double>(load(batch_micros_sum_)) / 1e6 << '\n'
      << h << "_count " << load(batches_) << '\n';

  const char* a = "loyalty_admin_requests_total";
  out << "# HELP " << a << " Admin API requests by status class.\n# TYPE " << a << " counter\n"
      << a << "{class=\"2xx\"} " << load(admin_ok_) << '\n'
      << a << "{class=\"4xx\"} " << load(admin_client_errors_) << '\n'
      << a << "{class=\"5xx\"} " << load(admin_server_errors_) << '\n';
  return out.str();
}

}  // namespace loyalty::server

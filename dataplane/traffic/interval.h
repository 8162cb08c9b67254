// Per-interval figures of a traffic run (iperf3's "intervals"): what the clients report every
// --interval while they run, and what agents stream to the controller as samples.
#ifndef DATAPLANE_TRAFFIC_INTERVAL_H_
#define DATAPLANE_TRAFFIC_INTERVAL_H_

#include <cstdint>
#include <functional>
#include <limits>

#include "absl/strings/string_view.h"
#include "dataplane/stats/histogram.h"
#include "nlohmann/json.hpp"

namespace lab::traffic {

// The shortest report interval the clients accept (finer ones would flood the controller's
// store with samples, not add information).
inline constexpr int64_t kMinIntervalNs = 10'000'000;

struct IntervalSample {
  double start_s = 0;  // since the run started
  double end_s = 0;
  uint64_t bytes_sent = 0;  // payload bytes in this interval
  uint64_t bytes_received = 0;
  // TCP rr: requests completed; UDP: datagrams sent / echoes received in this interval.
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  // Latency of what completed in this interval (TCP request/response time, UDP round trip);
  // NaN when nothing completed.
  double latency_p50_us = std::numeric_limits<double>::quiet_NaN();
  double latency_p99_us = std::numeric_limits<double>::quiet_NaN();
  double latency_max_us = std::numeric_limits<double>::quiet_NaN();
  // UDP: RFC 3550 interarrival jitter at the end of the interval (NaN for TCP).
  double jitter_us = std::numeric_limits<double>::quiet_NaN();
  uint64_t errors = 0;  // connect errors, resets, send failures in this interval

  double seconds() const { return end_s - start_s; }
  // Of the larger direction (the one the run measures).
  double bits_per_second() const;
  // messages_received per second.
  double messages_per_second() const;
};

// Called from the client's reporting thread once per interval, in order.
using IntervalCallback = std::function<void(const IntervalSample&)>;

// {"start":…, "end":…, "seconds":…, "bytes_sent":…, "bytes_received":…, "bits_per_second":…,
//  "messages_sent":…, "messages_received":…, "messages_per_second":…,
//  "latency_us": {"p50":…, "p99":…, "max":…} (null values when none), "jitter_us":…|null,
//  "errors":…}
nlohmann::json IntervalToJson(const IntervalSample& sample);

// {"p50","p99","p999","min","max","mean","count"} of a latency histogram (null values when
// empty). Shared by the TCP and UDP reports.
nlohmann::json LatencySummaryJson(const stats::Histogram& latency_us);
// Non-empty buckets as [[index, count], …] with the edges' name, so histograms from several
// clients merge by adding counts per index.
nlohmann::json SparseBucketsJson(const stats::Histogram& histogram, absl::string_view edges_name);

}  // namespace lab::traffic

#endif  // DATAPLANE_TRAFFIC_INTERVAL_H_

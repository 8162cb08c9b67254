// Histograms with fixed, documented bucket edges, so that histograms from different clients
// and runs merge by adding counts. Exact min, max, count and sum are kept beside the buckets.
//
// Bucket semantics are Prometheus's: bucket i holds values v with edges[i-1] < v <= edges[i];
// a last, implicit bucket holds v > edges.back(). Cumulative() gives counts of v <= edges[i]
// (plus the total as the +Inf bucket), which is what the JSON output and /metrics carry.
#ifndef DATAPLANE_TIMESYNC_HISTOGRAM_H_
#define DATAPLANE_TIMESYNC_HISTOGRAM_H_

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "absl/status/status.h"

namespace lab::timesync {

// Residual clock error, microseconds, symmetric around 0:
//   -50000 -20000 -10000 -5000 -2000 -1000 -500 -200 -100 -50 -20 -10 -5 -2 -1 -0.5 -0.2 -0.1
//   0 0.1 0.2 0.5 1 2 5 10 20 50 100 200 500 1000 2000 5000 10000 20000 50000
std::span<const double> ErrorEdgesUs();
// Round-trip time, microseconds: 1 2 5 10 20 50 ... 500000 1000000.
std::span<const double> RttEdgesUs();

class Histogram {
 public:
  // `edges` must be strictly increasing (use ErrorEdgesUs() / RttEdgesUs()).
  explicit Histogram(std::span<const double> edges);

  void Add(double value);
  // Adds `other`'s counts. FailedPrecondition when the edges differ (nothing changes).
  absl::Status Merge(const Histogram& other);

  std::span<const double> edges() const { return edges_; }
  // Per-bucket counts, edges().size() + 1 long (the last is the overflow bucket).
  std::span<const uint64_t> bucket_counts() const { return counts_; }
  // Cumulative counts, edges().size() + 1 long; the last equals count().
  std::vector<uint64_t> Cumulative() const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  double min() const { return min_; }  // +inf when empty
  double max() const { return max_; }  // -inf when empty

 private:
  std::vector<double> edges_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
  double min_ = std::numeric_limits<double>::infinity();
  double max_ = -std::numeric_limits<double>::infinity();
};

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_HISTOGRAM_H_

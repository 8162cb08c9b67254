// Histograms with fixed, documented bucket edges, so that histograms from different clients,
// hosts and runs merge by adding counts. Exact min, max, count and sum are kept beside the
// buckets.
//
// Bucket semantics are Prometheus's: bucket i holds values v with edges[i-1] < v <= edges[i];
// a last, implicit bucket holds v > edges.back(). Cumulative() gives counts of v <= edges[i]
// (plus the total as the +Inf bucket), which is what JSON outputs and /metrics carry.
#ifndef DATAPLANE_STATS_HISTOGRAM_H_
#define DATAPLANE_STATS_HISTOGRAM_H_

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "absl/status/status.h"

namespace lab::stats {

// Latency, microseconds: log-linear, 32 buckets per doubling from 1 us to 2^26 us (~67 s),
// each edge round(1000 * 2^(k/32)) ns expressed in us, so a quantile read from the buckets is
// within 2.2 % of the exact value (and exact at the recorded min and max).
std::span<const double> LatencyEdgesUs();

class Histogram {
 public:
  // `edges` must be strictly increasing.
  explicit Histogram(std::span<const double> edges);

  void Add(double value);
  // Adds `other`'s counts. FailedPrecondition when the edges differ (nothing changes).
  absl::Status Merge(const Histogram& other);
  // Sets the buckets from per-bucket counts (edges().size() + 1 of them, as bucket_counts()
  // gives) with exact min/max/sum, e.g. a histogram read back from JSON. InvalidArgument
  // (nothing changes) when the length is wrong.
  absl::Status SetCounts(std::span<const uint64_t> counts, double sum, double min, double max);

  // The value below which a fraction `q` in [0, 1] of the values lie, interpolated linearly
  // inside its bucket and clamped to [min(), max()]; q = 0 gives min(), q = 1 max(). NaN when
  // empty.
  double Quantile(double q) const;

  std::span<const double> edges() const { return edges_; }
  // Per-bucket counts, edges().size() + 1 long (the last is the overflow bucket).
  std::span<const uint64_t> bucket_counts() const { return counts_; }
  // Cumulative counts, edges().size() + 1 long; the last equals count().
  std::vector<uint64_t> Cumulative() const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  double mean() const;                 // NaN when empty
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

}  // namespace lab::stats

#endif  // DATAPLANE_STATS_HISTOGRAM_H_

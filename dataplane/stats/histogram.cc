#include "dataplane/stats/histogram.h"

#include <algorithm>
#include <cmath>

namespace lab::stats {

namespace {

std::vector<double> MakeLatencyEdges() {
  constexpr int kPerDoubling = 32;
  constexpr int kDoublings = 26;
  std::vector<double> edges;
  edges.reserve(kPerDoubling * kDoublings + 1);
  for (int k = 0; k <= kPerDoubling * kDoublings; ++k) {
    // Integer nanoseconds, so every build computes the same edges.
    const double ns = std::round(1000.0 * std::exp2(static_cast<double>(k) / kPerDoubling));
    edges.push_back(ns / 1000.0);
  }
  return edges;
}

}  // namespace

std::span<const double> LatencyEdgesUs() {
  static const std::vector<double>* const edges = new std::vector<double>(MakeLatencyEdges());
  return *edges;
}

Histogram::Histogram(std::span<const double> edges)
    : edges_(edges.begin(), edges.end()), counts_(edges.size() + 1, 0) {}

void Histogram::Add(double value) {
  // First edge >= value: the bucket whose upper bound (inclusive) holds it.
  const auto it = std::lower_bound(edges_.begin(), edges_.end(), value);
  ++counts_[static_cast<std::size_t>(it - edges_.begin())];
  ++count_;
  sum_ += value;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

absl::Status Histogram::Merge(const Histogram& other) {
  if (other.edges_ != edges_) {
    return absl::FailedPreconditionError("cannot merge histograms with different bucket edges");
  }
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  return absl::OkStatus();
}

absl::Status Histogram::SetCounts(std::span<const uint64_t> counts, double sum, double min,
                                  double max) {
  if (counts.size() != counts_.size()) {
    return absl::InvalidArgumentError("histogram has " + std::to_string(counts_.size()) +
                                      " buckets, got " + std::to_string(counts.size()));
  }
  counts_.assign(counts.begin(), counts.end());
  count_ = 0;
  for (uint64_t c : counts_) count_ += c;
  sum_ = sum;
  min_ = count_ == 0 ? std::numeric_limits<double>::infinity() : min;
  max_ = count_ == 0 ? -std::numeric_limits<double>::infinity() : max;
  return absl::OkStatus();
}

double Histogram::Quantile(double q) const {
  if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
  q = std::clamp(q, 0.0, 1.0);
  if (q == 0) return min_;
  if (q == 1) return max_;
  // The rank of the wanted value (1-based) and the bucket that holds it.
  const double rank = q * static_cast<double>(count_);
  uint64_t below = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] == 0) continue;
    if (static_cast<double>(below + counts_[i]) >= rank) {
      const double lo = i == 0 ? min_ : std::max(edges_[i - 1], min_);
      const double hi = i == edges_.size() ? max_ : std::min(edges_[i], max_);
      const double fraction = (rank - static_cast<double>(below)) / static_cast<double>(counts_[i]);
      return std::clamp(lo + (hi - lo) * fraction, min_, max_);
    }
    below += counts_[i];
  }
  return max_;
}

double Histogram::mean() const {
  return count_ == 0 ? std::numeric_limits<double>::quiet_NaN()
                     : sum_ / static_cast<double>(count_);
}

std::vector<uint64_t> Histogram::Cumulative() const {
  std::vector<uint64_t> out(counts_.size());
  uint64_t running = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) out[i] = running += counts_[i];
  return out;
}

}  // namespace lab::stats

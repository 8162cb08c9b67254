#include "dataplane/timesync/histogram.h"

#include <algorithm>

namespace lab::timesync {

namespace {

constexpr double kErrorEdges[] = {
    -50000, -20000, -10000, -5000, -2000, -1000, -500, -200, -100,  -50,   -20,  -10, -5,
    -2,     -1,     -0.5,   -0.2,  -0.1,  0,     0.1,  0.2,  0.5,   1,     2,    5,   10,
    20,     50,     100,    200,   500,   1000,  2000, 5000, 10000, 20000, 50000};
constexpr double kRttEdges[] = {1,     2,      5,      10,     20,     50,    100,
                                200,   500,    1000,   2000,   5000,   10000, 20000,
                                50000, 100000, 200000, 500000, 1000000};

}  // namespace

std::span<const double> ErrorEdgesUs() { return kErrorEdges; }
std::span<const double> RttEdgesUs() { return kRttEdges; }

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

std::vector<uint64_t> Histogram::Cumulative() const {
  std::vector<uint64_t> out(counts_.size());
  uint64_t running = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) out[i] = running += counts_[i];
  return out;
}

}  // namespace lab::timesync

#include "dataplane/stats/histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace lab::stats {
namespace {

TEST(LatencyEdgesTest, IncreasingFromOneMicrosecondWithBoundedStep) {
  const auto e = LatencyEdgesUs();
  ASSERT_GT(e.size(), 800u);
  EXPECT_EQ(e.front(), 1.0);
  EXPECT_NEAR(e.back(), std::exp2(26), 1e-3 * std::exp2(26));
  for (std::size_t i = 1; i < e.size(); ++i) {
    ASSERT_GT(e[i], e[i - 1]) << i;
    ASSERT_LE(e[i] / e[i - 1], 1.0 + 0.0221 + 1e-3) << i;  // 2^(1/32) plus rounding
  }
}

// Quantiles read from the buckets stay within the bucket width (2.2 %) of the exact ones.
TEST(HistogramQuantileTest, WithinBucketResolutionOfExactQuantiles) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> latency(std::log(80.0), 0.8);
  Histogram h(LatencyEdgesUs());
  std::vector<double> values;
  for (int i = 0; i < 200000; ++i) {
    const double v = latency(rng);
    values.push_back(v);
    h.Add(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double exact = values[static_cast<std::size_t>(q * values.size()) - 1];
    EXPECT_NEAR(h.Quantile(q), exact, 0.023 * exact) << "q=" << q;
  }
  EXPECT_EQ(h.Quantile(0), values.front());
  EXPECT_EQ(h.Quantile(1), values.back());
}

TEST(HistogramQuantileTest, SingleValueAndEmpty) {
  Histogram h(LatencyEdgesUs());
  EXPECT_TRUE(std::isnan(h.Quantile(0.5)));
  EXPECT_TRUE(std::isnan(h.mean()));
  h.Add(42.5);
  EXPECT_EQ(h.Quantile(0.5), 42.5);  // clamped to the exact min and max
  EXPECT_EQ(h.Quantile(0.999), 42.5);
  h.Add(1e9);  // beyond the last edge: the overflow bucket, reported up to the exact max
  EXPECT_EQ(h.Quantile(1), 1e9);
  EXPECT_GT(h.Quantile(0.99), 42.5);
}

// Merging per-thread histograms gives the same quantiles as one histogram of everything.
TEST(HistogramQuantileTest, MergedEqualsCombined) {
  std::mt19937_64 rng(3);
  std::exponential_distribution<double> fast(1 / 20.0), slow(1 / 900.0);
  Histogram a(LatencyEdgesUs()), b(LatencyEdgesUs()), all(LatencyEdgesUs());
  for (int i = 0; i < 50000; ++i) {
    const double x = fast(rng), y = slow(rng);
    a.Add(x);
    b.Add(y);
    all.Add(x);
    all.Add(y);
  }
  ASSERT_TRUE(a.Merge(b).ok());
  EXPECT_EQ(a.count(), all.count());
  for (double q : {0.5, 0.99, 0.999}) EXPECT_DOUBLE_EQ(a.Quantile(q), all.Quantile(q));
  EXPECT_EQ(a.max(), all.max());
}

TEST(HistogramSetCountsTest, RoundTripsAndRefusesWrongLength) {
  Histogram h(LatencyEdgesUs());
  for (double v : {3.0, 70.0, 70.5, 9000.0}) h.Add(v);
  const std::vector<uint64_t> counts(h.bucket_counts().begin(), h.bucket_counts().end());
  Histogram back(LatencyEdgesUs());
  ASSERT_TRUE(back.SetCounts(counts, h.sum(), h.min(), h.max()).ok());
  EXPECT_EQ(back.count(), 4u);
  EXPECT_DOUBLE_EQ(back.Quantile(0.5), h.Quantile(0.5));
  const std::vector<uint64_t> short_counts(3, 1);
  EXPECT_FALSE(back.SetCounts(short_counts, 0, 0, 0).ok());
  EXPECT_EQ(back.count(), 4u);  // unchanged
}

}  // namespace
}  // namespace lab::stats

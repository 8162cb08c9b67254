#include "dataplane/timesync/histogram.h"

#include <algorithm>

#include "gtest/gtest.h"

namespace lab::timesync {
namespace {

TEST(HistogramTest, EdgesAreStrictlyIncreasingAndErrorEdgesSymmetric) {
  for (auto edges : {ErrorEdgesUs(), RttEdgesUs()}) {
    EXPECT_TRUE(std::adjacent_find(edges.begin(), edges.end(), std::greater_equal<double>()) ==
                edges.end());
  }
  const auto e = ErrorEdgesUs();
  for (std::size_t i = 0; i < e.size(); ++i) EXPECT_EQ(e[i], -e[e.size() - 1 - i]);
}

TEST(HistogramTest, ValueOnAnEdgeFallsInTheBucketItBounds) {
  const double edges[] = {-1, 0, 1};
  Histogram h(edges);
  h.Add(-1);    // bucket 0: v <= -1
  h.Add(-0.5);  // bucket 1: -1 < v <= 0
  h.Add(0);     // bucket 1
  h.Add(1);     // bucket 2
  h.Add(7);     // overflow
  const auto b = h.bucket_counts();
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[0], 1u);
  EXPECT_EQ(b[1], 2u);
  EXPECT_EQ(b[2], 1u);
  EXPECT_EQ(b[3], 1u);
  EXPECT_EQ(h.Cumulative(), (std::vector<uint64_t>{1, 3, 4, 5}));
  EXPECT_EQ(h.min(), -1);
  EXPECT_EQ(h.max(), 7);
  EXPECT_DOUBLE_EQ(h.sum(), 6.5);
}

TEST(HistogramTest, MergeAddsCountsAndKeepsExactExtremes) {
  Histogram a(ErrorEdgesUs()), b(ErrorEdgesUs());
  a.Add(-3);
  a.Add(0.05);
  b.Add(123456);
  b.Add(0.05);
  ASSERT_TRUE(a.Merge(b).ok());
  EXPECT_EQ(a.count(), 4u);
  EXPECT_EQ(a.min(), -3);
  EXPECT_EQ(a.max(), 123456);
  EXPECT_EQ(a.Cumulative().back(), 4u);
}

TEST(HistogramTest, MergeRefusesDifferentEdgesAndChangesNothing) {
  Histogram a(ErrorEdgesUs()), b(RttEdgesUs());
  a.Add(1);
  b.Add(1);
  EXPECT_EQ(a.Merge(b).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.count(), 1u);
}

}  // namespace
}  // namespace lab::timesync

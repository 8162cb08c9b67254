#include "controller/http/downsample.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace lab::controller {
namespace {

std::vector<double> Noise(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> gauss(0, 1);
  std::vector<double> v(n);
  for (double& x : v) x = gauss(rng);
  return v;
}

TEST(DownsampleTest, ASeriesThatFitsIsKeptWhole) {
  const std::vector<double> v = Noise(100, 1);
  const auto kept = DownsampleMinMax(v, 100);
  ASSERT_EQ(kept.size(), 100u);
  for (std::size_t i = 0; i < kept.size(); ++i) EXPECT_EQ(kept[i], i);
  EXPECT_TRUE(DownsampleMinMax({}, 10).empty());
}

TEST(DownsampleTest, NeverMoreThanMaxPointsIncreasingWithFirstAndLast) {
  for (std::size_t n : {101u, 1000u, 4999u, 100'000u}) {
    for (std::size_t max_points : {4u, 5u, 100u, 101u, 5000u}) {
      const std::vector<double> v = Noise(n, static_cast<unsigned>(n + max_points));
      const auto kept = DownsampleMinMax(v, max_points);
      if (n <= max_points) continue;
      SCOPED_TRACE(testing::Message() << "n=" << n << " max=" << max_points);
      EXPECT_LE(kept.size(), max_points);
      EXPECT_GE(kept.size(), max_points - 3);  // the budget is used, not wasted
      EXPECT_EQ(kept.front(), 0u);
      EXPECT_EQ(kept.back(), n - 1);
      EXPECT_TRUE(std::is_sorted(kept.begin(), kept.end()));
      EXPECT_EQ(std::adjacent_find(kept.begin(), kept.end()), kept.end());  // no repeats
    }
  }
}

TEST(DownsampleTest, EveryBucketsExtremesSurviveSoASpikeShows) {
  std::vector<double> v = Noise(100'000, 7);
  v[31'337] = 500;   // one spike up
  v[77'777] = -400;  // and one down
  const auto kept = DownsampleMinMax(v, 1000);
  EXPECT_NE(std::find(kept.begin(), kept.end(), 31'337u), kept.end());
  EXPECT_NE(std::find(kept.begin(), kept.end(), 77'777u), kept.end());
  // The envelope is the series': the kept min and max are the global ones.
  double lo = 1e9, hi = -1e9;
  for (std::size_t i : kept) {
    lo = std::min(lo, v[i]);
    hi = std::max(hi, v[i]);
  }
  EXPECT_EQ(lo, -400);
  EXPECT_EQ(hi, 500);
}

TEST(DownsampleTest, MissingValuesAreNotChosenUnlessTheWholeBucketIsMissing) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> v(1000, nan);
  for (std::size_t i = 0; i < 500; ++i) v[i] = static_cast<double>(i % 7);
  const auto kept = DownsampleMinMax(v, 100);
  EXPECT_LE(kept.size(), 100u);
  std::size_t missing_kept = 0;
  for (std::size_t i : kept) missing_kept += std::isnan(v[i]);
  // The second half is missing: its 24 or 25 buckets keep one (their first) index each, plus
  // the last index.
  EXPECT_GE(missing_kept, 24u);
  EXPECT_LE(missing_kept, 26u);
  for (std::size_t i : kept) {
    if (i < 500) {
      EXPECT_FALSE(std::isnan(v[i]));
    }
  }
}

}  // namespace
}  // namespace lab::controller

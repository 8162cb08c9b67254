#include "dataplane/timesync/filter.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace lab::timesync {
namespace {

std::unique_ptr<ClockFilter> Make(Scheme scheme) {
  SchemeParams p;
  p.scheme = scheme;
  return *MakeFilter(p);
}

class FilterContractTest : public ::testing::TestWithParam<Scheme> {};

TEST_P(FilterContractTest, HasNoEstimateBeforeTheFirstSample) {
  EXPECT_FALSE(Make(GetParam())->Estimate(0).has_value());
}

TEST_P(FilterContractTest, StartsAtTheFirstSample) {
  auto f = Make(GetParam());
  ASSERT_TRUE(*f->Accumulate({1'000, -25'000'000, 20'000}));
  EXPECT_DOUBLE_EQ(*f->Estimate(1'000), -25'000'000);
}

TEST_P(FilterContractTest, RejectsReorderedAndDuplicateSamplesWithoutChangingState) {
  auto f = Make(GetParam());
  ASSERT_TRUE(f->Accumulate({2'000'000, 100, 20'000}).ok());
  ASSERT_TRUE(f->Accumulate({3'000'000, 110, 20'000}).ok());
  const double before = *f->Estimate(3'000'000);
  for (int64_t t : {3'000'000, 2'500'000}) {
    const auto result = f->Accumulate({t, 1e6, 20'000});
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(result.status().message().find("not newer"), std::string::npos);
  }
  EXPECT_DOUBLE_EQ(*f->Estimate(3'000'000), before);
}

TEST_P(FilterContractTest, RejectsNonFiniteSamples) {
  auto f = Make(GetParam());
  EXPECT_FALSE(f->Accumulate({1, std::nan(""), 1}).ok());
  EXPECT_FALSE(f->Accumulate({2, 1, std::numeric_limits<double>::infinity()}).ok());
  EXPECT_FALSE(f->Estimate(2).has_value());
}

INSTANTIATE_TEST_SUITE_P(Schemes, FilterContractTest, ::testing::ValuesIn(kAllSchemes),
                         [](const auto& info) { return std::string(SchemeName(info.param)); });

TEST(FilterTest, MakeFilterRejectsInvalidParameters) {
  SchemeParams p;
  p.scheme = Scheme::kEwma;
  p.ewma.alpha = 0;
  EXPECT_EQ(MakeFilter(p).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FilterTest, RawFollowsEverySampleIncludingSpikes) {
  auto f = Make(Scheme::kRaw);
  for (int i = 1; i <= 10; ++i) ASSERT_TRUE(*f->Accumulate({i * 1'000'000, 0, 10'000}));
  EXPECT_TRUE(*f->Accumulate({11'000'000, 600'000, 1'210'000}));
  EXPECT_DOUBLE_EQ(*f->Estimate(11'000'000), 600'000);
}

TEST(FilterTest, SmoothingSchemesSkipADelaySpike) {
  for (Scheme scheme : {Scheme::kEwma, Scheme::kKalman, Scheme::kPid}) {
    auto f = Make(scheme);
    for (int i = 1; i <= 10; ++i) ASSERT_TRUE(*f->Accumulate({i * 1'000'000, 0, 10'000}));
    EXPECT_FALSE(*f->Accumulate({11'000'000, 600'000, 1'210'000})) << SchemeName(scheme);
    EXPECT_NEAR(*f->Estimate(11'000'000), 0, 1) << SchemeName(scheme);
  }
}

TEST(FilterTest, KalmanExtrapolatesWithItsDriftEstimate) {
  auto f = Make(Scheme::kKalman);
  // Offset falling by 80 us per second (a client 80 ppm fast), sampled every 10 ms.
  for (int i = 0; i < 500; ++i) {
    const int64_t t = i * 10'000'000LL;
    ASSERT_TRUE(f->Accumulate({t, -80e-6 * static_cast<double>(t), 20'000}).ok());
  }
  const int64_t last = 499 * 10'000'000LL;
  const int64_t later = last + 1'000'000'000;  // one second after the last sample
  EXPECT_NEAR(*f->Estimate(later), -80e-6 * static_cast<double>(later), 100);
}

// The slope of a filter's extrapolation: its drift estimate, ns per second.
double DriftNsPerS(const ClockFilter& f, int64_t at_ns) {
  return *f.Estimate(at_ns + 1'000'000'000) - *f.Estimate(at_ns);
}

// Feeds `f` a noiseless client 80 ppm fast, sampled every 10 ms, for `n` samples from t0.
int64_t FeedDrift(ClockFilter& f, int n, int64_t t0 = 0) {
  int64_t t = t0;
  for (int i = 0; i < n; ++i, t += 10'000'000) {
    EXPECT_TRUE(f.Accumulate({t, -80e-6 * static_cast<double>(t), 20'000}).ok());
  }
  return t - 10'000'000;
}

TEST(FilterTest, PidDriftIsNotThrownByAnEarlySample) {
  auto f = Make(Scheme::kPid);
  const int64_t last = FeedDrift(*f, 400);
  const double before = DriftNsPerS(*f, last);
  EXPECT_NEAR(before, -80'000, 100);  // tracked the 80 ppm
  // A sample only 100 us after the previous one, 10 us off (a client that stalled, then
  // sent at once). With e/dt the drift would jump by ki * 10 us / 100 us = 5000 ppm; taken
  // over the typical 10 ms spacing it moves by ki * 10 us / 10 ms = 50 ppm at most.
  const int64_t early = last + 100'000;
  ASSERT_TRUE(*f->Accumulate({early, -80e-6 * static_cast<double>(early) + 10'000, 20'000}));
  EXPECT_LT(std::abs(DriftNsPerS(*f, early) - before), 60'000);
}

TEST(FilterTest, PidKeepsItsGainAfterAPause) {
  auto f = Make(Scheme::kPid);
  const int64_t last = FeedDrift(*f, 400);
  // Ten seconds of silence, then samples resume at 10 ms: the pause must not be taken for
  // the normal spacing (which would cut the drift gain a hundredfold).
  const int64_t resume = last + 10'000'000'000;
  FeedDrift(*f, 1, resume);
  const double before = DriftNsPerS(*f, resume);
  const int64_t next = resume + 10'000'000;
  ASSERT_TRUE(*f->Accumulate({next, -80e-6 * static_cast<double>(next) + 10'000, 20'000}));
  // ki * 10 us / 10 ms = 50 ppm, not 0.5 ppm.
  EXPECT_NEAR(DriftNsPerS(*f, next) - before, 50'000, 10'000);
}

TEST(DelayGateTest, AcceptsTheFirstSampleAndNormalJitter) {
  DelayGate gate;
  EXPECT_TRUE(gate.Accept(50'000));
  EXPECT_TRUE(gate.Accept(60'000));
  EXPECT_TRUE(gate.Accept(45'000));
  EXPECT_DOUBLE_EQ(gate.min_delay_ns(), 45'000);
}

TEST(DelayGateTest, RejectsSpikeThenFollowsALastingChange) {
  DelayGate gate;
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(gate.Accept(10'000 + (i % 3) * 1'000));
  EXPECT_FALSE(gate.Accept(500'000));
  // A lasting move to a slower path: samples are rejected at most kMaxConsecutive in a row
  // (counting the spike), and once the window has moved, all of them are accepted.
  int run = 1, longest = 1;
  for (int i = 0; i < DelayGate::kWindow; ++i) {
    run = gate.Accept(400'000) ? 0 : run + 1;
    longest = std::max(longest, run);
  }
  EXPECT_EQ(longest, DelayGate::kMaxConsecutive);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(gate.Accept(400'000 + i * 1'000));
}

TEST(DelayGateTest, WidensWithTheSpreadOfDelays) {
  DelayGate gate;
  // Delays spread over 100 us: a sample 150 us above the minimum is ordinary here.
  for (int i = 0; i < 32; ++i) gate.Accept(50'000 + (i % 11) * 10'000);
  EXPECT_TRUE(gate.Accept(200'000));
  EXPECT_FALSE(gate.Accept(1'000'000));
}

}  // namespace
}  // namespace lab::timesync

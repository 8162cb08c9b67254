#include "dataplane/timesync/scheme.h"

#include <cmath>

#include "gtest/gtest.h"

namespace lab::timesync {
namespace {

TEST(SchemeTest, NamesAndIdcodesRoundTrip) {
  for (Scheme s : kAllSchemes) {
    EXPECT_EQ(*ParseScheme(SchemeName(s)), s);
    EXPECT_TRUE(IsKnownIdcode(static_cast<uint16_t>(s)));
  }
  EXPECT_EQ(static_cast<uint16_t>(Scheme::kRaw), 0x0001);
  EXPECT_EQ(static_cast<uint16_t>(Scheme::kPid), 0x0004);
  EXPECT_EQ(*ParseScheme("KALMAN"), Scheme::kKalman);
  EXPECT_FALSE(IsKnownIdcode(0));
  EXPECT_FALSE(IsKnownIdcode(5));
}

TEST(SchemeTest, UnknownNameListsTheValidOnes) {
  const auto s = ParseScheme("ntp");
  ASSERT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("raw, ewma, kalman, pid"), std::string::npos);
}

TEST(SchemeTest, DefaultsAreValid) {
  for (Scheme s : kAllSchemes) {
    SchemeParams p;
    p.scheme = s;
    EXPECT_TRUE(p.Validate().ok()) << SchemeName(s);
  }
}

TEST(SchemeTest, RejectsEwmaAlphaOutsideZeroOne) {
  SchemeParams p;
  p.scheme = Scheme::kEwma;
  for (double alpha : {0.0, -0.1, 1.01, std::nan("")}) {
    p.ewma.alpha = alpha;
    const absl::Status s = p.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << alpha;
    EXPECT_NE(s.message().find("alpha"), std::string::npos);
  }
  p.ewma.alpha = 1.0;
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SchemeTest, RejectsBadKalmanNoise) {
  SchemeParams p;
  p.scheme = Scheme::kKalman;
  p.kalman.measurement_noise_us = 0;
  EXPECT_NE(p.Validate().message().find("measurement noise"), std::string::npos);
  p.kalman = {};
  p.kalman.drift_noise_ppb = -1;
  EXPECT_NE(p.Validate().message().find("drift noise"), std::string::npos);
  p.kalman = {};
  p.kalman.offset_noise_ns = INFINITY;
  EXPECT_NE(p.Validate().message().find("offset noise"), std::string::npos);
  // Values whose squares would overflow the filter's covariance to inf/NaN.
  p.kalman = {};
  p.kalman.measurement_noise_us = 1e200;
  EXPECT_NE(p.Validate().message().find("measurement noise"), std::string::npos);
  p.kalman = {};
  p.kalman.drift_noise_ppb = 1e160;
  EXPECT_NE(p.Validate().message().find("drift noise"), std::string::npos);
  p.kalman = {};
  p.kalman.measurement_noise_us = std::nan("");
  EXPECT_FALSE(p.Validate().ok());
}

TEST(SchemeTest, RejectsUnstableOrNegativePidGains) {
  SchemeParams p;
  p.scheme = Scheme::kPid;
  p.pid = {2.5, 0.05, 0};  // |1 - kp| > 1
  EXPECT_NE(p.Validate().message().find("unstable"), std::string::npos);
  p.pid = {0.3, 4.0, 0};  // integral gain far too strong
  EXPECT_NE(p.Validate().message().find("unstable"), std::string::npos);
  p.pid = {0.3, 0.05, 1.5};
  EXPECT_NE(p.Validate().message().find("unstable"), std::string::npos);
  p.pid = {0.3, -0.1, 0};
  EXPECT_NE(p.Validate().message().find(">= 0"), std::string::npos);
  p.pid = {0.5, 0.0, 0};  // a P loop is bounded
  EXPECT_TRUE(p.Validate().ok());
  p.pid = {0.7, 0.2, 0.1};
  EXPECT_TRUE(p.Validate().ok());
}

TEST(SchemeTest, WireSlotsRoundTrip) {
  SchemeParams p;
  p.scheme = Scheme::kPid;
  p.pid = {0.4, 0.07, 0.01};
  const SchemeParams q = SchemeParams::FromWire(Scheme::kPid, p.ToWire());
  EXPECT_EQ(q.pid.kp, 0.4);
  EXPECT_EQ(q.pid.ki, 0.07);
  EXPECT_EQ(q.pid.kd, 0.01);
}

}  // namespace
}  // namespace lab::timesync

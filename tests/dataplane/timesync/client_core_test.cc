#include "dataplane/timesync/client_core.h"

#include <array>

#include "gtest/gtest.h"

namespace lab::timesync {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000'000'000;

ClientCoreOptions Options() {
  ClientCoreOptions o;
  o.params.scheme = Scheme::kEwma;
  o.client_id = 3;
  o.offset_ns = 1'000'000;
  o.drift_ppm = 0;
  return o;
}

// The reply a server would send to `probe_bytes` with the given correction.
std::array<uint8_t, kReplySize> ReplyTo(absl::Span<const uint8_t> probe_bytes, int64_t correction,
                                        ReplyStatus status = ReplyStatus::kOk) {
  Probe p;
  EXPECT_EQ(DecodeProbe(probe_bytes, &p), WireError::kOk);
  Reply r;
  r.scheme = p.scheme;
  r.client_id = p.client_id;
  r.seq = p.seq;
  r.t1_ns = p.t1_ns;
  r.t2_ns = p.t1_ns;
  r.t3_ns = p.t1_ns;
  r.correction_ns = correction;
  r.status = status;
  r.flags = kReplyEstimateValid | kReplyKernelRxTimestamp;
  std::array<uint8_t, kReplySize> out{};
  EncodeReply(r, absl::MakeSpan(out));
  return out;
}

TEST(ClientCoreTest, ProbesCarryTheSchemeParametersAndThePreviousExchange) {
  ClientCore c(Options(), kT0);
  std::array<uint8_t, kProbeSize> b1{}, b2{};
  c.MakeProbe(kT0, absl::MakeSpan(b1));
  Probe p1;
  ASSERT_EQ(DecodeProbe(b1, &p1), WireError::kOk);
  EXPECT_EQ(p1.seq, 1u);
  EXPECT_EQ(p1.t1_ns, kT0 + 1'000'000);  // the virtual clock, offset injected
  EXPECT_EQ(p1.params[0], 0.1);
  EXPECT_FALSE(p1.flags & kProbeHasPrevious);
  ASSERT_EQ(c.HandleDatagram(ReplyTo(b1, -1'000'000), kT0 + 50'000, net::TimestampSource::kKernel),
            WireError::kOk);
  c.MakeProbe(kT0 + 10'000'000, absl::MakeSpan(b2));
  Probe p2;
  ASSERT_EQ(DecodeProbe(b2, &p2), WireError::kOk);
  EXPECT_TRUE(p2.flags & kProbeHasPrevious);
  EXPECT_EQ(p2.prev_seq, 1u);
  EXPECT_EQ(p2.prev_t4_ns, kT0 + 50'000 + 1'000'000);  // read before the correction
  EXPECT_EQ(p2.prev_correction_ns, 0);
  EXPECT_EQ(p2.correction_ns, -1'000'000);
}

TEST(ClientCoreTest, AppliesTheCorrectionAndRecordsTheExactError) {
  ClientCore c(Options(), kT0);
  std::array<uint8_t, kProbeSize> b{};
  c.MakeProbe(kT0, absl::MakeSpan(b));
  c.HandleDatagram(ReplyTo(b, -999'000), kT0 + 40'000, net::TimestampSource::kKernel);
  ASSERT_EQ(c.records().size(), 1u);
  const PacketRecord& r = c.records()[0];
  EXPECT_TRUE(r.applied);
  EXPECT_EQ(r.rtt_ns, 40'000);
  EXPECT_DOUBLE_EQ(r.error_ns, 1'000);  // 1 ms injected, 0.999 ms corrected
  EXPECT_DOUBLE_EQ(r.true_offset_ns, -1'000'000);
  EXPECT_TRUE(r.client_kernel_timestamp);
  EXPECT_TRUE(r.server_kernel_timestamp);
}

TEST(ClientCoreTest, IgnoresDuplicatesForeignAndMalformedReplies) {
  ClientCore c(Options(), kT0);
  std::array<uint8_t, kProbeSize> b{};
  c.MakeProbe(kT0, absl::MakeSpan(b));
  const auto reply = ReplyTo(b, 5);
  EXPECT_EQ(c.HandleDatagram(reply, kT0 + 1, net::TimestampSource::kUser), WireError::kOk);
  EXPECT_EQ(c.HandleDatagram(reply, kT0 + 2, net::TimestampSource::kUser), WireError::kOk);
  EXPECT_EQ(c.counters().duplicates, 1u);
  auto other = reply;
  other[15] = 99;  // another client id
  EXPECT_EQ(c.HandleDatagram(other, kT0 + 3, net::TimestampSource::kUser), WireError::kBadField);
  auto forged = ReplyTo(b, 5);
  forged[31] ^= 1;  // origin timestamp does not echo our t1
  EXPECT_EQ(c.HandleDatagram(forged, kT0 + 4, net::TimestampSource::kUser), WireError::kBadField);
  const uint8_t junk[] = {1, 2, 3};
  EXPECT_EQ(c.HandleDatagram(junk, kT0 + 5, net::TimestampSource::kUser), WireError::kTooShort);
  EXPECT_EQ(c.counters().received, 1u);
  EXPECT_EQ(c.counters().foreign, 2u);
  EXPECT_EQ(c.counters().malformed, 1u);
  EXPECT_EQ(c.clock().correction_ns(), 5);  // applied once
}

TEST(ClientCoreTest, LateReplyIsRecordedButNotApplied) {
  ClientCore c(Options(), kT0);
  std::array<uint8_t, kProbeSize> b1{}, b2{};
  c.MakeProbe(kT0, absl::MakeSpan(b1));
  c.MakeProbe(kT0 + 1'000'000, absl::MakeSpan(b2));  // sent before the first reply came
  c.HandleDatagram(ReplyTo(b1, 777), kT0 + 1'100'000, net::TimestampSource::kUser);
  EXPECT_EQ(c.counters().late, 1u);
  EXPECT_FALSE(c.records()[0].applied);
  EXPECT_EQ(c.clock().correction_ns(), 0);
  c.HandleDatagram(ReplyTo(b2, 888), kT0 + 1'200'000, net::TimestampSource::kUser);
  EXPECT_EQ(c.clock().correction_ns(), 888);
  EXPECT_TRUE(c.AllAnswered());
}

TEST(ClientCoreTest, AcceptsTheJsonReplyForm) {
  ClientCoreOptions o = Options();
  o.json_feedback = true;
  ClientCore c(o, kT0);
  std::array<uint8_t, kProbeSize> b{};
  c.MakeProbe(kT0, absl::MakeSpan(b));
  Probe p;
  ASSERT_EQ(DecodeProbe(b, &p), WireError::kOk);
  EXPECT_TRUE(p.flags & kProbeJsonReply);
  const std::string json = R"({"scheme":"ewma","correction_us":-1000.000,"seq":1,"status":"ok"})";
  EXPECT_EQ(c.HandleDatagram({reinterpret_cast<const uint8_t*>(json.data()), json.size()},
                             kT0 + 30'000, net::TimestampSource::kKernel),
            WireError::kOk);
  EXPECT_EQ(c.clock().correction_ns(), -1'000'000);
  EXPECT_FALSE(c.records()[0].measured_offset_ns.has_value());  // no t2/t3 in JSON
}

}  // namespace
}  // namespace lab::timesync

#include "dataplane/traffic/udp_flow.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace lab::traffic {
namespace {

TEST(UdpHeaderTest, EncodesTheDocumentedBytes) {
  std::vector<uint8_t> out(32, 0xAA);
  ASSERT_TRUE(EncodeUdpDatagram({.flow_id = 0x01020304, .seq = 0x1112131415161718, .send_ns = -2},
                                absl::MakeSpan(out))
                  .ok());
  const std::vector<uint8_t> golden = {
      'L',  'B',  'U',  'D',  1,    0,    0,    0,     // magic, version, flags, reserved
      0x01, 0x02, 0x03, 0x04,                          // flow id
      0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,  // sequence
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,  // send time, -2 ns
      0,    0,    0,    0};                            // padding
  EXPECT_EQ(out, golden);
}

TEST(UdpHeaderTest, RoundTripsAtEveryLengthBound) {
  for (std::size_t length : {kUdpHeaderSize, std::size_t{64}, kUdpMaxDatagramSize}) {
    std::vector<uint8_t> out(length);
    const UdpHeader in{.flow_id = 7, .seq = 123456789012, .send_ns = 1'700'000'000'123'456'789};
    ASSERT_TRUE(EncodeUdpDatagram(in, absl::MakeSpan(out)).ok());
    UdpHeader decoded;
    ASSERT_EQ(DecodeUdpHeader(out, &decoded), UdpDecodeError::kOk);
    EXPECT_EQ(decoded.flow_id, in.flow_id);
    EXPECT_EQ(decoded.seq, in.seq);
    EXPECT_EQ(decoded.send_ns, in.send_ns);
  }
}

TEST(UdpHeaderTest, RefusesToEncodeOutsideTheLengthBounds) {
  std::vector<uint8_t> small(kUdpHeaderSize - 1), big(kUdpMaxDatagramSize + 1);
  EXPECT_TRUE(absl::IsInvalidArgument(EncodeUdpDatagram({}, absl::MakeSpan(small))));
  EXPECT_TRUE(absl::IsInvalidArgument(EncodeUdpDatagram({}, absl::MakeSpan(big))));
}

TEST(UdpHeaderTest, RejectsEachMalformedFormWithItsReason) {
  std::vector<uint8_t> good(64);
  ASSERT_TRUE(EncodeUdpDatagram({.flow_id = 1, .seq = 2, .send_ns = 3}, absl::MakeSpan(good)).ok());
  const UdpHeader untouched{.flow_id = 9, .seq = 9, .send_ns = 9};
  auto decode = [&](const std::vector<uint8_t>& bytes) {
    UdpHeader h = untouched;
    const UdpDecodeError e = DecodeUdpHeader(bytes, &h);
    if (e != UdpDecodeError::kOk) {
      EXPECT_EQ(h.seq, untouched.seq) << "header changed on error";
    }
    return e;
  };
  EXPECT_EQ(decode(std::vector<uint8_t>(good.begin(), good.begin() + 27)),
            UdpDecodeError::kTooShort);
  EXPECT_EQ(decode({}), UdpDecodeError::kTooShort);
  auto bad_magic = good;
  bad_magic[3] = 'X';
  EXPECT_EQ(decode(bad_magic), UdpDecodeError::kBadMagic);
  auto bad_version = good;
  bad_version[4] = 2;
  EXPECT_EQ(decode(bad_version), UdpDecodeError::kBadVersion);
  auto reserved = good;
  reserved[7] = 1;
  EXPECT_EQ(decode(reserved), UdpDecodeError::kReservedNotZero);
  // Flags are ignored on receipt (reserved for later versions' extensions).
  auto flags = good;
  flags[5] = 0x80;
  EXPECT_EQ(decode(flags), UdpDecodeError::kOk);
  EXPECT_EQ(UdpDecodeErrorName(UdpDecodeError::kReservedNotZero), "reserved_not_zero");
  EXPECT_EQ(UdpDecodeErrorName(UdpDecodeError::kTooShort), "too_short");
}

TEST(SequenceTrackerTest, CountsLossReorderingAndDuplicates) {
  SequenceTracker t;
  using A = SequenceTracker::Arrival;
  EXPECT_EQ(t.Add(0), A::kInOrder);
  EXPECT_EQ(t.Add(1), A::kInOrder);
  EXPECT_EQ(t.Add(3), A::kInOrder);
  EXPECT_EQ(t.Add(2), A::kOutOfOrder);  // arrived after 3
  EXPECT_EQ(t.Add(2), A::kDuplicate);
  EXPECT_EQ(t.Add(3), A::kDuplicate);
  EXPECT_EQ(t.Add(6), A::kInOrder);  // 4 and 5 missing
  EXPECT_EQ(t.received(), 7u);
  EXPECT_EQ(t.unique(), 5u);
  EXPECT_EQ(t.duplicates(), 2u);
  EXPECT_EQ(t.out_of_order(), 1u);
  EXPECT_EQ(t.highest(), 6u);
  EXPECT_EQ(t.Lost(8), 3u);  // 4, 5, 7
  EXPECT_EQ(t.Lost(3), 0u);  // never negative
}

TEST(SequenceTrackerTest, FirstDatagramNeedNotBeSequenceZero) {
  SequenceTracker t;
  EXPECT_EQ(t.Add(100), SequenceTracker::Arrival::kInOrder);
  EXPECT_EQ(t.Add(100), SequenceTracker::Arrival::kDuplicate);
  EXPECT_EQ(t.Add(5), SequenceTracker::Arrival::kOutOfOrder);
}

TEST(SequenceTrackerTest, DetectsDuplicatesAtTheWindowEdgeAndNotBeyond) {
  constexpr uint64_t W = SequenceTracker::kWindow;
  SequenceTracker t;
  t.Add(0);
  t.Add(1);
  t.Add(W);  // window is now (0, W]: 1 still inside, 0 just left it
  EXPECT_EQ(t.Add(1), SequenceTracker::Arrival::kDuplicate);
  // 0 is beyond the window: cannot be checked, so counted as a (late) unique datagram.
  EXPECT_EQ(t.Add(0), SequenceTracker::Arrival::kOutOfOrder);
  EXPECT_EQ(t.beyond_window(), 1u);
  EXPECT_EQ(t.duplicates(), 1u);
  // A slot reused by the window's slide is clear: W + 1 shares 1's slot.
  EXPECT_EQ(t.Add(W + 1), SequenceTracker::Arrival::kInOrder);
  EXPECT_EQ(t.Add(W + 1), SequenceTracker::Arrival::kDuplicate);
  // A jump beyond a whole window clears everything.
  EXPECT_EQ(t.Add(10 * W), SequenceTracker::Arrival::kInOrder);
  EXPECT_EQ(t.Add(10 * W - 1), SequenceTracker::Arrival::kOutOfOrder);
  EXPECT_EQ(t.Add(9 * W + 1), SequenceTracker::Arrival::kOutOfOrder);  // edge, inside
  EXPECT_EQ(t.Add(9 * W + 1), SequenceTracker::Arrival::kDuplicate);
}

TEST(JitterEstimatorTest, FollowsRfc3550ByHand) {
  JitterEstimator j;
  // Transit times (receive - send) of 10, 14, 11, 20 ms; the clocks' offset (5 s) cancels.
  const int64_t offset = 5'000'000'000;
  const int64_t ms = 1'000'000;
  j.Add(0, offset + 10 * ms);
  EXPECT_EQ(j.jitter_ns(), 0);
  j.Add(20 * ms, offset + 34 * ms);  // D = 4 ms: J = 4/16 = 0.25 ms
  EXPECT_DOUBLE_EQ(j.jitter_ns(), 0.25 * ms);
  j.Add(40 * ms, offset + 51 * ms);  // |D| = 3 ms: J = 0.25 + (3 - 0.25)/16 = 0.421875 ms
  EXPECT_DOUBLE_EQ(j.jitter_ns(), 0.421875 * ms);
  j.Add(60 * ms, offset + 80 * ms);  // D = 9 ms: J = 0.421875 + (9 - 0.421875)/16
  EXPECT_DOUBLE_EQ(j.jitter_ns(), 0.9580078125 * ms);
  EXPECT_EQ(j.samples(), 4u);
}

TEST(JitterEstimatorTest, ConstantTransitHasNoJitter) {
  JitterEstimator j;
  for (int64_t i = 0; i < 100; ++i) j.Add(i * 1000, i * 1000 + 777);
  EXPECT_EQ(j.jitter_ns(), 0);
}

TEST(PacerTest, RefusesBadParameters) {
  EXPECT_FALSE(Pacer::Create(0, 1, 0).ok());
  EXPECT_FALSE(Pacer::Create(-1, 1, 0).ok());
  EXPECT_FALSE(Pacer::Create(std::numeric_limits<double>::infinity(), 1, 0).ok());
  EXPECT_FALSE(Pacer::Create(std::nan(""), 1, 0).ok());
  EXPECT_FALSE(Pacer::Create(10, 0, 0).ok());
}

TEST(PacerTest, HandsOutExactlyTheRateWhenPolledOften) {
  const int64_t start = 1'000'000'000;
  auto pacer = Pacer::Create(1000, 64, start);  // one slot per ms
  ASSERT_TRUE(pacer.ok());
  uint64_t sent = 0;
  for (int64_t t = start; t < start + 1'000'000'000; t += 100'000) sent += pacer->Due(t);
  EXPECT_EQ(sent, 1000u);  // slots 0..999 are due within [start, start + 1 s)
  EXPECT_EQ(pacer->skipped_slots(), 0u);
  EXPECT_EQ(pacer->NextDueNs(), start + 1'000'000'000);
}

TEST(PacerTest, NothingIsDueBeforeTheNextSlot) {
  auto pacer = Pacer::Create(3, 8, 0);  // slots at 0, 333333333, 666666667, 1000000000
  ASSERT_TRUE(pacer.ok());
  EXPECT_EQ(pacer->Due(-1), 0u);
  EXPECT_EQ(pacer->Due(0), 1u);
  EXPECT_EQ(pacer->Due(0), 0u);
  EXPECT_EQ(pacer->NextDueNs(), 333'333'333);
  EXPECT_EQ(pacer->Due(333'333'332), 0u);
  EXPECT_EQ(pacer->Due(333'333'333), 1u);
  EXPECT_EQ(pacer->Due(999'999'999), 1u);
  EXPECT_EQ(pacer->Due(1'000'000'000), 1u);
}

TEST(PacerTest, ABackloggedSchedulePaysOutAtMostTheBurst) {
  auto pacer = Pacer::Create(1000, 10, 0);
  ASSERT_TRUE(pacer.ok());
  // 8 slots (0..7 ms) are due at 7 ms: within the burst, all of them.
  EXPECT_EQ(pacer->Due(7'000'000), 8u);
  EXPECT_EQ(pacer->skipped_slots(), 0u);
  // 10 more (8..17 ms) at 17 ms: exactly the burst.
  EXPECT_EQ(pacer->Due(17'000'000), 10u);
  EXPECT_EQ(pacer->skipped_slots(), 0u);
}

TEST(PacerTest, LateSenderSkipsMissedSlotsWithoutACatchUpBurst) {
  auto pacer = Pacer::Create(1000, 10, 0);
  ASSERT_TRUE(pacer.ok());
  EXPECT_EQ(pacer->Due(0), 1u);
  // Stalled for 100 ms: 100 slots (1..100 ms) are due, only the burst is sent.
  EXPECT_EQ(pacer->Due(100'000'000), 10u);
  EXPECT_EQ(pacer->skipped_slots(), 90u);
  // The schedule moved on: nothing more is owed until the next slot.
  EXPECT_EQ(pacer->Due(100'000'000), 0u);
  EXPECT_EQ(pacer->NextDueNs(), 101'000'000);
  EXPECT_EQ(pacer->Due(101'000'000), 1u);
  EXPECT_EQ(pacer->slots_taken(), 12u);
  EXPECT_EQ(pacer->skipped_slots(), 90u);
}

}  // namespace
}  // namespace lab::traffic

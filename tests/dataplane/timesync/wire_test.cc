#include "dataplane/timesync/wire.h"

#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "dataplane/timesync/exchange.h"
#include "gtest/gtest.h"

namespace lab::timesync {
namespace {

Probe SampleProbe() {
  Probe p;
  p.scheme = Scheme::kKalman;
  p.flags = kProbeHasPrevious | kProbeHasParams;
  p.client_id = 0xDEADBEEF;
  p.seq = 42;
  p.t1_ns = 1'764'000'000'123'456'789;
  p.prev_seq = 41;
  p.prev_t4_ns = -5;  // negative values survive the trip
  p.prev_correction_ns = -25'000'000;
  p.correction_ns = 7;
  p.params = {2.5, 10, 0.125};
  return p;
}

std::vector<uint8_t> Encoded(const Probe& p) {
  std::vector<uint8_t> b(kProbeSize);
  EncodeProbe(p, absl::MakeSpan(b));
  return b;
}

TEST(WireTest, ProbeRoundTrips) {
  const Probe in = SampleProbe();
  Probe out;
  ASSERT_EQ(DecodeProbe(Encoded(in), &out), WireError::kOk);
  EXPECT_EQ(out.scheme, in.scheme);
  EXPECT_EQ(out.flags, in.flags);
  EXPECT_EQ(out.client_id, in.client_id);
  EXPECT_EQ(out.seq, in.seq);
  EXPECT_EQ(out.t1_ns, in.t1_ns);
  EXPECT_EQ(out.prev_seq, in.prev_seq);
  EXPECT_EQ(out.prev_t4_ns, in.prev_t4_ns);
  EXPECT_EQ(out.prev_correction_ns, in.prev_correction_ns);
  EXPECT_EQ(out.correction_ns, in.correction_ns);
  EXPECT_EQ(out.params, in.params);
}

TEST(WireTest, ProbeIsBigEndianWithTheDocumentedHeader) {
  const std::vector<uint8_t> b = Encoded(SampleProbe());
  EXPECT_EQ(std::string(b.begin(), b.begin() + 4), "LBTS");
  EXPECT_EQ(b[4], 1);  // version
  EXPECT_EQ(b[5], 1);  // probe
  EXPECT_EQ(b[6], 0x00);
  EXPECT_EQ(b[7], 0x03);  // KALMAN IDCODE
  EXPECT_EQ(b[23], 42);   // low byte of the sequence
}

// Hex of `bytes`, for comparing against the documented layout.
std::string Hex(absl::Span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

// Every field holds a distinct value, so a field written at the wrong offset, in the wrong
// byte order or swapped with another shows up. The layout is the table in wire.h and
// docs/timesync-protocol.md.
TEST(WireTest, ProbeMatchesTheDocumentedLayoutByteForByte) {
  Probe p;
  p.scheme = Scheme::kPid;
  p.flags = kProbeJsonReply | kProbeHasPrevious | kProbeHasParams;
  p.client_id = 0x11223344;
  p.seq = 0x0102030405060708;
  p.t1_ns = 0x1112131415161718;
  p.prev_seq = 0x0102030405060700;
  p.prev_t4_ns = 0x2122232425262728;
  p.prev_correction_ns = 0x3132333435363738;
  p.correction_ns = 0x4142434445464748;
  p.params = {1.0, 2.0, 0.5};
  const std::string expected =
      "4c425453"
      "01"
      "01"
      "0004"
      "0007"
      "0000"
      "11223344"          // header
      "0102030405060708"  // sequence
      "1112131415161718"  // t1
      "0102030405060700"  // previous sequence
      "2122232425262728"  // previous t4
      "3132333435363738"  // correction then
      "4142434445464748"  // correction now
      "3ff0000000000000"
      "4000000000000000"
      "3fe0000000000000"   // parameters
      "0000000000000000";  // reserved
  EXPECT_EQ(Hex(Encoded(p)), expected);
  Probe back;
  ASSERT_EQ(DecodeProbe(Encoded(p), &back), WireError::kOk);
  EXPECT_EQ(back.prev_t4_ns, p.prev_t4_ns);
  EXPECT_EQ(back.prev_correction_ns, p.prev_correction_ns);
  EXPECT_EQ(back.correction_ns, p.correction_ns);
}

TEST(WireTest, ReplyMatchesTheDocumentedLayoutByteForByte) {
  Reply r;
  r.scheme = Scheme::kKalman;
  r.flags = kReplyKernelRxTimestamp | kReplyEstimateValid;
  r.status = ReplyStatus::kInvalidParams;
  r.client_id = 0xA1A2A3A4;
  r.seq = 0x0102030405060708;
  r.t1_ns = 0x1112131415161718;
  r.t2_ns = 0x2122232425262728;
  r.t3_ns = 0x3132333435363738;
  r.correction_ns = -1000;
  std::array<uint8_t, kReplySize> b{};
  EncodeReply(r, absl::MakeSpan(b));
  EXPECT_EQ(Hex(b),
            "4c425453"
            "01"
            "02"
            "0003"
            "0005"
            "0001"
            "a1a2a3a4"
            "0102030405060708"
            "1112131415161718"
            "2122232425262728"
            "3132333435363738"
            "fffffffffffffc18");
  Reply back;
  ASSERT_EQ(DecodeReply(b, &back), WireError::kOk);
  EXPECT_EQ(back.t1_ns, r.t1_ns);
  EXPECT_EQ(back.t2_ns, r.t2_ns);
  EXPECT_EQ(back.t3_ns, r.t3_ns);
  EXPECT_EQ(back.status, ReplyStatus::kInvalidParams);
}

TEST(WireTest, ReplyRoundTripsAndIsSmallerThanTheProbe) {
  Reply in;
  in.scheme = Scheme::kPid;
  in.flags = kReplyKernelRxTimestamp | kReplyEstimateValid;
  in.status = ReplyStatus::kOk;
  in.client_id = 9;
  in.seq = 1ULL << 40;
  in.t1_ns = 1;
  in.t2_ns = 2;
  in.t3_ns = 3;
  in.correction_ns = -123'456;
  std::array<uint8_t, kReplySize> b{};
  EncodeReply(in, absl::MakeSpan(b));
  Reply out;
  ASSERT_EQ(DecodeReply(b, &out), WireError::kOk);
  EXPECT_EQ(out.scheme, in.scheme);
  EXPECT_EQ(out.flags, in.flags);
  EXPECT_EQ(out.client_id, in.client_id);
  EXPECT_EQ(out.seq, in.seq);
  EXPECT_EQ(out.t2_ns, 2);
  EXPECT_EQ(out.t3_ns, 3);
  EXPECT_EQ(out.correction_ns, in.correction_ns);
  static_assert(kReplySize <= kProbeSize);
}

struct MalformedCase {
  const char* name;
  void (*mutate)(std::vector<uint8_t>&);
  WireError expected;
};

const MalformedCase kMalformed[] = {
    {"empty", [](std::vector<uint8_t>& b) { b.clear(); }, WireError::kTooShort},
    {"truncated", [](std::vector<uint8_t>& b) { b.resize(kProbeSize - 1); }, WireError::kTooShort},
    {"header_only", [](std::vector<uint8_t>& b) { b.resize(16); }, WireError::kTooShort},
    {"too_long", [](std::vector<uint8_t>& b) { b.push_back(0); }, WireError::kTooLong},
    {"wrong_magic", [](std::vector<uint8_t>& b) { b[0] = 'X'; }, WireError::kBadMagic},
    {"short_wrong_magic",
     [](std::vector<uint8_t>& b) {
       b.assign({'G', 'E', 'T', ' ', '/'});
     },
     WireError::kBadMagic},
    {"wrong_version", [](std::vector<uint8_t>& b) { b[4] = 2; }, WireError::kBadVersion},
    {"reply_kind", [](std::vector<uint8_t>& b) { b[5] = kKindReply; }, WireError::kBadKind},
    {"idcode_zero", [](std::vector<uint8_t>& b) { b[7] = 0; }, WireError::kUnknownScheme},
    {"idcode_five", [](std::vector<uint8_t>& b) { b[7] = 5; }, WireError::kUnknownScheme},
    {"unknown_flag", [](std::vector<uint8_t>& b) { b[8] = 0x80; }, WireError::kReservedNotZero},
    {"reserved_word", [](std::vector<uint8_t>& b) { b[11] = 1; }, WireError::kReservedNotZero},
    {"reserved_tail", [](std::vector<uint8_t>& b) { b[95] = 1; }, WireError::kReservedNotZero},
    {"sequence_zero", [](std::vector<uint8_t>& b) { std::memset(&b[16], 0, 8); },
     WireError::kBadField},
    {"previous_not_older", [](std::vector<uint8_t>& b) { b[39] = 42; }, WireError::kBadField},
    {"nan_parameter",
     [](std::vector<uint8_t>& b) {
       std::memset(&b[64], 0xFF, 8);  // a NaN bit pattern
     },
     WireError::kBadField},
};

void PrintTo(const MalformedCase& c, std::ostream* os) { *os << c.name; }

class MalformedProbeTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedProbeTest, IsRejectedWithItsReason) {
  std::vector<uint8_t> b = Encoded(SampleProbe());
  GetParam().mutate(b);
  Probe out;
  EXPECT_EQ(DecodeProbe(b, &out), GetParam().expected)
      << "expected " << WireErrorName(GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(Forms, MalformedProbeTest, ::testing::ValuesIn(kMalformed),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(WireTest, ReplyDecoderRejectsAProbeAndABadStatus) {
  Reply out;
  EXPECT_EQ(DecodeReply(Encoded(SampleProbe()), &out), WireError::kTooLong);
  std::array<uint8_t, kReplySize> b{};
  Reply r;
  r.seq = 1;
  EncodeReply(r, absl::MakeSpan(b));
  b[11] = 9;  // status 9 does not exist
  EXPECT_EQ(DecodeReply(b, &out), WireError::kBadField);
}

TEST(WireTest, JsonReplyHasTheSeedFieldsAndRoundTrips) {
  Reply r;
  r.scheme = Scheme::kEwma;
  r.seq = 7;
  r.correction_ns = -12'345;
  const std::string json = EncodeJsonReply(r, kProbeSize);
  EXPECT_EQ(json, R"({"scheme":"ewma","correction_us":-12.345,"seq":7,"status":"ok"})");
  Reply back;
  ASSERT_EQ(DecodeJsonReply(json, &back), WireError::kOk);
  EXPECT_EQ(back.scheme, Scheme::kEwma);
  EXPECT_EQ(back.seq, 7u);
  EXPECT_EQ(back.correction_ns, -12'345);
}

TEST(WireTest, JsonReplyNeverExceedsTheRequestSize) {
  Reply r;
  r.scheme = Scheme::kKalman;
  r.seq = UINT64_MAX;
  r.correction_ns = INT64_MIN;
  for (std::size_t limit : {kProbeSize, std::size_t{80}, std::size_t{64}}) {
    const std::string json = EncodeJsonReply(r, limit);
    EXPECT_LE(json.size(), limit);
    Reply back;
    EXPECT_EQ(DecodeJsonReply(json, &back), WireError::kOk) << json;
  }
  EXPECT_EQ(EncodeJsonReply(r, 64).find("seq"), std::string::npos);  // dropped to fit
}

TEST(WireTest, JsonDecoderRejectsGarbage) {
  Reply out;
  EXPECT_EQ(DecodeJsonReply("{not json", &out), WireError::kBadJson);
  EXPECT_EQ(DecodeJsonReply(R"({"scheme":"ewma"})", &out), WireError::kBadJson);
  EXPECT_EQ(DecodeJsonReply(R"({"scheme":"ntp","correction_us":1})", &out),
            WireError::kUnknownScheme);
  EXPECT_EQ(DecodeJsonReply(R"([1,2])", &out), WireError::kBadJson);
}

TEST(ExchangeTest, FourTimestampOffsetAndDelay) {
  // Client 1 ms behind; 30 us out, 10 us back (asymmetric), server holds 5 us.
  const Exchange e{.t1_ns = 0, .t2_ns = 1'030'000, .t3_ns = 1'035'000, .t4_ns = 45'000};
  // ((t2-t1) + (t3-t4)) / 2 = (1030 + 990) / 2 us: off by half the 20 us asymmetry.
  EXPECT_DOUBLE_EQ(e.OffsetNs(), 1'010'000);
  EXPECT_DOUBLE_EQ(e.DelayNs(), 40'000);
  EXPECT_EQ(e.ServerMidpointNs(), 1'032'500);
}

TEST(ExchangeTest, ExtremeTimestampsOffTheWireDoNotWrap) {
  const Exchange e{.t1_ns = INT64_MIN, .t2_ns = INT64_MAX, .t3_ns = INT64_MAX, .t4_ns = INT64_MIN};
  EXPECT_GT(e.OffsetNs(), 1.8e19);  // huge and positive, not wrapped negative
  EXPECT_DOUBLE_EQ(e.DelayNs(), 0);
  EXPECT_EQ(e.ServerMidpointNs(), INT64_MAX);
}

}  // namespace
}  // namespace lab::timesync

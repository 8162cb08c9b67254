#include "dataplane/timesync/wire.h"

#include <array>
#include <cmath>
#include <cstring>
#include <vector>

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

}  // namespace
}  // namespace lab::timesync

#include "dataplane/timesync/server_core.h"

#include <array>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace lab::timesync {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000'000'000;

class ServerCoreTest : public ::testing::Test {
 protected:
  std::size_t Send(ServerCore& core, const Probe& p, const net::SocketAddress& peer, int64_t t2,
                   Reply* reply = nullptr) {
    std::array<uint8_t, kProbeSize> in{};
    EncodeProbe(p, absl::MakeSpan(in));
    clock_.SetNs(t2 + 1'000);
    const std::size_t len = core.HandleDatagram(in, peer, t2, net::TimestampSource::kKernel, clock_,
                                                absl::MakeSpan(out_));
    if (reply != nullptr && len == kReplySize) {
      EXPECT_EQ(DecodeReply(absl::MakeConstSpan(out_.data(), len), reply), WireError::kOk);
    }
    return len;
  }
  static Probe MakeProbe(Scheme scheme, uint32_t client_id, uint64_t seq) {
    Probe p;
    p.scheme = scheme;
    p.client_id = client_id;
    p.seq = seq;
    p.t1_ns = kT0;
    return p;
  }
  static net::SocketAddress Peer(uint16_t port) {
    return *net::SocketAddress::Resolve("127.0.0.1", port);
  }

  SimulatedClock clock_{kT0};
  std::array<uint8_t, kProbeSize> out_{};
};

TEST_F(ServerCoreTest, CountsAndDropsEveryMalformedForm) {
  ServerCore core({});
  std::array<uint8_t, kProbeSize> good{};
  EncodeProbe(MakeProbe(Scheme::kRaw, 1, 1), absl::MakeSpan(good));
  std::vector<std::vector<uint8_t>> bad = {
      {},                                                     // empty
      std::vector<uint8_t>(good.begin(), good.begin() + 40),  // truncated
      std::vector<uint8_t>(200, 0xAB),                        // wrong magic
  };
  auto wrong_version = std::vector<uint8_t>(good.begin(), good.end());
  wrong_version[4] = 9;
  bad.push_back(wrong_version);
  for (const auto& b : bad) {
    EXPECT_EQ(core.HandleDatagram(b, Peer(1), kT0, net::TimestampSource::kUser, clock_,
                                  absl::MakeSpan(out_)),
              0u);
  }
  const ServerCounters& c = core.counters();
  EXPECT_EQ(c.received, 4u);
  EXPECT_EQ(c.dropped, 4u);
  EXPECT_EQ(c.replied, 0u);
  EXPECT_EQ(c.dropped_by_reason[static_cast<int>(WireError::kTooShort)], 2u);
  EXPECT_EQ(c.dropped_by_reason[static_cast<int>(WireError::kBadMagic)], 1u);
  EXPECT_EQ(c.dropped_by_reason[static_cast<int>(WireError::kBadVersion)], 1u);
  EXPECT_EQ(core.active_clients(), 0u);
}

TEST_F(ServerCoreTest, RepliesWithTheClientsSchemeAndTimestamps) {
  ServerCore core({});
  Reply r;
  ASSERT_EQ(Send(core, MakeProbe(Scheme::kEwma, 5, 1), Peer(1), kT0 + 100, &r), kReplySize);
  EXPECT_EQ(r.scheme, Scheme::kEwma);
  EXPECT_EQ(r.client_id, 5u);
  EXPECT_EQ(r.seq, 1u);
  EXPECT_EQ(r.t1_ns, kT0);
  EXPECT_EQ(r.t2_ns, kT0 + 100);
  EXPECT_EQ(r.t3_ns, kT0 + 1'100);
  EXPECT_TRUE(r.flags & kReplyKernelRxTimestamp);
  EXPECT_FALSE(r.flags & kReplyEstimateValid);  // nothing measured yet
  EXPECT_EQ(r.correction_ns, 0);
}

TEST_F(ServerCoreTest, CompletesTheReportedExchangeAndCorrectsByTheOffset) {
  ServerCore core({});
  // Client 1 ms behind the server, 10 us each way.
  Probe p1 = MakeProbe(Scheme::kRaw, 1, 1);
  p1.t1_ns = kT0 - 1'000'000;
  Reply r1;
  Send(core, p1, Peer(1), kT0 + 10'000, &r1);
  Probe p2 = MakeProbe(Scheme::kRaw, 1, 2);
  p2.flags = kProbeHasPrevious;
  p2.prev_seq = 1;
  p2.prev_t4_ns = r1.t3_ns + 10'000 - 1'000'000;
  p2.t1_ns = kT0 + 5'000'000 - 1'000'000;
  Reply r2;
  Send(core, p2, Peer(1), kT0 + 5'010'000, &r2);
  EXPECT_TRUE(r2.flags & kReplySampleUsed);
  EXPECT_TRUE(r2.flags & kReplyEstimateValid);
  EXPECT_EQ(r2.correction_ns, 1'000'000);
  EXPECT_EQ(core.counters().samples_used, 1u);
}

TEST_F(ServerCoreTest, UnknownPreviousExchangeIsCountedNotUsed) {
  ServerCore core({});
  Probe p = MakeProbe(Scheme::kKalman, 1, 10);
  p.flags = kProbeHasPrevious;
  p.prev_seq = 3;  // never seen
  Reply r;
  Send(core, p, Peer(1), kT0, &r);
  EXPECT_EQ(core.counters().samples_unmatched, 1u);
  EXPECT_FALSE(r.flags & kReplySampleUsed);
}

TEST_F(ServerCoreTest, KeepsStateBoundedByEvictingTheLeastRecentlyHeard) {
  ServerCoreOptions options;
  options.max_clients = 2;
  ServerCore core(options);
  Send(core, MakeProbe(Scheme::kRaw, 1, 1), Peer(1), kT0);
  Send(core, MakeProbe(Scheme::kRaw, 2, 1), Peer(2), kT0 + 1);
  Send(core, MakeProbe(Scheme::kRaw, 1, 2), Peer(1), kT0 + 2);  // 1 is now the most recent
  Send(core, MakeProbe(Scheme::kRaw, 3, 1), Peer(3), kT0 + 3);  // evicts 2
  EXPECT_EQ(core.active_clients(), 2u);
  EXPECT_EQ(core.counters().clients_evicted_full, 1u);
  EXPECT_EQ(core.counters().clients_created, 3u);
  Send(core, MakeProbe(Scheme::kRaw, 1, 3), Peer(1), kT0 + 4);  // 1 kept its state
  EXPECT_EQ(core.counters().clients_created, 3u);
}

TEST_F(ServerCoreTest, SameClientIdFromAnotherAddressIsAnotherClient) {
  ServerCore core({});
  Send(core, MakeProbe(Scheme::kRaw, 1, 1), Peer(1), kT0);
  Send(core, MakeProbe(Scheme::kRaw, 1, 1), Peer(2), kT0);
  EXPECT_EQ(core.active_clients(), 2u);
}

TEST_F(ServerCoreTest, EvictsIdleClientsOnServerTime) {
  ServerCoreOptions options;
  options.idle_timeout_ns = 5'000'000'000;
  ServerCore core(options);
  Send(core, MakeProbe(Scheme::kRaw, 1, 1), Peer(1), kT0);
  Send(core, MakeProbe(Scheme::kRaw, 2, 1), Peer(2), kT0 + 4'000'000'000);
  EXPECT_EQ(core.EvictIdle(kT0 + 5'500'000'000), 1u);  // only client 1 is idle > 5 s
  EXPECT_EQ(core.active_clients(), 1u);
  // A later probe sweeps by itself.
  Send(core, MakeProbe(Scheme::kRaw, 3, 1), Peer(3), kT0 + 20'000'000'000);
  EXPECT_EQ(core.active_clients(), 1u);
  EXPECT_EQ(core.counters().clients_evicted_idle, 2u);
}

TEST_F(ServerCoreTest, ChangingSchemeRestartsTheFilter) {
  ServerCore core({});
  Send(core, MakeProbe(Scheme::kRaw, 1, 1), Peer(1), kT0);
  Probe p = MakeProbe(Scheme::kPid, 1, 2);
  p.flags = kProbeHasPrevious;
  p.prev_seq = 1;
  p.prev_t4_ns = kT0 + 20'000;
  Reply r;
  Send(core, p, Peer(1), kT0 + 1'000'000, &r);
  EXPECT_EQ(r.scheme, Scheme::kPid);
  EXPECT_EQ(core.counters().samples_unmatched, 1u);  // the RAW exchange is not carried over
  EXPECT_EQ(core.active_clients(), 1u);
}

TEST_F(ServerCoreTest, JsonReplyIsNeverLargerThanTheProbe) {
  ServerCore core({});
  Probe p = MakeProbe(Scheme::kKalman, 1, 123456789);
  p.flags = kProbeJsonReply;
  const std::size_t len = Send(core, p, Peer(1), kT0);
  ASSERT_GT(len, 0u);
  EXPECT_LE(len, kProbeSize);
  const auto j = nlohmann::json::parse(std::string(out_.begin(), out_.begin() + len));
  EXPECT_EQ(j["scheme"], "kalman");
  EXPECT_EQ(j["seq"], 123456789);
  EXPECT_TRUE(j["correction_us"].is_number());
  EXPECT_EQ(core.counters().json_replies, 1u);
}

TEST_F(ServerCoreTest, InvalidParametersGetAStatusAndNoState) {
  ServerCore core({});
  Probe p = MakeProbe(Scheme::kEwma, 1, 1);
  p.flags = kProbeHasParams;
  p.params = {7.0, 0, 0};  // alpha 7
  Reply r;
  ASSERT_EQ(Send(core, p, Peer(1), kT0, &r), kReplySize);
  EXPECT_EQ(r.status, ReplyStatus::kInvalidParams);
  EXPECT_EQ(core.counters().invalid_params, 1u);
  EXPECT_EQ(core.active_clients(), 0u);
}

TEST_F(ServerCoreTest, AbsurdTimestampsAndCorrectionsSaturateInsteadOfWrapping) {
  ServerCore core({});
  Probe p1 = MakeProbe(Scheme::kRaw, 1, 1);
  p1.t1_ns = INT64_MIN;
  Reply r1;
  ASSERT_EQ(Send(core, p1, Peer(1), kT0, &r1), kReplySize);
  Probe p2 = MakeProbe(Scheme::kRaw, 1, 2);
  p2.flags = kProbeHasPrevious;
  p2.prev_seq = 1;
  p2.prev_t4_ns = INT64_MIN + 1;
  p2.correction_ns = INT64_MIN;  // the client claims to apply -9.2e18 ns already
  Reply r2;
  ASSERT_EQ(Send(core, p2, Peer(1), kT0 + 1'000'000, &r2), kReplySize);
  EXPECT_TRUE(r2.flags & kReplyEstimateValid);
  // The estimate is about +1.8e19 ns; minus INT64_MIN it is far beyond int64: saturated.
  EXPECT_EQ(r2.correction_ns, INT64_MAX);
}

}  // namespace
}  // namespace lab::timesync

// The UDP server and client on real loopback sockets (port 0).
#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "dataplane/net/udp_socket.h"
#include "dataplane/traffic/udp_client.h"
#include "dataplane/traffic/udp_flow.h"
#include "dataplane/traffic/udp_server.h"
#include "gtest/gtest.h"

namespace lab::traffic {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1'000'000'000;

net::SocketAddress Loopback(uint16_t port = 0) {
  return *net::SocketAddress::Resolve("127.0.0.1", port);
}

std::unique_ptr<UdpTrafficServer> StartServer(UdpServerMode mode, std::size_t max_bytes = 65507) {
  UdpServerOptions o;
  o.listen = Loopback();
  o.mode = mode;
  o.max_datagram_bytes = max_bytes;
  auto server = UdpTrafficServer::Start(o);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

absl::StatusOr<UdpClientReport> RunClient(const UdpClientOptions& o,
                                          const std::atomic<bool>* cancel = nullptr,
                                          const IntervalCallback& on_interval = nullptr) {
  return RunUdpClient(o, RealtimeClock::Get(), cancel, on_interval);
}

TEST(UdpLoopbackTest, SimpleClientGetsEveryDatagramEchoed) {
  auto server = StartServer(UdpServerMode::kEcho);
  ASSERT_NE(server, nullptr);
  UdpClientOptions o;
  o.server = server->local_address();
  o.count = 200;
  o.length = 100;
  auto report = RunClient(o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->mode, "simple");
  EXPECT_EQ(report->sent, 200u);
  EXPECT_EQ(report->bytes_sent, 200u * 100);
  EXPECT_EQ(report->received, 200u);
  EXPECT_EQ(report->lost_packets, 0u);
  EXPECT_EQ(report->duplicates, 0u);
  EXPECT_EQ(report->out_of_order, 0u);
  EXPECT_EQ(report->errors, 0u);
  EXPECT_EQ(report->latency_us.count(), 200u);
  EXPECT_GT(report->latency_us.min(), 0);
  EXPECT_GT(report->seconds, 0);
  // The server publishes its counters right after sending a batch's echoes.
  ASSERT_TRUE(server->WaitForCounters([](const UdpServerCounters& c) { return c.echoed >= 200; },
                                      10 * kSecond));
  const UdpServerCounters c = server->counters();
  EXPECT_EQ(c.received, 200u);
  EXPECT_EQ(c.echoed, 200u);
  EXPECT_EQ(c.bytes_sent, 200u * 100);
  const nlohmann::json j = UdpClientReportToJson(*report);
  for (const char* key :
       {"mode", "sent", "received", "lost_packets", "lost_percent", "out_of_order", "duplicates",
        "jitter_ms", "bits_per_second", "packets_per_second", "received_packets_per_second",
        "latency_us", "errors", "malformed", "skipped_slots", "seconds", "intervals"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  for (const char* key : {"p50", "p99", "p999", "min", "max", "mean"}) {
    EXPECT_TRUE(j["latency_us"][key].is_number()) << key;
  }
}

TEST(UdpLoopbackTest, FastClientAtAPacedRateSendsTheRateWithoutLoss) {
  auto server = StartServer(UdpServerMode::kEcho);
  ASSERT_NE(server, nullptr);
  UdpClientOptions o;
  o.server = server->local_address();
  o.rate_pps = 20'000;
  o.duration_ns = 500 * kMs;
  o.interval_ns = 100 * kMs;
  std::vector<IntervalSample> seen;
  auto report = RunClient(o, nullptr, [&](const IntervalSample& s) { seen.push_back(s); });
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->mode, "fast");
  // 10000 slots in 0.5 s; a stalled sender skips some (counted), it never sends more.
  EXPECT_LE(report->sent, 10'001u);
  EXPECT_GE(report->sent, 7'000u);
  EXPECT_GE(report->sent + report->skipped_slots, 9'000u);
  EXPECT_EQ(report->lost_packets, 0u);
  EXPECT_EQ(report->received, report->sent);
  EXPECT_EQ(report->errors, 0u);
  EXPECT_NEAR(report->seconds, 0.5, 0.2);
  EXPECT_EQ(report->latency_us.count(), report->received);
  // Intervals: every 100 ms, in order, adding up to the totals.
  ASSERT_EQ(seen.size(), report->intervals.size());
  ASSERT_GE(seen.size(), 5u);
  uint64_t sent = 0, received = 0;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    if (i > 0) {
      EXPECT_DOUBLE_EQ(seen[i].start_s, seen[i - 1].end_s);
    }
    sent += seen[i].messages_sent;
    received += seen[i].messages_received;
  }
  EXPECT_EQ(sent, report->sent);
  EXPECT_EQ(received, report->received);
}

TEST(UdpLoopbackTest, AsFastAsPossibleIsCountLimited) {
  auto server = StartServer(UdpServerMode::kEcho);
  ASSERT_NE(server, nullptr);
  UdpClientOptions o;
  o.server = server->local_address();
  o.rate_pps = 0;
  o.count = 2000;
  o.timeout_ns = 2 * kSecond;
  auto report = RunClient(o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->sent + report->send_errors, 2000u);
  EXPECT_LE(report->received, report->sent);
  EXPECT_EQ(report->received + report->lost_packets, report->sent);
}

TEST(UdpLoopbackTest, SinkServerCountsPerFlowWhatTheClientSent) {
  auto server = StartServer(UdpServerMode::kSink);
  ASSERT_NE(server, nullptr);
  UdpClientOptions o;
  o.server = server->local_address();
  o.rate_pps = 10'000;
  o.count = 1000;
  o.one_way = true;
  o.flow_id = 4242;
  auto report = RunClient(o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->sent, 1000u);
  EXPECT_EQ(report->received, 0u);
  ASSERT_TRUE(server->WaitForCounters([](const UdpServerCounters& c) { return c.received >= 1000; },
                                      10 * kSecond));
  const std::vector<UdpFlowStats> flows = server->flows();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].flow_id, 4242u);
  EXPECT_EQ(flows[0].received, report->sent);
  EXPECT_EQ(flows[0].unique, report->sent);
  EXPECT_EQ(flows[0].highest_seq, 999u);
  EXPECT_EQ(flows[0].lost_packets, 0u);
  EXPECT_EQ(flows[0].duplicates, 0u);
  EXPECT_EQ(server->counters().echoed, 0u);
  const nlohmann::json j = UdpServerStatsToJson(*server);
  EXPECT_EQ(j["mode"], "sink");
  EXPECT_EQ(j["flows"][0]["received"], 1000);
  for (const char* key : {"lost_packets", "out_of_order", "duplicates", "jitter_ms"}) {
    EXPECT_TRUE(j["flows"][0][key].is_number()) << key;
  }
  // One-way: the client reports no loss of its own.
  EXPECT_TRUE(UdpClientReportToJson(*report)["lost_packets"].is_null());
}

TEST(UdpLoopbackTest, MalformedDatagramsAreCountedByReasonAndDropped) {
  auto server = StartServer(UdpServerMode::kSink, /*max_bytes=*/256);
  ASSERT_NE(server, nullptr);
  auto raw = net::UdpSocket::Connect(server->local_address());
  ASSERT_TRUE(raw.ok()) << raw.status();
  std::vector<uint8_t> good(64);
  ASSERT_TRUE(EncodeUdpDatagram({.flow_id = 1, .seq = 0, .send_ns = 0}, absl::MakeSpan(good)).ok());
  auto bad_magic = good, bad_version = good, reserved = good;
  bad_magic[0] = 'X';
  bad_version[4] = 9;
  reserved[6] = 1;
  ASSERT_TRUE(raw->Send(absl::MakeConstSpan(good).first(10)).ok());
  ASSERT_TRUE(raw->Send(bad_magic).ok());
  ASSERT_TRUE(raw->Send(bad_version).ok());
  ASSERT_TRUE(raw->Send(reserved).ok());
  ASSERT_TRUE(raw->Send(std::vector<uint8_t>(300)).ok());  // beyond max_datagram_bytes
  UdpClientOptions o;
  o.server = server->local_address();
  o.rate_pps = 5000;
  o.count = 200;
  o.one_way = true;
  auto report = RunClient(o);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(server->WaitForCounters([](const UdpServerCounters& c) { return c.received >= 205; },
                                      10 * kSecond));
  const UdpServerCounters c = server->counters();
  EXPECT_EQ(c.malformed[static_cast<int>(UdpDecodeError::kTooShort)], 1u);
  EXPECT_EQ(c.malformed[static_cast<int>(UdpDecodeError::kBadMagic)], 1u);
  EXPECT_EQ(c.malformed[static_cast<int>(UdpDecodeError::kBadVersion)], 1u);
  EXPECT_EQ(c.malformed[static_cast<int>(UdpDecodeError::kReservedNotZero)], 1u);
  EXPECT_EQ(c.truncated, 1u);
  EXPECT_EQ(c.flows, 1u);  // the malformed datagrams made no flow
  EXPECT_EQ(server->flows()[0].received, 200u);
  const nlohmann::json j = UdpServerCountersToJson(c);
  EXPECT_EQ(j["malformed"]["bad_magic"], 1);
  EXPECT_EQ(j["truncated"], 1);
}

TEST(UdpLoopbackTest, SinkEvictsTheLeastRecentlyHeardFlowBeyondTheCap) {
  UdpServerOptions so;
  so.listen = Loopback();
  so.mode = UdpServerMode::kSink;
  so.max_flows = 2;
  auto server = UdpTrafficServer::Start(so);
  ASSERT_TRUE(server.ok()) << server.status();
  auto raw = net::UdpSocket::Connect((*server)->local_address());
  ASSERT_TRUE(raw.ok());
  std::vector<uint8_t> d(32);
  for (uint32_t flow : {1, 2, 3}) {
    ASSERT_TRUE(
        EncodeUdpDatagram({.flow_id = flow, .seq = 0, .send_ns = 0}, absl::MakeSpan(d)).ok());
    ASSERT_TRUE(raw->Send(d).ok());
  }
  ASSERT_TRUE((*server)->WaitForCounters([](const UdpServerCounters& c) { return c.received >= 3; },
                                         10 * kSecond));
  const UdpServerCounters c = (*server)->counters();
  EXPECT_EQ(c.flows, 2u);
  EXPECT_EQ(c.flows_created, 3u);
  EXPECT_EQ(c.flows_evicted, 1u);
  const auto flows = (*server)->flows();
  ASSERT_EQ(flows.size(), 2u);
  EXPECT_EQ(flows[0].flow_id, 3u);  // most recently heard first; flow 1 was evicted
  EXPECT_EQ(flows[1].flow_id, 2u);
}

TEST(UdpLoopbackTest, StopWakesAnIdleServerAndIsIdempotent) {
  UdpServerOptions o;
  o.listen = Loopback();
  o.idle_wake_ns = 3600 * kSecond;  // only Stop() can wake it
  auto server = UdpTrafficServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  const auto before = std::chrono::steady_clock::now();
  (*server)->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(10));
  (*server)->Stop();
  EXPECT_TRUE((*server)->status().ok());
}

TEST(UdpLoopbackTest, NonLoopbackAddressNeedsInsecure) {
  UdpServerOptions o;
  o.listen = *net::SocketAddress::Resolve("0.0.0.0", 0);
  auto server = UdpTrafficServer::Start(o);
  ASSERT_FALSE(server.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(server.status()));
  EXPECT_TRUE(absl::StrContains(server.status().message(), "--insecure")) << server.status();
}

TEST(UdpLoopbackTest, PortRangeTakesTheFirstFreePort) {
  auto busy = net::UdpSocket::Bind(Loopback());
  ASSERT_TRUE(busy.ok());
  const uint16_t taken = busy->LocalAddress()->port();
  if (taken > 65000) GTEST_SKIP() << "ephemeral port too close to the top";
  UdpServerOptions o;
  o.listen = Loopback();
  o.port_range = UdpPortRange{taken, static_cast<uint16_t>(taken + 50)};
  auto server = UdpTrafficServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_GT((*server)->local_address().port(), taken);
  EXPECT_LE((*server)->local_address().port(), taken + 50);
  // A range of one busy port.
  o.port_range = UdpPortRange{taken, taken};
  auto none = UdpTrafficServer::Start(o);
  EXPECT_TRUE(absl::IsAlreadyExists(none.status())) << none.status();
}

class ClosedPortTest : public ::testing::TestWithParam<bool> {};

TEST_P(ClosedPortTest, ClientFailsWithUnavailableNamingTheServer) {
  net::SocketAddress closed;
  {
    auto s = net::UdpSocket::Bind(Loopback());
    ASSERT_TRUE(s.ok());
    closed = *s->LocalAddress();
  }
  UdpClientOptions o;
  o.server = closed;
  o.count = 100;
  o.timeout_ns = 200 * kMs;
  if (GetParam()) o.rate_pps = 1000;
  auto report = RunClient(o);
  ASSERT_FALSE(report.ok());
  EXPECT_TRUE(absl::IsUnavailable(report.status())) << report.status();
  EXPECT_TRUE(absl::StrContains(report.status().message(), closed.ToString())) << report.status();
}

INSTANTIATE_TEST_SUITE_P(Modes, ClosedPortTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Fast" : "Simple"; });

TEST(UdpLoopbackTest, CancelEndsAnUnlimitedRunWithAPartialReport) {
  auto server = StartServer(UdpServerMode::kEcho);
  ASSERT_NE(server, nullptr);
  UdpClientOptions o;
  o.server = server->local_address();
  o.rate_pps = 2000;
  o.interval_ns = 50 * kMs;
  std::atomic<bool> cancel{false};
  auto report = RunClient(o, &cancel, [&](const IntervalSample&) { cancel = true; });
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->interrupted);
  EXPECT_GT(report->sent, 0u);
}

TEST(UdpLoopbackTest, BadClientOptionsAreInvalidArgument) {
  UdpClientOptions o;
  o.server = Loopback(9);
  o.length = 27;
  EXPECT_TRUE(absl::IsInvalidArgument(RunClient(o).status()));
  o.length = 64;
  o.rate_pps = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(RunClient(o).status()));
  o.rate_pps.reset();
  o.one_way = true;
  EXPECT_TRUE(absl::IsInvalidArgument(RunClient(o).status()));
}

}  // namespace
}  // namespace lab::traffic

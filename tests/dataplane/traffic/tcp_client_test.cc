// The TCP traffic clients against the real server on loopback (port 0).
#include "dataplane/traffic/tcp_client.h"

#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <thread>

#include "dataplane/traffic/tcp_server.h"
#include "gtest/gtest.h"
#include "tests/dataplane/traffic/tcp_test_util.h"

namespace lab::traffic {
namespace {

using testing::Loopback;
using testing::ReadUpTo;
using testing::WaitUntil;

constexpr int64_t kMs = 1'000'000;

std::unique_ptr<TcpServer> StartServer(TcpMode mode, int max_connections = 1000) {
  TcpServerOptions o;
  o.listen = Loopback();
  o.mode = mode;
  o.max_connections = max_connections;
  auto s = TcpServer::Start(o);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

TcpClientOptions Rr(const TcpServer& server) {
  TcpClientOptions o;
  o.server = server.local_address();
  o.mode = TcpClientMode::kRequestResponse;
  return o;
}

TEST(TcpClientTest, RequestResponseCountsEveryRequestExactly) {
  auto server = StartServer(TcpMode::kEcho);
  ASSERT_NE(server, nullptr);
  TcpClientOptions o = Rr(*server);
  o.connections = 8;
  o.threads = 2;
  o.requests = 2000;
  o.duration_ns = 0;
  o.length = 100;
  auto r = RunTcpClient(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->requests, 2000u);
  EXPECT_EQ(r->latency_us.count(), 2000u);
  EXPECT_EQ(r->bytes_sent, 200'000u);
  EXPECT_EQ(r->bytes_received, 200'000u);
  EXPECT_EQ(r->connections_established, 8);
  EXPECT_EQ(r->errors(), 0u);
  EXPECT_GT(r->requests_per_second(), 0);
  EXPECT_GT(r->latency_us.Quantile(0.5), 0);
  EXPECT_LE(r->latency_us.Quantile(0.5), r->latency_us.Quantile(0.99));
  // Every connection ended in an orderly way at the server.
  ASSERT_TRUE(WaitUntil([&] { return server->counters().closed == 8; }));
  EXPECT_EQ(server->counters().resets, 0u);
  EXPECT_EQ(server->counters().bytes_received, 200'000u);
}

// Framing: a response that arrives in many small pieces is still one response, and its
// latency is measured to its last byte. The server here echoes one byte per write.
TEST(TcpClientTest, ResponsesSplitIntoSingleBytesAreReassembled) {
  auto listener = net::TcpListener::Listen(Loopback());
  ASSERT_TRUE(listener.ok());
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    ASSERT_TRUE(testing::WaitFd(listener->fd(), POLLIN, testing::NowMs() + 10'000));
    auto conn = listener->Accept();
    ASSERT_TRUE(conn.ok());
    (void)net::SetNoDelay(conn->fd.get(), true);
    for (;;) {
      const auto req = ReadUpTo(conn->fd.get(), 32);
      if (req.data.size() < 32) return;
      for (char ch : req.data) ASSERT_TRUE(testing::SendAll(conn->fd.get(), std::string(1, ch)));
    }
  });
  TcpClientOptions o;
  o.server = listener->local_address();
  o.length = 32;
  o.requests = 50;
  o.duration_ns = 0;
  auto r = RunTcpClient(o);
  trickle.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->requests, 50u);
  EXPECT_EQ(r->bytes_received, 50u * 32);
  EXPECT_EQ(r->errors(), 0u);
}

TEST(TcpClientTest, BulkSendIsWhatTheSinkReceived) {
  auto server = StartServer(TcpMode::kSink);
  ASSERT_NE(server, nullptr);
  TcpClientOptions o;
  o.server = server->local_address();
  o.mode = TcpClientMode::kBulk;
  o.connections = 2;
  o.threads = 1;
  o.duration_ns = 300 * kMs;
  auto r = RunTcpClient(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->bytes_sent, 1u << 20);
  EXPECT_EQ(r->bytes_received, 0u);
  EXPECT_NEAR(r->seconds, 0.3, 0.25);
  EXPECT_DOUBLE_EQ(r->bits_per_second(), static_cast<double>(r->bytes_sent) * 8 / r->seconds);
  // Nothing is written after the run ends, and every written byte reaches the server.
  ASSERT_TRUE(WaitUntil([&] { return server->counters().closed == 2; }));
  EXPECT_EQ(server->counters().bytes_received, r->bytes_sent);
  EXPECT_EQ(server->counters().resets, 0u);
}

TEST(TcpClientTest, ReverseBulkReceivesFromASourceAndEndsCleanly) {
  auto server = StartServer(TcpMode::kSource);
  ASSERT_NE(server, nullptr);
  TcpClientOptions o;
  o.server = server->local_address();
  o.mode = TcpClientMode::kBulk;
  o.reverse = true;
  o.duration_ns = 200 * kMs;
  auto r = RunTcpClient(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->bytes_received, 1u << 20);
  EXPECT_EQ(r->bytes_sent, 0u);
  EXPECT_DOUBLE_EQ(r->bits_per_second(), static_cast<double>(r->bytes_received) * 8 / r->seconds);
  ASSERT_TRUE(WaitUntil([&] { return server->counters().closed == 1; }));
  EXPECT_EQ(server->counters().resets, 0u);
}

TEST(TcpClientTest, IntervalsAddUpToTheTotals) {
  auto server = StartServer(TcpMode::kEcho);
  ASSERT_NE(server, nullptr);
  TcpClientOptions o = Rr(*server);
  o.connections = 4;
  o.threads = 2;
  o.duration_ns = 500 * kMs;
  o.interval_ns = 100 * kMs;
  std::vector<IntervalSample> seen;
  auto r = RunTcpClient(o, nullptr, [&](const IntervalSample& s) { seen.push_back(s); });
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_GE(seen.size(), 4u);
  ASSERT_EQ(seen.size(), r->intervals.size());
  uint64_t requests = 0, sent = 0;
  double last_end = 0;
  for (const auto& s : seen) {
    EXPECT_DOUBLE_EQ(s.start_s, last_end);
    last_end = s.end_s;
    requests += s.messages_received;
    sent += s.bytes_sent;
    if (s.messages_received > 0) {
      EXPECT_LE(s.latency_p50_us, s.latency_p99_us);
    }
  }
  EXPECT_EQ(requests, r->requests);
  EXPECT_EQ(sent, r->bytes_sent);
  EXPECT_NEAR(last_end, r->seconds, 1e-9);
}

TEST(TcpClientTest, NoServerIsUnavailableNamingTheServer) {
  uint16_t port;
  {
    auto l = net::TcpListener::Listen(Loopback());
    ASSERT_TRUE(l.ok());
    port = l->local_address().port();
  }
  TcpClientOptions o;
  o.server = Loopback(port);
  o.connections = 3;
  auto r = RunTcpClient(o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find(Loopback(port).ToString()), std::string::npos);
  EXPECT_NE(r.status().message().find("refused"), std::string::npos) << r.status();
}

// Against a server capped at 2, the other connections are counted (closed by the server or
// reset), and the two served ones carry on.
TEST(TcpClientTest, ConnectionsBeyondTheServersCapAreCountedAsErrors) {
  auto server = StartServer(TcpMode::kEcho, /*max_connections=*/2);
  ASSERT_NE(server, nullptr);
  TcpClientOptions o = Rr(*server);
  o.connections = 5;
  o.duration_ns = 300 * kMs;
  auto r = RunTcpClient(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->closed_by_server + r->resets, 3u);
  EXPECT_EQ(r->errors(), 3u);
  EXPECT_GT(r->requests, 0u);
  EXPECT_FALSE(r->first_error.empty());
  EXPECT_EQ(server->counters().refused, 3u);
}

// A request budget with connections the server refuses: the requests those connections had
// issued are lost with them, and the run still ends (it once waited for them forever).
TEST(TcpClientTest, ARequestBudgetEndsEvenWhenConnectionsFailWithRequestsInFlight) {
  auto server = StartServer(TcpMode::kEcho, /*max_connections=*/3);
  ASSERT_NE(server, nullptr);
  TcpClientOptions o = Rr(*server);
  o.connections = 5;
  o.requests = 500;
  o.duration_ns = 0;  // no time limit: only the budget ends the run
  auto r = RunTcpClient(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->errors(), 2u);
  EXPECT_LE(r->requests, 500u);
  EXPECT_GE(r->requests, 498u);  // at most one lost per refused connection
}

TEST(TcpClientTest, ServerStoppingMidRunEndsTheRunEarlyWithTheErrors) {
  auto server = StartServer(TcpMode::kEcho);
  ASSERT_NE(server, nullptr);
  TcpClientOptions o = Rr(*server);
  o.connections = 4;
  o.threads = 2;
  o.duration_ns = 60'000 * kMs;  // would run a minute
  std::thread stopper([&] {
    WaitUntil([&] { return server->counters().bytes_received > 10'000; });
    server->Stop();
  });
  auto r = RunTcpClient(o);
  stopper.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(r->seconds, 30);
  EXPECT_EQ(r->closed_by_server + r->resets, 4u);
  EXPECT_GT(r->requests, 0u);
}

TEST(TcpClientTest, CancelEndsTheRunWithAPartialReport) {
  auto server = StartServer(TcpMode::kEcho);
  ASSERT_NE(server, nullptr);
  TcpClientOptions o = Rr(*server);
  o.duration_ns = 60'000 * kMs;
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    WaitUntil([&] { return server->counters().bytes_received > 6400; });
    cancel = true;
  });
  auto r = RunTcpClient(o, &cancel);
  canceller.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->interrupted);
  EXPECT_GE(r->requests, 99u);
  EXPECT_LT(r->seconds, 30);
}

TEST(TcpClientTest, JsonUsesIperf3NamesAndMergeableBuckets) {
  auto server = StartServer(TcpMode::kEcho);
  ASSERT_NE(server, nullptr);
  TcpClientOptions o = Rr(*server);
  o.requests = 300;
  o.duration_ns = 0;
  auto r = RunTcpClient(o);
  ASSERT_TRUE(r.ok());
  const nlohmann::json j = TcpClientReportToJson(*r);
  EXPECT_EQ(j["requests"], 300);
  for (const char* key : {"bits_per_second", "requests_per_second", "seconds", "errors"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  for (const char* key : {"p50", "p99", "p999"}) EXPECT_TRUE(j["latency_us"][key].is_number());
  uint64_t total = 0;
  for (const auto& b : j["latency_histogram"]["buckets"]) total += b[1].get<uint64_t>();
  EXPECT_EQ(total, 300u);
  EXPECT_EQ(j["latency_histogram"]["edges"], "latency_us_v1");
}

TEST(TcpClientOptionsTest, BadOptionsNameTheProblem) {
  TcpClientOptions o;
  o.server = Loopback(9);
  o.connections = 2;
  o.threads = 3;
  EXPECT_NE(o.Validate().message().find("threads"), std::string::npos);
  o.threads = 1;
  o.reverse = true;
  EXPECT_NE(o.Validate().message().find("reverse"), std::string::npos);
  o.reverse = false;
  o.mode = TcpClientMode::kBulk;
  o.requests = 5;
  EXPECT_NE(o.Validate().message().find("rr"), std::string::npos);
  EXPECT_EQ(ParseTcpClientMode("stream").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lab::traffic

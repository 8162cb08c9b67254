// The TCP traffic server on loopback (port 0), each test run against both engines.
#include "dataplane/traffic/tcp_server.h"

#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/dataplane/traffic/tcp_test_util.h"

namespace lab::traffic {
namespace {

using testing::Loopback;
using testing::ReadUpTo;
using testing::SendAll;
using testing::WaitUntil;

std::string Pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 31 + i / 7);
  return s;
}

class TcpServerTest : public ::testing::TestWithParam<TcpEngine> {
 protected:
  std::unique_ptr<TcpServer> Start(TcpMode mode, int max_connections = 100, int threads = 0) {
    TcpServerOptions o;
    o.listen = Loopback();
    o.mode = mode;
    o.engine = GetParam();
    o.max_connections = max_connections;
    o.threads = threads;
    auto server = TcpServer::Start(o);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }
  net::ScopedFd Connect(const TcpServer& server) {
    auto fd = net::ConnectTcp(server.local_address(), 5'000'000'000);
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? std::move(*fd) : net::ScopedFd();
  }
};

TEST_P(TcpServerTest, EchoReturnsEveryByteInOrderAndCountsThem) {
  auto server = Start(TcpMode::kEcho);
  ASSERT_NE(server, nullptr);
  net::ScopedFd c = Connect(*server);
  // 3 MB: more than the socket buffers hold, so the server must stop reading while its
  // writes are pending, and resume.
  const std::string data = Pattern(3 << 20);
  std::string echoed;
  std::thread reader([&] { echoed = ReadUpTo(c.get(), data.size(), 20'000).data; });
  ASSERT_TRUE(SendAll(c.get(), data));
  reader.join();
  EXPECT_TRUE(echoed == data) << "echoed " << echoed.size() << " bytes, not the same";
  ::shutdown(c.get(), SHUT_WR);
  EXPECT_EQ(ReadUpTo(c.get(), 1).end, net::IoResult::kClosed);  // the server closes in turn
  ASSERT_TRUE(WaitUntil([&] { return server->counters().closed == 1; }));
  const TcpServerCounters k = server->counters();
  EXPECT_EQ(k.accepted, 1u);
  EXPECT_EQ(k.bytes_received, data.size());
  EXPECT_EQ(k.bytes_sent, data.size());
  EXPECT_EQ(k.resets, 0u);
  EXPECT_EQ(k.active, 0u);
  EXPECT_EQ(k.peak_active, 1u);
}

TEST_P(TcpServerTest, SinkReadsEverythingAndSendsNothing) {
  auto server = Start(TcpMode::kSink);
  ASSERT_NE(server, nullptr);
  net::ScopedFd c = Connect(*server);
  ASSERT_TRUE(SendAll(c.get(), Pattern(1 << 20)));
  ::shutdown(c.get(), SHUT_WR);
  const auto end = ReadUpTo(c.get(), 1);
  EXPECT_EQ(end.end, net::IoResult::kClosed);
  EXPECT_TRUE(end.data.empty());
  ASSERT_TRUE(WaitUntil([&] { return server->counters().closed == 1; }));
  EXPECT_EQ(server->counters().bytes_received, 1u << 20);
  EXPECT_EQ(server->counters().bytes_sent, 0u);
}

TEST_P(TcpServerTest, SourceSendsThePatternUntilThePeerCloses) {
  auto server = Start(TcpMode::kSource);
  ASSERT_NE(server, nullptr);
  net::ScopedFd c = Connect(*server);
  const auto got = ReadUpTo(c.get(), 1 << 20);
  ASSERT_EQ(got.data.size(), 1u << 20);
  EXPECT_EQ(got.data.substr(0, 5), "abcde");
  // The orderly end: FIN, then drain until the server closes.
  ::shutdown(c.get(), SHUT_WR);
  EXPECT_EQ(ReadUpTo(c.get(), SIZE_MAX, 20'000).end, net::IoResult::kClosed);
  ASSERT_TRUE(WaitUntil([&] { return server->counters().closed == 1; }));
  EXPECT_EQ(server->counters().resets, 0u);
  EXPECT_GE(server->counters().bytes_sent, 1u << 20);
}

TEST_P(TcpServerTest, RefusesBeyondTheCapAndAcceptsAgainWhenASlotFrees) {
  auto server = Start(TcpMode::kEcho, /*max_connections=*/2, /*threads=*/2);
  ASSERT_NE(server, nullptr);
  net::ScopedFd a = Connect(*server), b = Connect(*server);
  for (int fd : {a.get(), b.get()}) {  // both served
    ASSERT_TRUE(SendAll(fd, "ping"));
    ASSERT_EQ(ReadUpTo(fd, 4).data, "ping");
  }
  // The third is taken in and closed at once: the client reads the end instead of hanging.
  net::ScopedFd refused = Connect(*server);
  const auto end = ReadUpTo(refused.get(), 1);
  EXPECT_TRUE(end.end == net::IoResult::kClosed || end.end == net::IoResult::kReset);
  EXPECT_TRUE(end.data.empty());
  ASSERT_TRUE(WaitUntil([&] { return server->counters().refused == 1; }));
  EXPECT_EQ(server->counters().active, 2u);
  // The served ones are untouched; closing one makes room.
  ASSERT_TRUE(SendAll(b.get(), "pong"));
  ASSERT_EQ(ReadUpTo(b.get(), 4).data, "pong");
  a.reset();
  ASSERT_TRUE(WaitUntil([&] { return server->counters().active == 1; }));
  net::ScopedFd d = Connect(*server);
  ASSERT_TRUE(SendAll(d.get(), "again"));
  EXPECT_EQ(ReadUpTo(d.get(), 5).data, "again");
  EXPECT_EQ(server->counters().refused, 1u);
  EXPECT_EQ(server->counters().peak_active, 2u);
}

// A client that disappears in the middle of a transfer (reset while the server has data to
// write back) costs only its own connection.
TEST_P(TcpServerTest, AClientVanishingMidTransferLeavesTheServerHealthy) {
  auto server = Start(TcpMode::kEcho);
  ASSERT_NE(server, nullptr);
  {
    net::ScopedFd gone = Connect(*server);
    // Never reads: the server's writes back fill up and stay pending.
    ASSERT_TRUE(SendAll(gone.get(), Pattern(256 * 1024)));
    ASSERT_TRUE(WaitUntil([&] { return server->counters().bytes_received >= 64 * 1024; }));
    const linger abort_on_close{1, 0};  // close with RST, as a killed process's socket may
    ::setsockopt(gone.get(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
  }
  ASSERT_TRUE(WaitUntil([&] { return server->counters().closed == 1; }));
  EXPECT_EQ(server->counters().active, 0u);
  net::ScopedFd next = Connect(*server);
  const std::string data = Pattern(100'000);
  std::string echoed;
  std::thread reader([&] { echoed = ReadUpTo(next.get(), data.size()).data; });
  ASSERT_TRUE(SendAll(next.get(), data));
  reader.join();
  EXPECT_TRUE(echoed == data);
}

TEST_P(TcpServerTest, ManyConnectionsAtOnceOverSeveralThreadsAreEachEchoed) {
  auto server = Start(TcpMode::kEcho, 1000, /*threads=*/GetParam() == TcpEngine::kEpoll ? 2 : 64);
  ASSERT_NE(server, nullptr);
  std::vector<net::ScopedFd> conns;
  for (int i = 0; i < 60; ++i) conns.push_back(Connect(*server));
  for (std::size_t i = 0; i < conns.size(); ++i) {
    ASSERT_TRUE(SendAll(conns[i].get(), "conn " + std::to_string(i)));
  }
  for (std::size_t i = 0; i < conns.size(); ++i) {
    const std::string want = "conn " + std::to_string(i);
    EXPECT_EQ(ReadUpTo(conns[i].get(), want.size()).data, want);
  }
  // The server counts a write once send() returns, which may be after the client read it.
  ASSERT_TRUE(WaitUntil([&] {
    const auto open = server->Connections();
    if (open.size() != 60u) return false;
    for (const auto& c : open) {
      if (c.bytes_received != c.bytes_sent || c.bytes_received == 0) return false;
    }
    return true;
  })) << "per-connection counters";
}

TEST_P(TcpServerTest, StopClosesEveryConnectionAndIsIdempotent) {
  auto server = Start(TcpMode::kEcho);
  ASSERT_NE(server, nullptr);
  net::ScopedFd a = Connect(*server), b = Connect(*server);
  ASSERT_TRUE(WaitUntil([&] { return server->counters().active == 2; }));
  server->Stop();
  EXPECT_NE(ReadUpTo(a.get(), 1).end, net::IoResult::kData);
  EXPECT_NE(ReadUpTo(b.get(), 1).end, net::IoResult::kData);
  EXPECT_EQ(server->counters().active, 0u);
  EXPECT_EQ(server->counters().closed, 2u);
  server->Stop();
}

INSTANTIATE_TEST_SUITE_P(Engines, TcpServerTest,
                         ::testing::Values(TcpEngine::kEpoll, TcpEngine::kThreads),
                         [](const auto& info) { return std::string(TcpEngineName(info.param)); });

// The thread-pool engine never makes more threads than its pool, and never leaves a connection
// waiting for a worker: with one worker busy, a second connection is refused at once.
TEST(TcpThreadPoolTest, ConnectionsBeyondTheWorkersAreRefusedNotQueued) {
  TcpServerOptions o;
  o.listen = Loopback();
  o.engine = TcpEngine::kThreads;
  o.threads = 1;
  auto server = TcpServer::Start(o);
  ASSERT_TRUE(server.ok());
  auto first = net::ConnectTcp((*server)->local_address(), 5'000'000'000);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(SendAll(first->get(), "1"));
  ASSERT_EQ(ReadUpTo(first->get(), 1).data, "1");
  auto second = net::ConnectTcp((*server)->local_address(), 5'000'000'000);
  ASSERT_TRUE(second.ok());
  const auto end = ReadUpTo(second->get(), 1);
  EXPECT_NE(end.end, net::IoResult::kData);
  EXPECT_TRUE(end.data.empty());
  ASSERT_TRUE(WaitUntil([&] { return (*server)->counters().refused == 1; }));
  EXPECT_EQ((*server)->counters().active, 1u);
  first->reset();
  ASSERT_TRUE(WaitUntil([&] { return (*server)->counters().active == 0; }));
  auto third = net::ConnectTcp((*server)->local_address(), 5'000'000'000);
  ASSERT_TRUE(third.ok());
  ASSERT_TRUE(SendAll(third->get(), "3"));
  EXPECT_EQ(ReadUpTo(third->get(), 1).data, "3");  // the freed worker serves it
}

TEST(TcpServerOptionsTest, BadOptionsAndNonLoopbackAreRefusedWithTheReason) {
  TcpServerOptions o;
  o.listen = *net::SocketAddress::Resolve("0.0.0.0", 0);
  auto s = TcpServer::Start(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("--insecure"), std::string::npos);
  o.listen = Loopback();
  o.max_connections = 0;
  EXPECT_NE(TcpServer::Start(o).status().message().find("max connections"), std::string::npos);
  EXPECT_EQ(ParseTcpMode("mirror").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTcpEngine("fibers").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseTcpMode("source"), TcpMode::kSource);
}

TEST(TcpServerOptionsTest, APortRangeTakesTheFirstFreePort) {
  auto taken = net::TcpListener::Listen(Loopback());
  ASSERT_TRUE(taken.ok());
  const uint16_t p = taken->local_address().port();
  TcpServerOptions o;
  o.listen = Loopback(p);
  o.port_last = static_cast<uint16_t>(p + 10);
  auto s = TcpServer::Start(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GT((*s)->local_address().port(), p);
  EXPECT_LE((*s)->local_address().port(), p + 10);
}

}  // namespace
}  // namespace lab::traffic

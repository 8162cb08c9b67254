#include "dataplane/net/udp_socket.h"

#include <poll.h>

#include <string>

#include "gtest/gtest.h"

namespace lab::net {
namespace {

// Waits (poll, with a deadline) until `socket` is readable.
bool WaitReadable(const UdpSocket& socket, int timeout_ms = 5000) {
  pollfd pfd{socket.fd(), POLLIN, 0};
  return ::poll(&pfd, 1, timeout_ms) == 1;
}

TEST(SocketAddressTest, ParsesHostPortForms) {
  EXPECT_EQ(SocketAddress::ParseHostPort("127.0.0.1:12345")->ToString(), "127.0.0.1:12345");
  EXPECT_EQ(SocketAddress::ParseHostPort("[::1]:9")->ToString(), "[::1]:9");
  EXPECT_TRUE(SocketAddress::ParseHostPort("127.0.0.2:1")->IsLoopback());
  EXPECT_FALSE(SocketAddress::ParseHostPort("10.0.0.1:1")->IsLoopback());
}

TEST(SocketAddressTest, RejectsMalformedAddressesWithAHint) {
  for (const char* bad :
       {"127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "[::1", "::1:5", "127.0.0.1:x"}) {
    const auto a = SocketAddress::ParseHostPort(bad);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(a.status().message().find("expected"), std::string::npos) << bad;
  }
}

TEST(UdpSocketTest, BatchReceivesWithKernelTimestampsAndReplies) {
  auto server = UdpSocket::Bind(*SocketAddress::Resolve("127.0.0.1", 0));
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(server->EnableReceiveTimestamps());
  const SocketAddress server_addr = *server->LocalAddress();
  ASSERT_NE(server_addr.port(), 0);
  auto client = UdpSocket::Connect(server_addr);
  ASSERT_TRUE(client.ok());
  const int64_t before = RealtimeClock::Get().NowNs();
  for (uint8_t i = 0; i < 5; ++i) {
    const uint8_t msg[] = {i, i, i};
    ASSERT_TRUE(client->Send(msg).ok());
  }
  DatagramBatch batch(8, 16);
  std::size_t got = 0;
  while (got < 5) {
    ASSERT_TRUE(WaitReadable(*server));
    auto n = batch.Receive(*server, RealtimeClock::Get());
    ASSERT_TRUE(n.ok());
    for (std::size_t i = 0; i < *n; ++i, ++got) {
      EXPECT_EQ(batch.data(i).size(), 3u);
      EXPECT_EQ(batch.data(i)[0], got);
      EXPECT_EQ(batch.rx_source(i), TimestampSource::kKernel);
      EXPECT_GE(batch.rx_ns(i), before);
      EXPECT_LE(batch.rx_ns(i), RealtimeClock::Get().NowNs());
      EXPECT_EQ(batch.peer(i), *client->LocalAddress());
    }
  }
  SendBatch out(4, 16);
  const uint8_t reply[] = {'o', 'k'};
  auto slot = out.NextBuffer();
  std::copy(std::begin(reply), std::end(reply), slot.begin());
  out.Commit(2, *client->LocalAddress());
  const SendBatch::FlushResult flushed = out.Flush(*server);
  EXPECT_EQ(flushed.sent, 1u);
  EXPECT_EQ(flushed.failed, 0u);
  ASSERT_TRUE(WaitReadable(*client));
  DatagramBatch client_batch(2, 16);
  ASSERT_EQ(*client_batch.Receive(*client, RealtimeClock::Get()), 1u);
  EXPECT_EQ(client_batch.data(0).size(), 2u);
  // No kernel timestamps asked for on the client: the fallback clock is used.
  EXPECT_EQ(client_batch.rx_source(0), TimestampSource::kUser);
}

TEST(UdpSocketTest, FlagsOversizeDatagramsAsTruncated) {
  auto server = UdpSocket::Bind(*SocketAddress::Resolve("127.0.0.1", 0));
  ASSERT_TRUE(server.ok());
  auto client = UdpSocket::Connect(*server->LocalAddress());
  const std::string big(100, 'x');
  ASSERT_TRUE(client->Send({reinterpret_cast<const uint8_t*>(big.data()), big.size()}).ok());
  ASSERT_TRUE(WaitReadable(*server));
  DatagramBatch batch(1, 10);
  ASSERT_EQ(*batch.Receive(*server, RealtimeClock::Get()), 1u);
  EXPECT_TRUE(batch.truncated(0));
  EXPECT_EQ(batch.data(0).size(), 10u);
}

TEST(UdpSocketTest, BindingABusyPortSaysSo) {
  auto first = UdpSocket::Bind(*SocketAddress::Resolve("127.0.0.1", 0));
  ASSERT_TRUE(first.ok());
  auto second = UdpSocket::Bind(*first->LocalAddress());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(second.status().message().find("Address already in use"), std::string::npos);
}

TEST(SocketAddressTest, FirstNonLoopbackIpv4IsAnUpIpv4AddressABindSucceedsOn) {
  auto address = FirstNonLoopbackIpv4();
  if (absl::IsNotFound(address.status())) {
    // A host with loopback only (a bare network namespace): the message says what to do.
    EXPECT_NE(address.status().message().find("--address"), std::string::npos);
    return;
  }
  ASSERT_TRUE(address.ok()) << address.status();
  auto parsed = SocketAddress::Resolve(*address, 0);
  ASSERT_TRUE(parsed.ok()) << *address;
  EXPECT_EQ(parsed->family(), AF_INET);
  EXPECT_FALSE(parsed->IsLoopback()) << *address;
  // It is this host's: a socket binds it.
  EXPECT_TRUE(UdpSocket::Bind(*parsed).ok()) << *address;
}

}  // namespace
}  // namespace lab::net

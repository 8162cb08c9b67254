#include "dataplane/net/tcp_socket.h"

#include <poll.h>
#include <sys/socket.h>

#include <vector>

#include "gtest/gtest.h"

namespace lab::net {
namespace {

SocketAddress Loopback(uint16_t port = 0) { return *SocketAddress::Resolve("127.0.0.1", port); }

bool Wait(int fd, short events, int timeout_ms = 5000) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

TEST(TcpListenerTest, PortZeroPicksAFreePortAndASecondListenerIsRefused) {
  auto a = TcpListener::Listen(Loopback());
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_NE(a->local_address().port(), 0);
  // No SO_REUSEPORT: the same port cannot be shared silently.
  auto b = TcpListener::Listen(a->local_address());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kAlreadyExists) << b.status();
}

TEST(TcpListenerTest, RangeTakesTheFirstFreePortAndNamesAFullRange) {
  auto taken = TcpListener::Listen(Loopback());
  ASSERT_TRUE(taken.ok());
  const uint16_t p = taken->local_address().port();
  // A range starting at a taken port moves on to the next free one.
  auto next = TcpListener::ListenInRange(Loopback(), p, static_cast<uint16_t>(p + 20));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_GT(next->local_address().port(), p);
  auto full = TcpListener::ListenInRange(Loopback(), p, p);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(full.status().message().find(std::to_string(p)), std::string::npos);
  EXPECT_EQ(TcpListener::ListenInRange(Loopback(), 9, 8).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TcpSocketTest, ConnectAcceptReadWriteCloseAndReset) {
  auto listener = TcpListener::Listen(Loopback());
  ASSERT_TRUE(listener.ok());
  auto client = ConnectTcp(listener->local_address(), 5'000'000'000);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(Wait(listener->fd(), POLLIN));
  auto accepted = listener->Accept();
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(accepted->peer, *LocalAddressOf(client->get()));
  EXPECT_EQ(listener->Accept().status().code(), absl::StatusCode::kUnavailable);  // none left

  uint8_t buf[16];
  EXPECT_EQ(ReadSome(accepted->fd.get(), absl::MakeSpan(buf)).kind, IoResult::kWouldBlock);
  const uint8_t hello[] = {'h', 'i'};
  const IoResult w = WriteSome(client->get(), hello);
  ASSERT_EQ(w.kind, IoResult::kData);
  EXPECT_EQ(w.bytes, 2u);
  ASSERT_TRUE(Wait(accepted->fd.get(), POLLIN));
  const IoResult r = ReadSome(accepted->fd.get(), absl::MakeSpan(buf));
  ASSERT_EQ(r.kind, IoResult::kData);
  EXPECT_EQ(r.bytes, 2u);

  // An orderly close is kClosed on the other side.
  ::shutdown(client->get(), SHUT_WR);
  ASSERT_TRUE(Wait(accepted->fd.get(), POLLIN));
  EXPECT_EQ(ReadSome(accepted->fd.get(), absl::MakeSpan(buf)).kind, IoResult::kClosed);

  // Closing with unread data resets; the writer then sees kReset (never SIGPIPE).
  ASSERT_EQ(WriteSome(accepted->fd.get(), hello).kind, IoResult::kData);
  ASSERT_TRUE(Wait(client->get(), POLLIN));
  client->reset();
  IoResult after;
  for (int i = 0; i < 100; ++i) {
    after = WriteSome(accepted->fd.get(), hello);
    if (after.kind != IoResult::kData) break;
    Wait(accepted->fd.get(), POLLIN, 10);
  }
  EXPECT_EQ(after.kind, IoResult::kReset);
  EXPECT_FALSE(after.ToStatus("write").ok());
}

TEST(TcpSocketTest, ConnectToAClosedPortIsUnavailable) {
  uint16_t port;
  {
    auto l = TcpListener::Listen(Loopback());
    ASSERT_TRUE(l.ok());
    port = l->local_address().port();
  }
  auto c = ConnectTcp(Loopback(port), 5'000'000'000);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  EXPECT_NE(c.status().message().find("refused"), std::string::npos) << c.status();
}

TEST(TcpSocketTest, OpenFileLimitIsRaisedToTheHardLimit) {
  EXPECT_GE(RaiseOpenFileLimit(), 1024u);
}

}  // namespace
}  // namespace lab::net

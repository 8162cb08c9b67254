#include "dataplane/net/tcp_socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/errno_status.h"

namespace lab::net {

namespace {

IoResult FromErrno(int err) {
  switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
      return {IoResult::kWouldBlock, 0, 0};
    case ECONNRESET:
    case EPIPE:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return {IoResult::kReset, 0, err};
    default:
      return {IoResult::kError, 0, err};
  }
}

absl::StatusOr<ScopedFd> NewTcpSocket(int family) {
  ScopedFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoToStatus(errno, "socket(SOCK_STREAM)");
  return fd;
}

}  // namespace

absl::Status IoResult::ToStatus(absl::string_view what) const {
  if (kind == kData || kind == kWouldBlock || kind == kClosed) return absl::OkStatus();
  return lab::ErrnoToStatus(err != 0 ? err : EIO, what);
}

IoResult ReadSome(int fd, absl::Span<uint8_t> buffer) {
  for (;;) {
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n > 0) return {IoResult::kData, static_cast<std::size_t>(n), 0};
    if (n == 0) return {buffer.empty() ? IoResult::kData : IoResult::kClosed, 0, 0};
    if (errno == EINTR) continue;
    return FromErrno(errno);
  }
}

IoResult WriteSome(int fd, absl::Span<const uint8_t> data) {
  for (;;) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) return {IoResult::kData, static_cast<std::size_t>(n), 0};
    if (errno == EINTR) continue;
    return FromErrno(errno);
  }
}

absl::StatusOr<TcpListener> TcpListener::Listen(const SocketAddress& local, int backlog) {
  auto fd = NewTcpSocket(local.family());
  if (!fd.ok()) return fd.status();
  const int on = 1;
  if (::setsockopt(fd->get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0) {
    return lab::ErrnoToStatus(errno, "setsockopt(SO_REUSEADDR)");
  }
  if (::bind(fd->get(), local.data(), local.size()) != 0) {
    return lab::ErrnoToStatus(errno, absl::StrCat("bind(tcp ", local.ToString(), ")"));
  }
  if (::listen(fd->get(), backlog) != 0) {
    return lab::ErrnoToStatus(errno, absl::StrCat("listen(", local.ToString(), ")"));
  }
  auto bound = LocalAddressOf(fd->get());
  if (!bound.ok()) return bound.status();
  return TcpListener(std::move(*fd), *bound);
}

absl::StatusOr<TcpListener> TcpListener::ListenInRange(const SocketAddress& local,
                                                       uint16_t first_port, uint16_t last_port,
                                                       int backlog) {
  if (first_port == 0 || last_port < first_port) {
    return absl::InvalidArgumentError(absl::StrCat("port range ", first_port, "-", last_port,
                                                   " is empty: give FIRST-LAST with 0 < FIRST "
                                                   "<= LAST"));
  }
  for (uint32_t port = first_port; port <= last_port; ++port) {
    auto address = SocketAddress::Resolve(local.HostString(), static_cast<uint16_t>(port));
    if (!address.ok()) return address.status();
    auto listener = Listen(*address, backlog);
    if (listener.ok()) return listener;
    if (!absl::IsAlreadyExists(listener.status())) return listener.status();
  }
  return absl::AlreadyExistsError(absl::StrCat("every port in ", first_port, "-", last_port, " on ",
                                               local.HostString(),
                                               " is in use; give another range or port 0"));
}

absl::StatusOr<AcceptedSocket> TcpListener::Accept() const {
  AcceptedSocket out;
  sockaddr_storage peer{};
  socklen_t len = sizeof(peer);
  for (;;) {
    const int fd = ::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      out.fd.reset(fd);
      out.peer = SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&peer), len);
      return out;
    }
    // A connection that was reset while queued: skip it and take the next.
    if (errno == EINTR || errno == ECONNABORTED) continue;
    return lab::ErrnoToStatus(errno, "accept");
  }
}

absl::StatusOr<ScopedFd> StartConnect(const SocketAddress& remote) {
  auto fd = NewTcpSocket(remote.family());
  if (!fd.ok()) return fd.status();
  if (::connect(fd->get(), remote.data(), remote.size()) != 0 && errno != EINPROGRESS) {
    return lab::ErrnoToStatus(errno, absl::StrCat("connect(tcp ", remote.ToString(), ")"));
  }
  return fd;
}

absl::Status FinishConnect(int fd, const SocketAddress& remote) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == 0) return absl::OkStatus();
  return lab::ErrnoToStatus(err, absl::StrCat("connect(tcp ", remote.ToString(), ")"));
}

absl::StatusOr<ScopedFd> ConnectTcp(const SocketAddress& remote, int64_t timeout_ns) {
  auto fd = StartConnect(remote);
  if (!fd.ok()) return fd.status();
  const int64_t deadline = MonotonicNowNs() + timeout_ns;
  for (;;) {
    pollfd p{fd->get(), POLLOUT, 0};
    const int64_t left_ms = (deadline - MonotonicNowNs() + 999'999) / 1'000'000;
    if (left_ms <= 0) {
      return absl::DeadlineExceededError(absl::StrCat("connect(tcp ", remote.ToString(),
                                                      "): no answer within ",
                                                      timeout_ns / 1'000'000, " ms"));
    }
    const int rc = ::poll(&p, 1, static_cast<int>(left_ms));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return ErrnoToStatus(errno, "poll(connect)");
    if (rc == 0) continue;
    if (absl::Status s = FinishConnect(fd->get(), remote); !s.ok()) return s;
    return fd;
  }
}

absl::Status SetNoDelay(int fd, bool on) {
  const int value = on ? 1 : 0;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, sizeof(value)) != 0) {
    return lab::ErrnoToStatus(errno, "setsockopt(TCP_NODELAY)");
  }
  return absl::OkStatus();
}

absl::StatusOr<SocketAddress> LocalAddressOf(int fd) {
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    return lab::ErrnoToStatus(errno, "getsockname");
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&local), len);
}

uint64_t RaiseOpenFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur;
}

}  // namespace lab::net

#include "dataplane/net/udp_socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace lab::net {

namespace {

// Room for one SCM_TIMESTAMPNS (and a little more the kernel might add).
constexpr std::size_t kControlBytes = CMSG_SPACE(sizeof(timespec)) + 64;

absl::StatusOr<ScopedFd> NewUdpSocket(int family) {
  ScopedFd fd(::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoToStatus(errno, "socket(SOCK_DGRAM)");
  return fd;
}

}  // namespace

const char* TimestampSourceName(TimestampSource source) {
  return source == TimestampSource::kKernel ? "kernel" : "user";
}

absl::StatusOr<UdpSocket> UdpSocket::Bind(const SocketAddress& local) {
  auto fd = NewUdpSocket(local.family());
  if (!fd.ok()) return fd.status();
  if (::bind(fd->get(), local.data(), local.size()) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("bind(", local.ToString(), ")"));
  }
  return UdpSocket(std::move(*fd));
}

absl::StatusOr<UdpSocket> UdpSocket::Connect(const SocketAddress& remote) {
  auto fd = NewUdpSocket(remote.family());
  if (!fd.ok()) return fd.status();
  if (::connect(fd->get(), remote.data(), remote.size()) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("connect(", remote.ToString(), ")"));
  }
  return UdpSocket(std::move(*fd));
}

bool UdpSocket::EnableReceiveTimestamps() {
  const int on = 1;
  rx_timestamps_ = ::setsockopt(fd_.get(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) == 0;
  return rx_timestamps_;
}

absl::Status UdpSocket::SetBlockingReceive(int64_t timeout_ns) {
  const int flags = ::fcntl(fd_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd_.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return ErrnoToStatus(errno, "fcntl(O_NONBLOCK)");
  }
  const timeval tv{static_cast<time_t>(timeout_ns / 1'000'000'000),
                   static_cast<suseconds_t>(timeout_ns % 1'000'000'000 / 1000)};
  if (::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
    return ErrnoToStatus(errno, "setsockopt(SO_RCVTIMEO)");
  }
  return absl::OkStatus();
}

void UdpSocket::ShutdownReceive() {
  // On an unconnected UDP socket this reports ENOTCONN yet still marks the socket shut for
  // reading and wakes its readers, which is all we want.
  ::shutdown(fd_.get(), SHUT_RD);
}

absl::Status UdpSocket::SetBufferSizes(int receive_bytes, int send_bytes) {
  if (::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &receive_bytes, sizeof(receive_bytes)) != 0) {
    return ErrnoToStatus(errno, "setsockopt(SO_RCVBUF)");
  }
  if (::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUF, &send_bytes, sizeof(send_bytes)) != 0) {
    return ErrnoToStatus(errno, "setsockopt(SO_SNDBUF)");
  }
  return absl::OkStatus();
}

absl::StatusOr<SocketAddress> UdpSocket::LocalAddress() const {
  SocketAddress addr;
  sockaddr_storage storage{};
  socklen_t len = sizeof(storage);
  if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&storage), &len) != 0) {
    return ErrnoToStatus(errno, "getsockname");
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&storage), len);
}

absl::Status UdpSocket::Send(absl::Span<const uint8_t> data) {
  if (::send(fd_.get(), data.data(), data.size(), MSG_DONTWAIT) < 0) {
    return ErrnoToStatus(errno, "send");
  }
  return absl::OkStatus();
}

absl::Status UdpSocket::SendTo(absl::Span<const uint8_t> data, const SocketAddress& peer) {
  if (::sendto(fd_.get(), data.data(), data.size(), MSG_DONTWAIT, peer.data(), peer.size()) < 0) {
    return ErrnoToStatus(errno, absl::StrCat("sendto(", peer.ToString(), ")"));
  }
  return absl::OkStatus();
}

DatagramBatch::DatagramBatch(std::size_t capacity, std::size_t max_datagram_bytes)
    : max_bytes_(max_datagram_bytes),
      buffers_(capacity * max_datagram_bytes),
      control_(capacity * kControlBytes),
      peers_(capacity),
      iovecs_(capacity),
      headers_(capacity),
      rx_ns_(capacity),
      rx_source_(capacity, TimestampSource::kUser) {}

absl::StatusOr<std::size_t> DatagramBatch::Receive(const UdpSocket& socket, const Clock& fallback,
                                                   bool wait) {
  count_ = 0;
  for (std::size_t i = 0; i < headers_.size(); ++i) {
    iovecs_[i] = {buffers_.data() + i * max_bytes_, max_bytes_};
    msghdr& h = headers_[i].msg_hdr;
    h = {};
    h.msg_name = &peers_[i];
    h.msg_namelen = sizeof(sockaddr_storage);
    h.msg_iov = &iovecs_[i];
    h.msg_iovlen = 1;
    h.msg_control = control_.data() + i * kControlBytes;
    h.msg_controllen = kControlBytes;
    headers_[i].msg_len = 0;
  }
  const int n = ::recvmmsg(socket.fd(), headers_.data(), headers_.size(),
                           wait ? MSG_WAITFORONE : MSG_DONTWAIT, nullptr);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return ErrnoToStatus(errno, "recvmmsg");
  }
  const int64_t user_ns = fallback.NowNs();
  for (int i = 0; i < n; ++i) {
    rx_ns_[i] = user_ns;
    rx_source_[i] = TimestampSource::kUser;
    msghdr& h = headers_[i].msg_hdr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts;
        std::memcpy(&ts, CMSG_DATA(c), sizeof(ts));
        rx_ns_[i] = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
        rx_source_[i] = TimestampSource::kKernel;
      }
    }
  }
  count_ = static_cast<std::size_t>(n);
  return count_;
}

absl::Span<const uint8_t> DatagramBatch::data(std::size_t i) const {
  const std::size_t len = std::min<std::size_t>(headers_[i].msg_len, max_bytes_);
  return {buffers_.data() + i * max_bytes_, len};
}

SocketAddress DatagramBatch::peer(std::size_t i) const {
  return SocketAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&peers_[i]),
                                     headers_[i].msg_hdr.msg_namelen);
}

SendBatch::SendBatch(std::size_t capacity, std::size_t max_datagram_bytes)
    : max_bytes_(max_datagram_bytes),
      buffers_(capacity * max_datagram_bytes),
      peers_(capacity),
      iovecs_(capacity),
      headers_(capacity) {}

absl::Span<uint8_t> SendBatch::NextBuffer() {
  return {buffers_.data() + count_ * max_bytes_, max_bytes_};
}

void SendBatch::Commit(std::size_t length, const SocketAddress& peer) {
  peers_[count_] = peer;
  iovecs_[count_] = {buffers_.data() + count_ * max_bytes_, length};
  msghdr& h = headers_[count_].msg_hdr;
  h = {};
  h.msg_name = const_cast<sockaddr*>(peers_[count_].data());
  h.msg_namelen = peers_[count_].size();
  h.msg_iov = &iovecs_[count_];
  h.msg_iovlen = 1;
  ++count_;
}

SendBatch::FlushResult SendBatch::Flush(const UdpSocket& socket) {
  FlushResult result;
  std::size_t next = 0;
  while (next < count_) {
    const int n = ::sendmmsg(socket.fd(), headers_.data() + next, count_ - next, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      // Drop the datagram the kernel refused (full buffer, unreachable peer) and go on.
      result.last_error = ErrnoToStatus(errno, "sendmmsg");
      ++result.failed;
      ++next;
      continue;
    }
    result.sent += static_cast<std::size_t>(n);
    next += static_cast<std::size_t>(n);
  }
  count_ = 0;
  return result;
}

}  // namespace lab::net

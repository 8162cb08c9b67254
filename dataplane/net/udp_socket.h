// UDP sockets with batched I/O (recvmmsg/sendmmsg) and kernel receive timestamps.
//
// Threading: a UdpSocket may be used by one thread at a time, or by one sending and one
// receiving thread at once (the kernel serialises them; the object holds no mutable state);
// DatagramBatch and SendBatch are per-thread scratch buffers. Errors come back as Status (errno
// converted in one place).
#ifndef DATAPLANE_NET_UDP_SOCKET_H_
#define DATAPLANE_NET_UDP_SOCKET_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "dataplane/net/scoped_fd.h"
#include "dataplane/net/socket_address.h"

namespace lab::net {

// Where a receive timestamp came from.
enum class TimestampSource { kKernel, kUser };
const char* TimestampSourceName(TimestampSource source);  // "kernel" / "user"

class UdpSocket {
 public:
  // A non-blocking, close-on-exec UDP socket bound to `local` (port 0 picks a free port).
  static absl::StatusOr<UdpSocket> Bind(const SocketAddress& local);
  // A non-blocking UDP socket bound to an ephemeral port and connected to `remote`.
  static absl::StatusOr<UdpSocket> Connect(const SocketAddress& remote);

  // Asks the kernel to stamp every received datagram with CLOCK_REALTIME (SO_TIMESTAMPNS).
  // Returns false where the kernel refuses; receives then fall back to user-space stamps.
  bool EnableReceiveTimestamps();
  bool receive_timestamps_enabled() const { return rx_timestamps_; }

  // Makes receives wait for data, at most `timeout_ns` (> 0) each; a timed-out receive
  // returns nothing. Sends stay non-blocking (MSG_DONTWAIT).
  absl::Status SetBlockingReceive(int64_t timeout_ns);
  // Wakes a thread blocked in a receive on an empty socket (shutdown(SHUT_RD)); later
  // receives on an empty socket return at once with nothing, though datagrams already
  // queued (or still arriving) are delivered. Thread-safe; used to stop a receive loop,
  // which must check its own stop flag after each receive.
  void ShutdownReceive();

  // Socket buffer sizes in bytes (best effort: the kernel may cap them).
  absl::Status SetBufferSizes(int receive_bytes, int send_bytes);

  absl::StatusOr<SocketAddress> LocalAddress() const;

  // Sends one datagram on a connected socket. Unavailable when the socket buffer is full.
  absl::Status Send(absl::Span<const uint8_t> data);
  // Sends one datagram to `peer`.
  absl::Status SendTo(absl::Span<const uint8_t> data, const SocketAddress& peer);

  int fd() const { return fd_.get(); }

 private:
  explicit UdpSocket(ScopedFd fd) : fd_(std::move(fd)) {}
  ScopedFd fd_;
  bool rx_timestamps_ = false;
};

// Fixed buffers for receiving up to `capacity` datagrams with one recvmmsg call.
class DatagramBatch {
 public:
  // `max_datagram_bytes`: longer datagrams are truncated and flagged (truncated()).
  DatagramBatch(std::size_t capacity, std::size_t max_datagram_bytes);
  DatagramBatch(const DatagramBatch&) = delete;
  DatagramBatch& operator=(const DatagramBatch&) = delete;

  // Receives what is waiting without blocking; returns how many (0 when none). With `wait`
  // on a socket set up by SetBlockingReceive(), first waits for one datagram (or the
  // timeout). Datagrams without a kernel timestamp get `fallback.NowNs()`, read once right
  // after the call.
  absl::StatusOr<std::size_t> Receive(const UdpSocket& socket, const Clock& fallback,
                                      bool wait = false);

  std::size_t size() const { return count_; }
  std::size_t capacity() const { return headers_.size(); }
  absl::Span<const uint8_t> data(std::size_t i) const;
  // True when datagram i was longer than the buffer (its data is cut).
  bool truncated(std::size_t i) const { return (headers_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0; }
  SocketAddress peer(std::size_t i) const;
  int64_t rx_ns(std::size_t i) const { return rx_ns_[i]; }
  TimestampSource rx_source(std::size_t i) const { return rx_source_[i]; }

 private:
  std::size_t max_bytes_;
  std::size_t count_ = 0;
  std::vector<uint8_t> buffers_;
  std::vector<uint8_t> control_;
  std::vector<sockaddr_storage> peers_;
  std::vector<iovec> iovecs_;
  std::vector<mmsghdr> headers_;
  std::vector<int64_t> rx_ns_;
  std::vector<TimestampSource> rx_source_;
};

// Datagrams queued for one sendmmsg call. The caller copies bytes in with Add().
class SendBatch {
 public:
  SendBatch(std::size_t capacity, std::size_t max_datagram_bytes);
  SendBatch(const SendBatch&) = delete;
  SendBatch& operator=(const SendBatch&) = delete;

  bool full() const { return count_ == headers_.size(); }
  std::size_t size() const { return count_; }
  // A writable slot of max_datagram_bytes for the next datagram; commit it with Commit().
  // Must not be called when full().
  absl::Span<uint8_t> NextBuffer();
  void Commit(std::size_t length, const SocketAddress& peer);

  struct FlushResult {
    std::size_t sent = 0;
    std::size_t failed = 0;   // refused by the kernel (dropped, not retried)
    absl::Status last_error;  // why the last refused datagram failed
  };
  // Sends everything queued (continuing after partial sends); the batch is empty afterwards.
  FlushResult Flush(const UdpSocket& socket);

 private:
  std::size_t max_bytes_;
  std::size_t count_ = 0;
  std::vector<uint8_t> buffers_;
  std::vector<SocketAddress> peers_;
  std::vector<iovec> iovecs_;
  std::vector<mmsghdr> headers_;
};

}  // namespace lab::net

#endif  // DATAPLANE_NET_UDP_SOCKET_H_

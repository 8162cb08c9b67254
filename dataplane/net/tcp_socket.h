// TCP sockets: listening (a given port, any free port, or the first free port of a range),
// connecting (blocking with a deadline, or non-blocking for event loops) and non-blocking
// I/O whose hot path returns a small IoResult instead of allocating a Status; errno becomes a
// Status only through IoResult::ToStatus() / common/errno_status.h.
//
// Every descriptor made here is non-blocking and close-on-exec. Writes use MSG_NOSIGNAL, so a
// peer that vanished is an IoResult::kReset, never SIGPIPE.
#ifndef DATAPLANE_NET_TCP_SOCKET_H_
#define DATAPLANE_NET_TCP_SOCKET_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "dataplane/net/scoped_fd.h"
#include "dataplane/net/socket_address.h"

namespace lab::net {

// The outcome of one non-blocking read or write.
struct IoResult {
  enum Kind {
    kData,        // `bytes` > 0 moved
    kWouldBlock,  // nothing to read / no room to write now (EAGAIN)
    kClosed,      // read: the peer closed its side (orderly FIN)
    kReset,       // the peer reset or vanished (ECONNRESET, EPIPE, ETIMEDOUT)
    kError,       // anything else; `err` holds errno
  };
  Kind kind = kData;
  std::size_t bytes = 0;
  int err = 0;

  // OK for kData/kWouldBlock/kClosed; otherwise the errno as a Status prefixed by `what`.
  absl::Status ToStatus(absl::string_view what) const;
};

IoResult ReadSome(int fd, absl::Span<uint8_t> buffer);
IoResult WriteSome(int fd, absl::Span<const uint8_t> data);

// A socket accepted by TcpListener::Accept.
struct AcceptedSocket {
  ScopedFd fd;
  SocketAddress peer;
};

class TcpListener {
 public:
  // Listens on `local` (port 0: a free port chosen by the kernel). SO_REUSEADDR is set (so a
  // restart is not refused by old TIME_WAIT connections) but never SO_REUSEPORT, so a second
  // listener on the same port fails with AlreadyExists.
  static absl::StatusOr<TcpListener> Listen(const SocketAddress& local, int backlog = 4096);
  // Listens on the first free port in [first_port, last_port] of `local`'s address (its port
  // is ignored). InvalidArgument when the range is empty; AlreadyExists naming the range when
  // every port is taken.
  static absl::StatusOr<TcpListener> ListenInRange(const SocketAddress& local, uint16_t first_port,
                                                   uint16_t last_port, int backlog = 4096);

  // Accepts one waiting connection (non-blocking, close-on-exec). Unavailable when none is
  // waiting; ResourceExhausted when out of descriptors (the connection stays queued).
  absl::StatusOr<AcceptedSocket> Accept() const;

  const SocketAddress& local_address() const { return local_; }
  int fd() const { return fd_.get(); }

 private:
  TcpListener(ScopedFd fd, SocketAddress local) : fd_(std::move(fd)), local_(local) {}
  ScopedFd fd_;
  SocketAddress local_;
};

// Starts a non-blocking connect to `remote`: the socket is returned at once (connected or
// in progress); wait for it to be writable, then call FinishConnect.
absl::StatusOr<ScopedFd> StartConnect(const SocketAddress& remote);
// The result of a connect started by StartConnect (SO_ERROR): OK, or e.g. Unavailable
// "connection refused".
absl::Status FinishConnect(int fd, const SocketAddress& remote);
// Connects to `remote`, waiting at most `timeout_ns` (DeadlineExceeded beyond). The socket
// stays non-blocking.
absl::StatusOr<ScopedFd> ConnectTcp(const SocketAddress& remote, int64_t timeout_ns);

// TCP_NODELAY on or off.
absl::Status SetNoDelay(int fd, bool on);
// The local address a socket is bound to.
absl::StatusOr<SocketAddress> LocalAddressOf(int fd);
// Raises this process's open-file limit to its hard limit (best effort) and returns the new
// soft limit; servers and load clients holding thousands of connections call it first.
uint64_t RaiseOpenFileLimit();

}  // namespace lab::net

#endif  // DATAPLANE_NET_TCP_SOCKET_H_

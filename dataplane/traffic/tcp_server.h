// A TCP traffic server with two engines and three modes.
//
// Engines:
//  - kEpoll: `threads` event loops (default 1), edge-triggered epoll, one shared read buffer
//    per loop; a connection costs ~200 bytes of user memory unless a write is pending (echo
//    mode keeps the unsent remainder until the peer reads it, and stops reading meanwhile, so
//    a slow reader cannot make the server buffer without bound).
//  - kThreads: the seed's thread-per-client design done safely: a fixed pool of `threads`
//    workers (default 256) started up front, each serving one connection at a time with
//    blocking-style I/O. No thread is created per connection, and a connection never waits
//    unserved: the cap is min(max_connections, threads), so when every worker is busy a new
//    connection is refused (below) rather than queued.
//
// Modes: echo (every byte back), sink (read and discard), source (write a pattern until the
// peer closes).
//
// The cap: at most `max_connections` connections are open (served or queued). Beyond it a
// connection is accepted and closed at once (an orderly FIN, or a reset if the client had
// already sent data), so the client learns at once instead of hanging in the backlog; it is
// counted as `refused` and logged (at most one line a second).
//
// Threading: Start() returns a running server; counters() and Connections() may be called from
// any thread; Stop() (idempotent, also run by the destructor) closes the listener and every
// connection and joins all threads.
#ifndef DATAPLANE_TRAFFIC_TCP_SERVER_H_
#define DATAPLANE_TRAFFIC_TCP_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dataplane/net/socket_address.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace lab::traffic {

enum class TcpMode { kEcho, kSink, kSource };
enum class TcpEngine { kEpoll, kThreads };

const char* TcpModeName(TcpMode mode);        // "echo", "sink", "source"
const char* TcpEngineName(TcpEngine engine);  // "epoll", "threads"
// InvalidArgument listing the accepted names.
absl::StatusOr<TcpMode> ParseTcpMode(absl::string_view name);
absl::StatusOr<TcpEngine> ParseTcpEngine(absl::string_view name);

struct TcpServerOptions {
  // Port 0: any free port. With port_last > 0: the first free port in [listen.port(),
  // port_last].
  net::SocketAddress listen;
  uint16_t port_last = 0;
  TcpMode mode = TcpMode::kEcho;
  TcpEngine engine = TcpEngine::kEpoll;
  int max_connections = 10000;       // >= 1
  int threads = 0;                   // 0: the engine's default (epoll 1, threads 64)
  std::size_t io_bytes = 64 * 1024;  // read/write chunk per call
  bool allow_non_loopback = false;   // --insecure

  // InvalidArgument naming the field and the accepted range.
  absl::Status Validate() const;
};

// Totals since Start(). `active` counts open connections (served and queued).
struct TcpServerCounters {
  uint64_t accepted = 0;  // connections taken in (not counting refused ones)
  uint64_t refused = 0;   // closed at once because of the cap
  uint64_t closed = 0;    // ended (by the peer, a reset, an error or Stop)
  uint64_t resets = 0;    // ended by a reset or a vanished peer
  uint64_t errors = 0;    // other socket errors (accept failures included)
  uint64_t active = 0;
  uint64_t peak_active = 0;
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
};

// One open connection.
struct TcpConnectionInfo {
  uint64_t id = 0;
  net::SocketAddress peer;
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
};

class TcpServer {
 public:
  // Binds and starts serving. InvalidArgument for bad options or a non-loopback address
  // without allow_non_loopback; AlreadyExists when the port (or every port of the range) is
  // taken.
  // `logger` (nullptr: none) gets the listening line, refusals (at most one line a second) and
  // socket errors.
  static absl::StatusOr<std::unique_ptr<TcpServer>> Start(
      const TcpServerOptions& options, std::shared_ptr<spdlog::logger> logger = nullptr);
  virtual ~TcpServer() = default;

  virtual const net::SocketAddress& local_address() const = 0;
  virtual TcpServerCounters counters() const = 0;
  virtual std::vector<TcpConnectionInfo> Connections() const = 0;
  virtual void Stop() = 0;
};

// {"accepted":…, "refused":…, "closed":…, "resets":…, "errors":…, "active":…,
//  "peak_connections":…, "bytes_received":…, "bytes_sent":…}
nlohmann::json TcpServerCountersToJson(const TcpServerCounters& counters);

}  // namespace lab::traffic

#endif  // DATAPLANE_TRAFFIC_TCP_SERVER_H_

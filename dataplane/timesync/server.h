// The time server on a UDP socket: one single-threaded receive loop, batched receive and send
// (recvmmsg blocking for the first datagram of a batch, sendmmsg for the replies), kernel
// receive timestamps (SO_TIMESTAMPNS) with a user-space fallback.
//
// The loop blocks in recvmmsg rather than in epoll: with a single socket, epoll would add a
// system call per batch (about 8 % of the server's CPU per request on loopback).
#ifndef DATAPLANE_TIMESYNC_SERVER_H_
#define DATAPLANE_TIMESYNC_SERVER_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "dataplane/net/udp_socket.h"
#include "dataplane/timesync/server_core.h"
#include "spdlog/logger.h"

namespace lab::timesync {

struct TimeServerOptions {
  std::string bind_address = "127.0.0.1";
  uint16_t port = 12345;  // 0 picks a free port (see local_address())
  // The server authenticates nobody, so Create() refuses a non-loopback address unless
  // this is set (labnet's --insecure).
  bool allow_non_loopback = false;
  // Longest a receive blocks; an idle server wakes this often to log and to re-check a
  // Stop() (which also wakes it at once).
  int64_t idle_wake_ns = 200'000'000;
  std::size_t batch_size = 64;                 // datagrams per recvmmsg/sendmmsg call
  bool kernel_timestamps = true;               // false forces user-space receive stamps
  int64_t stats_interval_ns = 10'000'000'000;  // log counters this often when they change
  ServerCoreOptions core;
};

class TimeServer {
 public:
  // Binds the socket; the server answers nothing until Run(). `clock` (for t3 and fallback
  // receive stamps) must be CLOCK_REALTIME-compatible and outlive the server.
  // InvalidArgument for bad options (including a non-loopback address without
  // allow_non_loopback); the socket's error (e.g. AlreadyExists for a busy port) otherwise.
  static absl::StatusOr<std::unique_ptr<TimeServer>> Create(
      const TimeServerOptions& options, std::shared_ptr<spdlog::logger> logger,
      const Clock& clock = RealtimeClock::Get());

  // Serves until Stop(). Returns an error only when the socket fails beyond recovery.
  // Call at most once.
  absl::Status Run();
  // Makes Run() return promptly (it also returns at once if called later). Thread-safe;
  // safe to call more than once.
  void Stop();

  const net::SocketAddress& local_address() const { return local_; }
  // Kernel when SO_TIMESTAMPNS was granted (individual datagrams may still fall back).
  net::TimestampSource timestamp_source() const;
  // A copy of the counters as of the last handled batch. Thread-safe.
  ServerCounters counters() const;
  std::size_t active_clients() const;
  // Blocks until `done(counters())` holds or `timeout_ns` passes; returns whether it held.
  // The counters are re-checked each time the event loop publishes them. Thread-safe.
  bool WaitForCounters(const std::function<bool(const ServerCounters&)>& done,
                       int64_t timeout_ns) const;

 private:
  TimeServer(const TimeServerOptions& options, net::UdpSocket socket,
             std::shared_ptr<spdlog::logger> logger, const Clock& clock);
  void LogCounters(const ServerCounters& counters);

  TimeServerOptions options_;
  net::UdpSocket socket_;
  std::atomic<bool> stop_{false};
  std::shared_ptr<spdlog::logger> logger_;
  const Clock& clock_;
  net::SocketAddress local_;
  ServerCore core_;  // used by the Run() thread only

  void Publish();

  mutable std::mutex mu_;
  mutable std::condition_variable published_cv_;
  ServerCounters published_;
  std::size_t published_clients_ = 0;
};

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_SERVER_H_

// TCP traffic clients: N connections spread over M threads (each thread one epoll loop), in
// one of two modes:
//  - kRequestResponse ("rr"): each connection sends a request of `length` bytes and waits for
//    the same number of bytes back (the server echoes), then sends the next: closed loop, one
//    request in flight per connection. The time from the request's first byte written to the
//    response's last byte read is its latency. "Simple" is connections = threads = 1.
//  - kBulk: each connection writes `length`-byte chunks as fast as the socket takes them (to a
//    sink server), or with `reverse` only reads (from a source server).
//
// The run ends after `duration_ns`, after `requests` requests in all (rr), or when `cancel`
// becomes true; connections are then closed in an orderly way (shutdown, then drain), so the
// server sees a clean end. Figures count from the moment every connect is over (succeeded,
// failed or timed out), as iperf3's do, to the moment the client stops moving data.
#ifndef DATAPLANE_TRAFFIC_TCP_CLIENT_H_
#define DATAPLANE_TRAFFIC_TCP_CLIENT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dataplane/net/socket_address.h"
#include "dataplane/stats/histogram.h"
#include "dataplane/traffic/interval.h"
#include "nlohmann/json.hpp"

namespace lab::traffic {

enum class TcpClientMode { kRequestResponse, kBulk };
const char* TcpClientModeName(TcpClientMode mode);  // "rr", "bulk"
absl::StatusOr<TcpClientMode> ParseTcpClientMode(absl::string_view name);

struct TcpClientOptions {
  net::SocketAddress server;
  TcpClientMode mode = TcpClientMode::kRequestResponse;
  int connections = 1;  // [1, 1000000]
  int threads = 1;      // [1, 1024], at most `connections`
  int64_t duration_ns = 10'000'000'000;
  uint64_t requests = 0;   // rr: stop after this many in all (0: by duration only)
  std::size_t length = 0;  // 0: rr 64 bytes, bulk 128 KiB
  bool reverse = false;    // bulk: receive from a source server instead of sending
  int64_t connect_timeout_ns = 5'000'000'000;
  int64_t interval_ns = 0;  // IntervalSample every this long (0: none)

  // InvalidArgument naming the field and the accepted range.
  absl::Status Validate() const;
  std::size_t effective_length() const;
};

struct TcpClientReport {
  TcpClientMode mode = TcpClientMode::kRequestResponse;
  bool reverse = false;
  std::string server;
  std::size_t length = 0;
  int threads = 0;
  int connections_requested = 0;
  int connections_established = 0;
  uint64_t connect_errors = 0;  // refused, timed out, unreachable
  uint64_t resets = 0;          // reset by the server or the network
  // Orderly close by the server before the end (e.g. its cap), as seen by a client that reads;
  // a client that only writes (bulk send) sees such a close as a reset.
  uint64_t closed_by_server = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t requests = 0;  // rr: responses received in full
  double seconds = 0;
  bool interrupted = false;  // `cancel` ended the run
  std::string first_error;   // the first connect or socket error, for the user
  stats::Histogram latency_us{stats::LatencyEdgesUs()};
  std::vector<IntervalSample> intervals;

  uint64_t errors() const { return connect_errors + resets + closed_by_server; }
  // Of the direction the run measures: bytes received in reverse bulk, else bytes sent.
  double bits_per_second() const;
  double requests_per_second() const;
};

// Runs the client to its end. Unavailable (naming the server and the first error) when not
// one connection could be established; InvalidArgument for bad options. `on_interval` (may be
// empty) is called from the calling thread every interval_ns. Per-interval samples are also
// kept in the report.
absl::StatusOr<TcpClientReport> RunTcpClient(const TcpClientOptions& options,
                                             const std::atomic<bool>* cancel = nullptr,
                                             const IntervalCallback& on_interval = {});

// iperf3-like JSON: {"mode","server","reverse","length","threads",
//   "connections":{"requested","established","connect_errors","resets","closed_by_server"},
//   "seconds","bytes_sent","bytes_received","bits_per_second","requests",
//   "requests_per_second","latency_us":{"p50","p99","p999","min","max","mean","count"},
//   "latency_histogram":{"edges":"latency_us_v1","buckets":[[index,count],…]},
//   "errors","first_error","interrupted","intervals":[…]}
// Latency fields are null when no request completed.
nlohmann::json TcpClientReportToJson(const TcpClientReport& report);

}  // namespace lab::traffic

#endif  // DATAPLANE_TRAFFIC_TCP_CLIENT_H_

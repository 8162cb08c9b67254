// The UDP traffic client: sends traffic datagrams (udp_flow.h) on one connected socket to an
// echo server (round trips, loss, reordering, duplicates, jitter) or a sink (one_way: the
// server accounts, the client only sends).
//
// Modes:
//   simple (rate_pps unset): stop-and-wait. Send one datagram, wait for its echo (at most
//          timeout_ns), then send the next. One thread. Every round trip is one latency sample.
//   fast   (rate_pps set): a sender thread (sendmmsg, batch_size at a time) and a receiver
//          thread (recvmmsg) on the same socket. rate_pps 0 sends as fast as the socket
//          accepts; rate_pps > 0 paces with a Pacer whose burst is batch_size (late slots are
//          skipped, counted in skipped_slots, never sent as a catch-up burst).
#ifndef DATAPLANE_TRAFFIC_UDP_CLIENT_H_
#define DATAPLANE_TRAFFIC_UDP_CLIENT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "dataplane/net/socket_address.h"
#include "dataplane/stats/histogram.h"
#include "dataplane/traffic/interval.h"
#include "nlohmann/json.hpp"

namespace lab::traffic {

struct UdpClientOptions {
  net::SocketAddress server;  // required
  // Bytes per datagram, header included: [kUdpHeaderSize (28), kUdpMaxDatagramSize (65507)].
  std::size_t length = 64;
  // Unset: simple mode. 0: fast mode, as fast as possible. > 0: fast mode at this many
  // datagrams per second. Must be finite and >= 0.
  std::optional<double> rate_pps;
  uint64_t count = 0;       // datagrams to send; 0: no limit
  int64_t duration_ns = 0;  // how long to send; 0: no limit (with count 0: until cancelled)
  // Simple mode: how long to wait for each echo. Fast mode: how long to wait for echoes after
  // the last send (the receiver stops earlier once every datagram came back). >= 0.
  int64_t timeout_ns = 1'000'000'000;
  // The server is a sink: no echoes are expected and no loss is computed here (the server
  // reports it). Needs fast mode (rate_pps set): InvalidArgument otherwise.
  bool one_way = false;
  int64_t interval_ns = 0;      // IntervalSample period; 0: no intervals
  std::size_t batch_size = 64;  // datagrams per sendmmsg / recvmmsg, [1, 1024]
  uint32_t flow_id = 0;         // 0: a random non-zero id
  // Stamp echoes with the kernel's receive time (SO_TIMESTAMPNS) when granted; otherwise
  // with `clock` right after the receive call.
  bool kernel_timestamps = true;
};

struct UdpClientReport {
  std::string mode;  // "simple" or "fast"
  bool one_way = false;
  net::SocketAddress server;
  uint32_t flow_id = 0;
  std::size_t length = 0;
  std::optional<double> rate_pps;
  uint64_t sent = 0;  // datagrams the kernel accepted
  uint64_t bytes_sent = 0;
  uint64_t received = 0;      // unique echoes
  uint64_t lost_packets = 0;  // sent - received (0 when one_way)
  double lost_percent = 0;    // of sent
  uint64_t out_of_order = 0;
  uint64_t duplicates = 0;
  double jitter_ms = 0;        // RFC 3550 interarrival jitter of the echoes
  double seconds = 0;          // from the first send to the end of sending
  double bits_per_second = 0;  // bytes_sent * 8 / seconds
  double packets_per_second = 0;
  double received_packets_per_second = 0;
  stats::Histogram latency_us{stats::LatencyEdgesUs()};  // round trips of unique echoes
  uint64_t send_errors = 0;  // datagrams the kernel refused (EAGAIN, ...), not in sent
  // Echoes that were not ours: decode reasons ("too_short", "bad_magic", "bad_version",
  // "reserved_not_zero") and "wrong_flow", "wrong_length", "truncated".
  std::map<std::string, uint64_t> malformed;
  uint64_t errors = 0;  // send_errors + every malformed echo
  uint64_t skipped_slots = 0;
  bool interrupted = false;  // `cancel` was set; the figures cover what happened until then
  std::vector<IntervalSample> intervals;
};

// Runs a client until count or duration is reached (then waits for the echoes), or
// `cancel` (may be null) becomes true. `clock` stamps sends (and receives without kernel
// stamps) and times the run; it must be CLOCK_REALTIME-compatible. `on_interval` (may be
// empty) is called once per interval_ns, in order, from one of the client's threads; every
// sample is also in the report.
//
// Errors: InvalidArgument for bad options; Unavailable (naming the server) when the server
// refused everything (ICMP port unreachable: ECONNREFUSED on the connected socket) and no
// echo ever arrived, which in one_way mode means any refusal; the socket's error when it
// cannot be opened or fails beyond recovery. A cancelled run is not an error.
absl::StatusOr<UdpClientReport> RunUdpClient(const UdpClientOptions& options, const Clock& clock,
                                             const std::atomic<bool>* cancel,
                                             const IntervalCallback& on_interval);

// {"mode":…, "one_way":…, "server":"HOST:PORT", "flow_id":…, "length":…, "rate_pps":…|null,
//  "sent":…, "bytes_sent":…, "received":…, "lost_packets":…|null, "lost_percent":…|null,
//  "out_of_order":…, "duplicates":…, "jitter_ms":…|null, "seconds":…, "bits_per_second":…,
//  "packets_per_second":…, "received_packets_per_second":…,
//  "latency_us": {"count":…, "p50":…, "p99":…, "p999":…, "min":…, "max":…, "mean":…}
//  (null values without echoes), "errors":…, "send_errors":…, "malformed": {reason: count},
//  "skipped_slots":…, "interrupted":…, "intervals": [IntervalToJson, …]}
// lost_packets, lost_percent and jitter_ms are null in one_way mode.
nlohmann::json UdpClientReportToJson(const UdpClientReport& report);

}  // namespace lab::traffic

#endif  // DATAPLANE_TRAFFIC_UDP_CLIENT_H_

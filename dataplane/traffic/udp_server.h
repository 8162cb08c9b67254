// The UDP traffic server: one socket, one receive thread blocking in recvmmsg (batches of
// `batch_size`), in one of two modes:
//   echo: every datagram goes back to its sender unchanged (sendmmsg), so the client measures
//         round trips and loss;
//   sink: datagrams are decoded (udp_flow.h) and accounted per flow (peer address + flow id):
//         received, loss, reordering, duplicates and RFC 3550 jitter; nothing is sent back.
// Undecodable datagrams (sink) are counted by reason and dropped; datagrams longer than
// max_datagram_bytes are counted as truncated and dropped in both modes.
#ifndef DATAPLANE_TRAFFIC_UDP_SERVER_H_
#define DATAPLANE_TRAFFIC_UDP_SERVER_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/clock.h"
#include "dataplane/net/socket_address.h"
#include "dataplane/net/udp_socket.h"
#include "dataplane/traffic/udp_flow.h"
#include "nlohmann/json.hpp"

namespace lab::traffic {

enum class UdpServerMode { kEcho, kSink };
absl::string_view UdpServerModeName(UdpServerMode mode);  // "echo" / "sink"
// "echo" or "sink"; InvalidArgument otherwise.
absl::StatusOr<UdpServerMode> ParseUdpServerMode(absl::string_view name);

struct UdpPortRange {
  uint16_t first = 0;  // both > 0, first <= last
  uint16_t last = 0;
};

struct UdpServerOptions {
  // Where to listen. Port 0 picks any free port (see local_address()); ignored when
  // port_range is set. Must be set (an empty address is InvalidArgument).
  net::SocketAddress listen;
  // When set, the first port of [first, last] that is free (AlreadyExists when none is).
  std::optional<UdpPortRange> port_range;
  UdpServerMode mode = UdpServerMode::kEcho;
  // The server authenticates nobody and echoes to any address, so Start() refuses a
  // non-loopback address unless this is set (labnet's --insecure).
  bool allow_non_loopback = false;
  std::size_t batch_size = 64;  // datagrams per recvmmsg / sendmmsg, [1, 1024]
  // Longest datagram accepted, [kUdpHeaderSize, kUdpMaxDatagramSize]; longer ones are
  // counted as truncated and dropped.
  std::size_t max_datagram_bytes = kUdpMaxDatagramSize;
  // Sink: flows with state at once, >= 1; beyond it the least recently heard flow is
  // evicted (flows_evicted).
  std::size_t max_flows = 4096;
  // Longest a receive blocks before re-checking the stop flag (Stop() also wakes it).
  int64_t idle_wake_ns = 200'000'000;
};

// A thread-safe snapshot of the server's counters.
struct UdpServerCounters {
  uint64_t received = 0;        // datagrams, all of them
  uint64_t bytes_received = 0;  // their payload bytes (as received, cut if truncated)
  uint64_t echoed = 0;          // echo: datagrams sent back
  uint64_t bytes_sent = 0;
  uint64_t send_errors = 0;  // echo: replies the kernel refused (dropped)
  uint64_t truncated = 0;    // longer than max_datagram_bytes (dropped)
  // Sink: undecodable datagrams by UdpDecodeError (index 0, kOk, unused).
  std::array<uint64_t, kNumUdpDecodeErrors> malformed{};
  uint64_t flows = 0;  // sink: flows with state now
  uint64_t flows_created = 0;
  uint64_t flows_evicted = 0;
};

// One sink flow's figures. The server cannot know how many were sent, so loss counts the
// sequence numbers missing below the highest one received (highest + 1 - unique; the flow's
// first sequence is 0): losses at the very end of a flow are not seen.
struct UdpFlowStats {
  net::SocketAddress peer;
  uint32_t flow_id = 0;
  uint64_t received = 0;  // duplicates included
  uint64_t unique = 0;
  uint64_t bytes_received = 0;
  uint64_t highest_seq = 0;
  uint64_t lost_packets = 0;
  uint64_t out_of_order = 0;
  uint64_t duplicates = 0;
  double jitter_ms = 0;
  int64_t first_rx_ns = 0;
  int64_t last_rx_ns = 0;
};

class UdpTrafficServer {
 public:
  // Binds the socket and starts the receive thread. `clock` (receive stamps for jitter)
  // must be CLOCK_REALTIME-compatible and outlive the server. InvalidArgument for bad
  // options, including a non-loopback address without allow_non_loopback (the message
  // says to use --insecure); the socket's error otherwise (AlreadyExists: port busy).
  static absl::StatusOr<std::unique_ptr<UdpTrafficServer>> Start(
      const UdpServerOptions& options, const Clock& clock = RealtimeClock::Get());
  // Stops the server (Stop()).
  ~UdpTrafficServer();
  UdpTrafficServer(const UdpTrafficServer&) = delete;
  UdpTrafficServer& operator=(const UdpTrafficServer&) = delete;

  // Wakes and joins the receive thread; afterwards nothing is received. Idempotent;
  // thread-safe. Counters stay readable.
  void Stop();
  // The receive thread's error when the socket failed beyond recovery (the thread then
  // ended by itself); OK otherwise.
  absl::Status status() const;

  const net::SocketAddress& local_address() const { return local_; }
  UdpServerMode mode() const { return options_.mode; }

  // Counters as of the last handled batch. Thread-safe.
  UdpServerCounters counters() const;
  // Sink: every flow with state, most recently heard first. Thread-safe.
  std::vector<UdpFlowStats> flows() const;
  // Blocks until `done(counters())` holds or `timeout_ns` passes; returns whether it held.
  // Re-checked after every batch. Thread-safe.
  bool WaitForCounters(const std::function<bool(const UdpServerCounters&)>& done,
                       int64_t timeout_ns) const;

 private:
  struct FlowKey {
    net::SocketAddress peer;
    uint32_t flow_id = 0;
    friend bool operator==(const FlowKey& a, const FlowKey& b) {
      return a.flow_id == b.flow_id && a.peer == b.peer;
    }
    template <typename H>
    friend H AbslHashValue(H h, const FlowKey& k) {
      return H::combine(std::move(h), k.peer, k.flow_id);
    }
  };
  struct Flow {
    FlowKey key;
    SequenceTracker sequence;
    JitterEstimator jitter;
    uint64_t bytes = 0;
    int64_t first_rx_ns = 0;
    int64_t last_rx_ns = 0;
  };

  UdpTrafficServer(const UdpServerOptions& options, net::UdpSocket socket, const Clock& clock);
  void Loop();
  // Sink: accounts one datagram. Called with mu_ held.
  void Account(absl::Span<const uint8_t> data, const net::SocketAddress& peer, int64_t rx_ns);

  const UdpServerOptions options_;
  net::UdpSocket socket_;
  const Clock& clock_;
  net::SocketAddress local_;
  std::atomic<bool> stop_{false};
  std::once_flag stop_once_;
  std::thread thread_;

  mutable std::mutex mu_;
  mutable std::condition_variable published_cv_;
  UdpServerCounters counters_;  // guarded by mu_
  absl::Status status_;         // guarded by mu_
  // Sink flows, most recently heard at the front; the map points into the list. Guarded
  // by mu_.
  std::list<Flow> lru_;
  absl::flat_hash_map<FlowKey, std::list<Flow>::iterator> flows_;
};

// {"received":…, "bytes_received":…, "echoed":…, "bytes_sent":…, "send_errors":…,
//  "truncated":…, "malformed": {"too_short":…, "bad_magic":…, "bad_version":…,
//  "reserved_not_zero":…}, "flows":…, "flows_created":…, "flows_evicted":…}
nlohmann::json UdpServerCountersToJson(const UdpServerCounters& counters);
// {"peer": "127.0.0.1:40000", "flow_id":…, "received":…, "unique":…, "bytes_received":…,
//  "highest_seq":…, "lost_packets":…, "out_of_order":…, "duplicates":…, "jitter_ms":…}
nlohmann::json UdpFlowStatsToJson(const UdpFlowStats& flow);
// {"mode": "echo"|"sink", "address":…, "port":…, "counters": {…}, "flows": [{…}, …]}
// ("flows" only in sink mode).
nlohmann::json UdpServerStatsToJson(const UdpTrafficServer& server);

}  // namespace lab::traffic

#endif  // DATAPLANE_TRAFFIC_UDP_SERVER_H_

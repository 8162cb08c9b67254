// The time-sync client's logic with no socket: builds probes stamped by a virtual clock,
// applies the server's corrections to it, and records every exchange with its exact error
// against the host clock (the truth when client and server share a kernel).
//
// Only the reply to the newest probe is applied: a reply overtaken by a newer probe is
// counted as late and recorded, but its correction (computed for an older state) is not.
// Not thread-safe.
#ifndef DATAPLANE_TIMESYNC_CLIENT_CORE_H_
#define DATAPLANE_TIMESYNC_CLIENT_CORE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/types/span.h"
#include "dataplane/net/udp_socket.h"
#include "dataplane/timesync/scheme.h"
#include "dataplane/timesync/virtual_clock.h"
#include "dataplane/timesync/wire.h"

namespace lab::timesync {

struct ClientCoreOptions {
  SchemeParams params;         // scheme and its parameters (validated by the caller)
  uint32_t client_id = 1;      // distinguishes clients sharing an address
  bool json_feedback = false;  // ask for the JSON reply form
  int64_t offset_ns = 0;       // injected initial offset of the virtual clock
  double drift_ppm = 0;        // injected drift of the virtual clock
};

// One answered probe.
struct PacketRecord {
  uint64_t seq = 0;
  int64_t send_host_ns = 0;  // host clock when the probe was stamped
  int64_t recv_host_ns = 0;  // host clock when the reply arrived (kernel stamp if available)
  double rtt_ns = 0;         // recv_host_ns - send_host_ns
  // Four-timestamp offset (server minus virtual clock); binary replies only.
  std::optional<double> measured_offset_ns;
  // True offset (host minus virtual clock) at the exchange's midpoint, before the correction.
  double true_offset_ns = 0;
  int64_t correction_ns = 0;  // as received
  bool applied = false;       // the correction was applied (reply to the newest probe, ok)
  double error_ns = 0;        // virtual minus host clock right after the reply was handled
  bool server_kernel_timestamp = false;
  bool client_kernel_timestamp = false;
  ReplyStatus status = ReplyStatus::kOk;
};

struct ClientCounters {
  uint64_t sent = 0;
  uint64_t received = 0;        // distinct probes answered
  uint64_t late = 0;            // answered after a newer probe was sent (not applied)
  uint64_t duplicates = 0;      // second answers to the same probe (ignored)
  uint64_t malformed = 0;       // datagrams that are not a valid reply (ignored)
  uint64_t foreign = 0;         // valid replies for another client id / unknown seq / bad origin
  uint64_t invalid_params = 0;  // replies saying the server refused the parameters
};

class ClientCore {
 public:
  // `start_host_ns`: host time at which the virtual clock starts with its injected offset.
  ClientCore(ClientCoreOptions options, int64_t start_host_ns);

  // Writes the next probe, stamped at host time `host_ns`, into `out` (>= kProbeSize bytes)
  // and returns its size.
  std::size_t MakeProbe(int64_t host_ns, absl::Span<uint8_t> out);
  // Handles a datagram received at host time `host_ns`. Returns kOk for a reply that was
  // recorded; otherwise the reason it was ignored (and counted).
  WireError HandleDatagram(absl::Span<const uint8_t> in, int64_t host_ns,
                           net::TimestampSource source);

  bool AllAnswered() const { return counters_.received == counters_.sent; }
  // Host time the first probe was stamped at; nullopt before any.
  std::optional<int64_t> first_send_host_ns() const {
    if (sent_.empty()) return std::nullopt;
    return sent_.front().host_ns;
  }
  const ClientCounters& counters() const { return counters_; }
  const std::vector<PacketRecord>& records() const { return records_; }
  const VirtualClock& clock() const { return clock_; }
  const ClientCoreOptions& options() const { return options_; }

 private:
  struct SentProbe {
    int64_t host_ns = 0;
    int64_t t1_ns = 0;          // virtual clock
    int64_t correction_ns = 0;  // in effect when sent
    bool answered = false;
  };
  struct CompletedExchange {
    uint64_t seq = 0;
    int64_t t4_ns = 0;
    int64_t correction_ns = 0;  // in effect during the exchange
  };

  ClientCoreOptions options_;
  VirtualClock clock_;
  ClientCounters counters_;
  std::vector<SentProbe> sent_;  // index seq - 1
  std::vector<PacketRecord> records_;
  std::optional<CompletedExchange> previous_;
};

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_CLIENT_CORE_H_

// The time server's logic with no socket: decode a probe, update the client's filter with
// the exchange it completes, answer with the correction of the client's scheme.
//
// Per-client state (filter, last exchanges' server timestamps) is keyed by the client's
// address and client id, bounded in number (least recently used evicted when full) and
// dropped after an idle timeout. Malformed datagrams are counted by reason and dropped.
//
// Not thread-safe: one core per server event loop.
#ifndef DATAPLANE_TIMESYNC_SERVER_CORE_H_
#define DATAPLANE_TIMESYNC_SERVER_CORE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "dataplane/net/socket_address.h"
#include "dataplane/net/udp_socket.h"
#include "dataplane/timesync/filter.h"
#include "dataplane/timesync/scheme.h"
#include "dataplane/timesync/wire.h"

namespace lab::timesync {

struct ServerCoreOptions {
  // Most clients with state at once; the least recently heard is evicted beyond it.
  std::size_t max_clients = 4096;
  // A client not heard from for this long loses its state.
  int64_t idle_timeout_ns = 60'000'000'000;
  // Parameters for probes that carry none (flag bit 2 clear). Must be valid.
  EwmaParams ewma;
  KalmanParams kalman;
  PidParams pid;
};

struct ServerCounters {
  uint64_t received = 0;                                     // datagrams handed to HandleDatagram
  uint64_t replied = 0;                                      // replies produced (binary or JSON)
  uint64_t json_replies = 0;                                 // of which JSON
  uint64_t dropped = 0;                                      // malformed, sum of dropped_by_reason
  std::array<uint64_t, kNumWireErrors> dropped_by_reason{};  // indexed by WireError
  uint64_t invalid_params = 0;                               // answered with status invalid_params
  uint64_t samples_used = 0;                                 // exchanges that moved a filter
  uint64_t samples_outliers = 0;   // exchanges a filter skipped as delay spikes
  uint64_t samples_unmatched = 0;  // previous exchange unknown (evicted, too old, reordered)
  uint64_t samples_rejected = 0;   // exchanges out of order or with inconsistent times
  uint64_t kernel_timestamps = 0;  // probes stamped by the kernel
  uint64_t user_timestamps = 0;    // probes stamped in user space (fallback)
  uint64_t clients_created = 0;
  uint64_t clients_evicted_idle = 0;
  uint64_t clients_evicted_full = 0;
};

class ServerCore {
 public:
  explicit ServerCore(ServerCoreOptions options);

  // Handles one datagram from `peer` received at server time `t2_ns` (stamped by `source`).
  // Writes the reply into `out` (at least kProbeSize bytes) and returns its length, or 0 when
  // the datagram is dropped. `clock` gives t3, read just before the reply is encoded.
  std::size_t HandleDatagram(absl::Span<const uint8_t> in, const net::SocketAddress& peer,
                             int64_t t2_ns, net::TimestampSource source, const Clock& clock,
                             absl::Span<uint8_t> out);

  // Drops clients idle at `now_ns`; returns how many. HandleDatagram also calls it, at most
  // once a second of server time.
  std::size_t EvictIdle(int64_t now_ns);

  const ServerCounters& counters() const { return counters_; }
  std::size_t active_clients() const { return clients_.size(); }

 private:
  // Server timestamps of one recent exchange, kept to complete it when the client reports t4.
  struct PastExchange {
    uint64_t seq = 0;
    int64_t t1_ns = 0, t2_ns = 0, t3_ns = 0;
  };
  static constexpr std::size_t kPastExchanges = 8;

  struct ClientKey {
    net::SocketAddress peer;
    uint32_t client_id;
    friend bool operator==(const ClientKey&, const ClientKey&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const ClientKey& k) {
      return H::combine(std::move(h), k.peer, k.client_id);
    }
  };
  struct ClientState {
    ClientKey key;
    SchemeParams params;
    std::unique_ptr<ClockFilter> filter;
    std::array<PastExchange, kPastExchanges> past{};
    int64_t last_seen_ns = 0;
  };
  using ClientList = std::list<ClientState>;  // most recently heard first

  // The client's state, created (or recreated when the scheme or parameters change).
  ClientState& FindOrCreate(const ClientKey& key, const SchemeParams& params, int64_t now_ns);
  void FeedPreviousExchange(ClientState& client, const Probe& probe);

  ServerCoreOptions options_;
  ServerCounters counters_;
  ClientList lru_;
  absl::flat_hash_map<ClientKey, ClientList::iterator> clients_;
  int64_t last_sweep_ns_ = 0;
};

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_SERVER_CORE_H_

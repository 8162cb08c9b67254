// The time-sync client on a UDP socket: sends `count` probes paced at `interval`, handles
// replies as they come (kernel receive timestamps where available), then waits up to
// `timeout` for the last answers. Blocking; run several in threads for several clients.
#ifndef DATAPLANE_TIMESYNC_CLIENT_H_
#define DATAPLANE_TIMESYNC_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "dataplane/net/socket_address.h"
#include "dataplane/timesync/client_core.h"
#include "spdlog/logger.h"

namespace lab::timesync {

struct TimeSyncClientOptions {
  net::SocketAddress server;
  ClientCoreOptions core;
  uint64_t count = 100;                // probes to send (> 0)
  int64_t interval_ns = 10'000'000;    // between probes (> 0)
  int64_t timeout_ns = 1'000'000'000;  // wait for replies after the last probe
  bool kernel_timestamps = true;
  // When set, called on the client's thread with its state at most every
  // `progress_interval_ns` while it runs, and once at the end (records only grow, so a
  // caller can forward the new ones). Must not block for long: it delays the probes.
  std::function<void(const ClientCore&)> progress;
  int64_t progress_interval_ns = 100'000'000;
};

// Runs one client to completion and returns its state (records and counters).
// InvalidArgument for a bad count/interval/parameters; Unavailable when the socket fails.
// `cancel`, when set by another thread, ends the run early (what was answered is kept).
// `clock` must be CLOCK_REALTIME-compatible (it is compared with kernel timestamps).
absl::StatusOr<std::unique_ptr<ClientCore>> RunTimeSyncClient(
    const TimeSyncClientOptions& options, std::shared_ptr<spdlog::logger> logger,
    const std::atomic<bool>* cancel = nullptr, const Clock& clock = RealtimeClock::Get());

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_CLIENT_H_

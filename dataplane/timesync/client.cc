#include "dataplane/timesync/client.h"

#include <poll.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/status_macros.h"
#include "dataplane/net/udp_socket.h"

namespace lab::timesync {

absl::StatusOr<std::unique_ptr<ClientCore>> RunTimeSyncClient(
    const TimeSyncClientOptions& options, std::shared_ptr<spdlog::logger> logger,
    const std::atomic<bool>* cancel, const Clock& clock) {
  if (options.count == 0) return absl::InvalidArgumentError("count must be > 0");
  if (options.interval_ns <= 0) return absl::InvalidArgumentError("interval must be > 0");
  if (options.timeout_ns < 0) return absl::InvalidArgumentError("timeout must be >= 0");
  LAB_RETURN_IF_ERROR(options.core.params.Validate());

  LAB_ASSIGN_OR_RETURN(net::UdpSocket socket, net::UdpSocket::Connect(options.server));
  if (options.kernel_timestamps) socket.EnableReceiveTimestamps();
  auto core = std::make_unique<ClientCore>(options.core, clock.NowNs());
  net::DatagramBatch batch(16, kProbeSize + 1);
  std::array<uint8_t, kProbeSize> probe{};

  const std::string name =
      absl::StrCat(SchemeName(options.core.params.scheme), "#", options.core.client_id);
  logger->debug("[{}] {} probes every {} us to {}", name, options.count, options.interval_ns / 1000,
                options.server.ToString());

  int64_t next_send_ns = clock.NowNs();
  int64_t next_progress_ns = next_send_ns + options.progress_interval_ns;
  int64_t deadline_ns = 0;  // set once everything is sent
  uint64_t send_errors = 0;
  while (!(cancel != nullptr && cancel->load(std::memory_order_relaxed))) {
    int64_t now = clock.NowNs();
    if (options.progress && now >= next_progress_ns) {
      options.progress(*core);
      next_progress_ns = now + options.progress_interval_ns;
    }
    const bool sending = core->counters().sent < options.count;
    if (!sending && (core->AllAnswered() || now >= deadline_ns)) break;
    if (sending && now >= next_send_ns) {
      const std::size_t len = core->MakeProbe(now, absl::MakeSpan(probe));
      if (absl::Status s = socket.Send(absl::MakeConstSpan(probe.data(), len)); !s.ok()) {
        // Counted as sent (and so as lost): the probe left the client's control.
        if (send_errors++ == 0) logger->warn("[{}] send failed: {}", name, s.ToString());
      }
      // Absolute schedule; after a stall, skip the missed slots rather than burst (probes
      // closer than the interval would only add noise to the server's filters).
      next_send_ns += options.interval_ns;
      if (next_send_ns < now) next_send_ns = now + options.interval_ns;
      if (core->counters().sent == options.count) deadline_ns = now + options.timeout_ns;
      continue;
    }
    const int64_t wake_ns = core->counters().sent < options.count ? next_send_ns : deadline_ns;
    // Wake at least every 100 ms to notice cancellation.
    const int64_t wait_ns = std::clamp<int64_t>(wake_ns - now, 0, 100'000'000);
    pollfd pfd{socket.fd(), POLLIN, 0};
    const timespec ts{static_cast<time_t>(wait_ns / 1'000'000'000),
                      static_cast<long>(wait_ns % 1'000'000'000)};
    const int ready = ::ppoll(&pfd, 1, &ts, nullptr);
    if (ready < 0 && errno != EINTR) return ErrnoToStatus(errno, "ppoll");
    if (ready <= 0) continue;
    while (true) {
      absl::StatusOr<std::size_t> n = batch.Receive(socket, clock);
      if (!n.ok()) {
        // ICMP port unreachable and friends surface here on a connected socket.
        if (send_errors++ == 0) {
          logger->warn("[{}] {}: {}{}", name, options.server.ToString(),
                       std::string(n.status().message()),
                       absl::IsUnavailable(n.status()) ? " (nothing listening there?)" : "");
        }
        break;
      }
      for (std::size_t i = 0; i < *n; ++i) {
        core->HandleDatagram(batch.data(i), batch.rx_ns(i), batch.rx_source(i));
      }
      if (*n < batch.capacity()) break;
    }
  }
  if (options.progress) options.progress(*core);
  const ClientCounters& c = core->counters();
  logger->debug("[{}] sent={} received={} late={} malformed={}", name, c.sent, c.received, c.late,
                c.malformed);
  return core;
}

}  // namespace lab::timesync

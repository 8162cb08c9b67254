#include "dataplane/timesync/server.h"

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace lab::timesync {

absl::StatusOr<std::unique_ptr<TimeServer>> TimeServer::Create(
    const TimeServerOptions& options, std::shared_ptr<spdlog::logger> logger, const Clock& clock) {
  if (options.batch_size == 0) return absl::InvalidArgumentError("batch size must be > 0");
  if (options.idle_wake_ns <= 0) return absl::InvalidArgumentError("idle wake must be > 0");
  LAB_ASSIGN_OR_RETURN(net::SocketAddress address,
                       net::SocketAddress::Resolve(options.bind_address, options.port));
  if (!address.IsLoopback() && !options.allow_non_loopback) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing to listen on ", address.HostString(),
        ": the time server has no authentication, so it binds beyond loopback only with "
        "--insecure"));
  }
  LAB_ASSIGN_OR_RETURN(net::UdpSocket socket, net::UdpSocket::Bind(address));
  if (options.kernel_timestamps && !socket.EnableReceiveTimestamps()) {
    logger->warn("kernel receive timestamps unavailable; using user-space timestamps");
  }
  LAB_RETURN_IF_ERROR(socket.SetBlockingReceive(options.idle_wake_ns));
  // Generous buffers ride out the loopback stalls without drops (best effort).
  (void)socket.SetBufferSizes(4 << 20, 4 << 20);
  return std::unique_ptr<TimeServer>(
      new TimeServer(options, std::move(socket), std::move(logger), clock));
}

TimeServer::TimeServer(const TimeServerOptions& options, net::UdpSocket socket,
                       std::shared_ptr<spdlog::logger> logger, const Clock& clock)
    : options_(options),
      socket_(std::move(socket)),
      logger_(std::move(logger)),
      clock_(clock),
      core_(options.core) {
  local_ = socket_.LocalAddress().value_or(net::SocketAddress());
}

net::TimestampSource TimeServer::timestamp_source() const {
  return socket_.receive_timestamps_enabled() ? net::TimestampSource::kKernel
                                              : net::TimestampSource::kUser;
}

absl::Status TimeServer::Run() {
  logger_->info("time server listening on udp {} ({} receive timestamps, batch {})",
                local_.ToString(), net::TimestampSourceName(timestamp_source()),
                options_.batch_size);
  net::DatagramBatch in(options_.batch_size, kProbeSize + 1);  // +1 detects oversize probes
  net::SendBatch out(options_.batch_size, kProbeSize);
  int64_t next_stats_ns = clock_.NowNs() + options_.stats_interval_ns;
  uint64_t logged_received = 0;
  uint64_t send_failures = 0;
  absl::Status status;
  while (!stop_.load(std::memory_order_acquire)) {
    absl::StatusOr<std::size_t> received = in.Receive(socket_, clock_, /*wait=*/true);
    if (!received.ok()) {
      status = received.status();
      break;
    }
    if (stop_.load(std::memory_order_acquire)) break;  // woken by Stop()
    for (std::size_t i = 0; i < *received; ++i) {
      const std::size_t len = core_.HandleDatagram(in.data(i), in.peer(i), in.rx_ns(i),
                                                   in.rx_source(i), clock_, out.NextBuffer());
      if (len > 0) out.Commit(len, in.peer(i));
    }
    if (out.size() > 0) {
      const net::SendBatch::FlushResult flushed = out.Flush(socket_);
      if (flushed.failed > 0) {
        send_failures += flushed.failed;
        logger_->debug("{} replies refused by the kernel: {}", flushed.failed,
                       flushed.last_error.ToString());
      }
    }
    Publish();
    const int64_t now = clock_.NowNs();
    if (now >= next_stats_ns) {
      next_stats_ns = now + options_.stats_interval_ns;
      if (core_.counters().received != logged_received) {
        logged_received = core_.counters().received;
        LogCounters(core_.counters());
        if (send_failures > 0) logger_->warn("{} replies could not be sent", send_failures);
      }
    }
  }
  Publish();
  LogCounters(core_.counters());
  logger_->info("time server on {} stopped", local_.ToString());
  return status;
}

void TimeServer::Stop() {
  stop_.store(true, std::memory_order_release);
  socket_.ShutdownReceive();
}

void TimeServer::Publish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    published_ = core_.counters();
    published_clients_ = core_.active_clients();
  }
  published_cv_.notify_all();
}

bool TimeServer::WaitForCounters(const std::function<bool(const ServerCounters&)>& done,
                                 int64_t timeout_ns) const {
  std::unique_lock<std::mutex> lock(mu_);
  return published_cv_.wait_for(lock, std::chrono::nanoseconds(timeout_ns),
                                [&] { return done(published_); });
}

ServerCounters TimeServer::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return published_;
}

std::size_t TimeServer::active_clients() const {
  std::lock_guard<std::mutex> lock(mu_);
  return published_clients_;
}

void TimeServer::LogCounters(const ServerCounters& c) {
  std::string drops;
  for (std::size_t i = 1; i < kNumWireErrors; ++i) {
    if (c.dropped_by_reason[i] > 0) {
      absl::StrAppend(&drops, " ", WireErrorName(static_cast<WireError>(i)), "=",
                      c.dropped_by_reason[i]);
    }
  }
  logger_->info(
      "received={} replied={} dropped={}{} clients={} samples used={} outliers={} "
      "unmatched={} rejected={} kernel_ts={} user_ts={}",
      c.received, c.replied, c.dropped, drops.empty() ? "" : absl::StrCat(" (", drops, " )"),
      core_.active_clients(), c.samples_used, c.samples_outliers, c.samples_unmatched,
      c.samples_rejected, c.kernel_timestamps, c.user_timestamps);
}

}  // namespace lab::timesync

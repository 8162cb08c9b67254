#include "dataplane/timesync/server.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace lab::timesync {

absl::StatusOr<std::unique_ptr<TimeServer>> TimeServer::Create(
    const TimeServerOptions& options, std::shared_ptr<spdlog::logger> logger, const Clock& clock) {
  LAB_ASSIGN_OR_RETURN(net::SocketAddress address,
                       net::SocketAddress::Resolve(options.bind_address, options.port));
  LAB_ASSIGN_OR_RETURN(net::UdpSocket socket, net::UdpSocket::Bind(address));
  if (options.kernel_timestamps && !socket.EnableReceiveTimestamps()) {
    logger->warn("kernel receive timestamps unavailable; using user-space timestamps");
  }
  // Generous buffers ride out the loopback stalls without drops (best effort).
  (void)socket.SetBufferSizes(4 << 20, 4 << 20);
  net::ScopedFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return ErrnoToStatus(errno, "epoll_create1");
  net::ScopedFd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake.valid()) return ErrnoToStatus(errno, "eventfd");
  for (int fd : {socket.fd(), wake.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return ErrnoToStatus(errno, "epoll_ctl");
    }
  }
  return std::unique_ptr<TimeServer>(new TimeServer(options, std::move(socket), std::move(epoll),
                                                    std::move(wake), std::move(logger), clock));
}

TimeServer::TimeServer(const TimeServerOptions& options, net::UdpSocket socket, net::ScopedFd epoll,
                       net::ScopedFd wake, std::shared_ptr<spdlog::logger> logger,
                       const Clock& clock)
    : options_(options),
      socket_(std::move(socket)),
      epoll_(std::move(epoll)),
      wake_(std::move(wake)),
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
  while (true) {
    epoll_event events[2];
    const int n = ::epoll_wait(epoll_.get(), events, 2, 1000);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "epoll_wait");
    }
    bool stop = false;
    for (int e = 0; e < n; ++e) {
      if (events[e].data.fd == wake_.get()) stop = true;
    }
    if (stop) break;
    // Drain the socket: full batches mean more may be waiting.
    while (true) {
      LAB_ASSIGN_OR_RETURN(std::size_t received, in.Receive(socket_, clock_));
      for (std::size_t i = 0; i < received; ++i) {
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
      if (received < in.capacity()) break;
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
  return absl::OkStatus();
}

void TimeServer::Stop() {
  const uint64_t one = 1;
  // A full eventfd counter still wakes the loop, so the result can be ignored.
  [[maybe_unused]] ssize_t rc = ::write(wake_.get(), &one, sizeof(one));
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

#include "dataplane/traffic/udp_client.h"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/status_macros.h"
#include "dataplane/net/udp_socket.h"
#include "dataplane/traffic/udp_flow.h"

namespace lab::traffic {

namespace {

// Longest a receive blocks before the loops re-check their stop conditions.
constexpr int64_t kReceiveWakeNs = 20'000'000;
// Longest the paced sender sleeps at once (so a cancel is seen promptly).
constexpr int64_t kMaxSleepNs = 10'000'000;

// ECONNREFUSED on a connected UDP socket: an ICMP port unreachable came back.
bool IsConnectionRefused(const absl::Status& status) { return ErrnoOf(status) == ECONNREFUSED; }

absl::Status RefusedError(const net::SocketAddress& server) {
  return absl::UnavailableError(
      absl::StrCat("no UDP server at ", server.ToString(),
                   ": connection refused (is `labnet udp-server` running there?)"));
}

absl::Status Validate(const UdpClientOptions& o) {
  if (o.server.family() != AF_INET && o.server.family() != AF_INET6) {
    return absl::InvalidArgumentError("no server address");
  }
  if (o.length < kUdpHeaderSize || o.length > kUdpMaxDatagramSize) {
    return absl::InvalidArgumentError(absl::StrCat("length must be in [", kUdpHeaderSize, ", ",
                                                   kUdpMaxDatagramSize, "] bytes, got ", o.length));
  }
  if (o.rate_pps && (!std::isfinite(*o.rate_pps) || *o.rate_pps < 0 ||
                     (*o.rate_pps > 0 && *o.rate_pps < kMinRatePps) || *o.rate_pps > kMaxRatePps)) {
    return absl::InvalidArgumentError(absl::StrCat("rate must be 0 (as fast as possible) or in [",
                                                   kMinRatePps, ", ", kMaxRatePps,
                                                   "] packets/s, got ", *o.rate_pps));
  }
  if (o.duration_ns < 0) return absl::InvalidArgumentError("duration must be >= 0");
  if (o.timeout_ns < 0) return absl::InvalidArgumentError("timeout must be >= 0");
  if (o.interval_ns < 0 || (o.interval_ns > 0 && o.interval_ns < kMinIntervalNs)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the report interval must be 0 (none) or >= 10ms, got ", o.interval_ns, " ns"));
  }
  if (o.batch_size < 1 || o.batch_size > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size must be in [1, 1024], got ", o.batch_size));
  }
  if (o.one_way && !o.rate_pps) {
    return absl::InvalidArgumentError(
        "one-way runs need a rate (0 for as fast as possible): a sink sends no echo to wait for");
  }
  return absl::OkStatus();
}

bool Cancelled(const std::atomic<bool>* cancel) {
  return cancel != nullptr && cancel->load(std::memory_order_relaxed);
}

// Accounts the echoes of one run. One thread.
class EchoAccount {
 public:
  EchoAccount(uint32_t flow_id, std::size_t length) : flow_id_(flow_id), length_(length) {}

  // Returns the echo's sequence number when it is a new (not duplicate) echo of ours.
  std::optional<uint64_t> Add(absl::Span<const uint8_t> data, bool truncated, int64_t rx_ns) {
    if (truncated) return Malformed("truncated");
    UdpHeader header;
    const UdpDecodeError error = DecodeUdpHeader(data, &header);
    if (error != UdpDecodeError::kOk) return Malformed(std::string(UdpDecodeErrorName(error)));
    if (header.flow_id != flow_id_) return Malformed("wrong_flow");
    if (data.size() != length_) return Malformed("wrong_length");
    if (sequence_.Add(header.seq) == SequenceTracker::Arrival::kDuplicate) return std::nullopt;
    jitter_.Add(header.send_ns, rx_ns);
    const double rtt_us = static_cast<double>(rx_ns - header.send_ns) / 1e3;
    latency_.Add(rtt_us);
    interval_latency_.Add(rtt_us);
    bytes_ += data.size();
    return header.seq;
  }

  // The latency of the echoes since the last call, and a fresh histogram for the next.
  stats::Histogram TakeIntervalLatency() {
    return std::exchange(interval_latency_, stats::Histogram(stats::LatencyEdgesUs()));
  }

  const SequenceTracker& sequence() const { return sequence_; }
  const JitterEstimator& jitter() const { return jitter_; }
  const stats::Histogram& latency() const { return latency_; }
  const std::map<std::string, uint64_t>& malformed() const { return malformed_; }
  uint64_t malformed_total() const { return malformed_total_; }
  uint64_t bytes() const { return bytes_; }

 private:
  std::optional<uint64_t> Malformed(const std::string& reason) {
    ++malformed_[reason];
    ++malformed_total_;
    return std::nullopt;
  }

  uint32_t flow_id_;
  std::size_t length_;
  SequenceTracker sequence_;
  JitterEstimator jitter_;
  stats::Histogram latency_{stats::LatencyEdgesUs()};
  stats::Histogram interval_latency_{stats::LatencyEdgesUs()};
  std::map<std::string, uint64_t> malformed_;
  uint64_t malformed_total_ = 0;
  uint64_t bytes_ = 0;
};

// What the sender has done so far (written by the sender, read by the reporter).
struct SendTotals {
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> errors{0};
};

// Cuts the run into intervals and reports each. One thread.
class IntervalReporter {
 public:
  IntervalReporter(int64_t start_ns, int64_t interval_ns, const IntervalCallback& callback,
                   std::vector<IntervalSample>* out, bool one_way)
      : start_ns_(start_ns),
        interval_ns_(interval_ns),
        next_end_ns_(start_ns + interval_ns),
        last_end_ns_(start_ns),
        callback_(callback),
        out_(out),
        one_way_(one_way) {}

  // Reports every interval that ended at or before now_ns.
  void Poll(int64_t now_ns, const SendTotals& totals, EchoAccount& echoes) {
    if (interval_ns_ <= 0) return;
    while (now_ns >= next_end_ns_) {
      Emit(next_end_ns_, totals, echoes);
      next_end_ns_ += interval_ns_;
    }
  }
  // Reports the last, partial interval (when it has a length).
  void Finish(int64_t end_ns, const SendTotals& totals, EchoAccount& echoes) {
    Poll(end_ns, totals, echoes);
    if (interval_ns_ > 0 && end_ns > last_end_ns_) Emit(end_ns, totals, echoes);
  }

 private:
  void Emit(int64_t end_ns, const SendTotals& totals, EchoAccount& echoes) {
    IntervalSample s;
    s.start_s = static_cast<double>(last_end_ns_ - start_ns_) / 1e9;
    s.end_s = static_cast<double>(end_ns - start_ns_) / 1e9;
    const uint64_t sent = totals.sent.load(), bytes = totals.bytes.load();
    const uint64_t errors = totals.errors.load() + echoes.malformed_total();
    s.messages_sent = sent - sent_;
    s.bytes_sent = bytes - bytes_;
    s.messages_received = echoes.sequence().unique() - received_;
    s.bytes_received = echoes.bytes() - bytes_received_;
    s.errors = errors - errors_;
    const stats::Histogram latency = echoes.TakeIntervalLatency();
    if (latency.count() > 0) {
      s.latency_p50_us = latency.Quantile(0.5);
      s.latency_p99_us = latency.Quantile(0.99);
      s.latency_max_us = latency.max();
    }
    if (!one_way_ && echoes.jitter().samples() >= 2)
      s.jitter_us = echoes.jitter().jitter_ns() / 1e3;
    sent_ = sent;
    bytes_ = bytes;
    received_ = echoes.sequence().unique();
    bytes_received_ = echoes.bytes();
    errors_ = errors;
    last_end_ns_ = end_ns;
    out_->push_back(s);
    if (callback_) callback_(s);
  }

  int64_t start_ns_, interval_ns_, next_end_ns_, last_end_ns_;
  const IntervalCallback& callback_;
  std::vector<IntervalSample>* out_;
  bool one_way_;
  uint64_t sent_ = 0, bytes_ = 0, received_ = 0, bytes_received_ = 0, errors_ = 0;
};

void SleepNs(int64_t ns) {
  if (ns > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(std::min(ns, kMaxSleepNs)));
}

// Fills in the figures common to both modes.
void Finalize(const UdpClientOptions& o, const EchoAccount& echoes, const SendTotals& totals,
              int64_t start_ns, int64_t send_end_ns, UdpClientReport* r) {
  r->sent = totals.sent.load();
  r->bytes_sent = totals.bytes.load();
  r->send_errors = totals.errors.load();
  r->received = echoes.sequence().unique();
  r->duplicates = echoes.sequence().duplicates();
  r->out_of_order = echoes.sequence().out_of_order();
  if (!o.one_way) {
    r->lost_packets = echoes.sequence().Lost(r->sent);
    r->lost_percent =
        r->sent == 0 ? 0
                     : 100.0 * static_cast<double>(r->lost_packets) / static_cast<double>(r->sent);
    r->jitter_ms = echoes.jitter().jitter_ns() / 1e6;
  }
  r->latency_us = echoes.latency();
  r->malformed = echoes.malformed();
  r->errors = r->send_errors + echoes.malformed_total();
  r->seconds = std::max(0.0, static_cast<double>(send_end_ns - start_ns) / 1e9);
  if (r->seconds > 0) {
    r->bits_per_second = static_cast<double>(r->bytes_sent) * 8.0 / r->seconds;
    r->packets_per_second = static_cast<double>(r->sent) / r->seconds;
    r->received_packets_per_second = static_cast<double>(r->received) / r->seconds;
  }
}

struct Run {
  const UdpClientOptions& o;
  const Clock& clock;
  const std::atomic<bool>* cancel;
  const IntervalCallback& on_interval;
  net::UdpSocket& socket;
  UdpClientReport& report;
};

absl::Status RunSimple(const Run& run) {
  const UdpClientOptions& o = run.o;
  EchoAccount echoes(run.report.flow_id, o.length);
  SendTotals totals;
  net::DatagramBatch in(std::min<std::size_t>(o.batch_size, 8), o.length + 1);
  std::vector<uint8_t> datagram(o.length);
  const int64_t start_ns = run.clock.NowNs();
  IntervalReporter reporter(start_ns, o.interval_ns, run.on_interval, &run.report.intervals,
                            o.one_way);
  for (uint64_t seq = 0;; ++seq) {
    if (Cancelled(run.cancel) || (o.count > 0 && seq >= o.count)) break;
    const int64_t now = run.clock.NowNs();
    if (o.duration_ns > 0 && now - start_ns >= o.duration_ns) break;
    LAB_RETURN_IF_ERROR(
        EncodeUdpDatagram({run.report.flow_id, seq, now}, absl::MakeSpan(datagram)));
    if (absl::Status s = run.socket.Send(datagram); !s.ok()) {
      if (IsConnectionRefused(s) && echoes.sequence().empty()) return RefusedError(o.server);
      totals.errors.fetch_add(1);
      continue;
    }
    totals.sent.fetch_add(1);
    totals.bytes.fetch_add(o.length);
    // Wait for this datagram's echo (earlier, late echoes are accounted on the way).
    const int64_t deadline = now + o.timeout_ns;
    bool echoed = false;
    while (!echoed && !Cancelled(run.cancel)) {
      absl::StatusOr<std::size_t> n = in.Receive(run.socket, run.clock, /*wait=*/true);
      if (!n.ok()) {
        if (!IsConnectionRefused(n.status())) return n.status();
        if (echoes.sequence().empty()) return RefusedError(o.server);
        break;  // the server went away: this one is lost
      }
      for (std::size_t i = 0; i < *n; ++i) {
        if (echoes.Add(in.data(i), in.truncated(i), in.rx_ns(i)) == seq) echoed = true;
      }
      const int64_t after = run.clock.NowNs();
      reporter.Poll(after, totals, echoes);
      if (after >= deadline) break;
    }
  }
  const int64_t end_ns = run.clock.NowNs();
  reporter.Finish(end_ns, totals, echoes);
  Finalize(o, echoes, totals, start_ns, end_ns, &run.report);
  return absl::OkStatus();
}

absl::Status RunFast(const Run& run) {
  const UdpClientOptions& o = run.o;
  const double rate = *o.rate_pps;
  EchoAccount echoes(run.report.flow_id, o.length);
  SendTotals totals;
  std::atomic<bool> sender_done{false};
  std::atomic<bool> abort{false};    // stop sending: refused, or the receiver failed
  std::atomic<bool> refused{false};  // refused while no echo had come back
  std::atomic<uint64_t> echoes_received{0};
  std::atomic<uint64_t> skipped{0};
  const int64_t start_ns = run.clock.NowNs();
  std::atomic<int64_t> send_end_ns{start_ns};

  std::thread sender([&] {
    net::SendBatch out(o.batch_size, o.length);
    std::optional<Pacer> pacer;
    if (rate > 0) pacer = *Pacer::Create(rate, static_cast<uint32_t>(o.batch_size), start_ns);
    uint64_t seq = 0;
    bool count_reached = false;
    while (!Cancelled(run.cancel) && !abort.load()) {
      int64_t now = run.clock.NowNs();
      if (o.duration_ns > 0 && now - start_ns >= o.duration_ns) break;
      if (o.count > 0 && seq >= o.count) {
        count_reached = true;
        break;
      }
      uint64_t n = pacer ? pacer->Due(now) : o.batch_size;
      if (o.count > 0) n = std::min(n, o.count - seq);
      if (n == 0) {
        int64_t wake = pacer->NextDueNs();
        if (o.duration_ns > 0) wake = std::min(wake, start_ns + o.duration_ns);
        SleepNs(wake - now);
        continue;
      }
      for (uint64_t i = 0; i < n; ++i) {
        absl::Span<uint8_t> slot = out.NextBuffer().subspan(0, o.length);
        (void)EncodeUdpDatagram({run.report.flow_id, seq++, run.clock.NowNs()}, slot);
        out.Commit(o.length, o.server);
      }
      const net::SendBatch::FlushResult r = out.Flush(run.socket);
      totals.sent.fetch_add(r.sent);
      totals.bytes.fetch_add(r.sent * o.length);
      if (r.failed > 0) {
        totals.errors.fetch_add(r.failed);
        if (IsConnectionRefused(r.last_error) && echoes_received.load() == 0) {
          refused = true;
          abort = true;
        } else if (!pacer) {
          // As fast as possible and the socket buffer is full: wait for room.
          pollfd pfd{run.socket.fd(), POLLOUT, 0};
          (void)poll(&pfd, 1, 10);
        }
      }
    }
    // A count-limited paced run lasts until its last slot ends (count / rate seconds).
    if (count_reached && pacer) {
      while (!Cancelled(run.cancel) && run.clock.NowNs() < pacer->NextDueNs()) {
        SleepNs(pacer->NextDueNs() - run.clock.NowNs());
      }
    }
    if (pacer) skipped = pacer->skipped_slots();
    send_end_ns = run.clock.NowNs();
    sender_done = true;
  });

  IntervalReporter reporter(start_ns, o.interval_ns, run.on_interval, &run.report.intervals,
                            o.one_way);
  net::DatagramBatch in(o.batch_size, o.length + 1);
  absl::Status failure;
  while (true) {
    const bool done_before = sender_done.load();
    // One-way: once the sender is done, one last look collects a pending refusal.
    const bool wait = !(done_before && o.one_way);
    absl::StatusOr<std::size_t> n = in.Receive(run.socket, run.clock, wait);
    if (!n.ok()) {
      if (IsConnectionRefused(n.status())) {
        if (echoes.sequence().empty()) {
          refused = true;
          abort = true;
          break;
        }
        continue;  // the server went away mid-run; what is missing is lost
      }
      failure = n.status();
      abort = true;
      break;
    }
    for (std::size_t i = 0; i < *n; ++i) echoes.Add(in.data(i), in.truncated(i), in.rx_ns(i));
    echoes_received = echoes.sequence().unique();
    const int64_t now = run.clock.NowNs();
    reporter.Poll(now, totals, echoes);
    if (Cancelled(run.cancel)) break;
    if (done_before) {
      if (o.one_way) break;  // no echo is coming
      if (echoes.sequence().unique() >= totals.sent.load()) break;
      if (now >= send_end_ns.load() + o.timeout_ns) break;
    }
  }
  sender.join();
  if (!failure.ok()) return failure;
  if (refused.load()) return RefusedError(o.server);
  const int64_t end_ns = run.clock.NowNs();
  reporter.Finish(end_ns, totals, echoes);
  run.report.skipped_slots = skipped.load();
  Finalize(o, echoes, totals, start_ns, send_end_ns.load(), &run.report);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<UdpClientReport> RunUdpClient(const UdpClientOptions& options, const Clock& clock,
                                             const std::atomic<bool>* cancel,
                                             const IntervalCallback& on_interval) {
  LAB_RETURN_IF_ERROR(Validate(options));
  LAB_ASSIGN_OR_RETURN(net::UdpSocket socket, net::UdpSocket::Connect(options.server));
  if (options.kernel_timestamps) socket.EnableReceiveTimestamps();
  LAB_RETURN_IF_ERROR(socket.SetBlockingReceive(kReceiveWakeNs));
  (void)socket.SetBufferSizes(8 << 20, 8 << 20);

  UdpClientReport report;
  report.mode = options.rate_pps ? "fast" : "simple";
  report.one_way = options.one_way;
  report.server = options.server;
  report.length = options.length;
  report.rate_pps = options.rate_pps;
  report.flow_id = options.flow_id;
  if (report.flow_id == 0) {
    std::random_device random;
    std::uniform_int_distribution<uint32_t> ids(1, UINT32_MAX);
    report.flow_id = ids(random);
  }
  const Run run{options, clock, cancel, on_interval, socket, report};
  LAB_RETURN_IF_ERROR(options.rate_pps ? RunFast(run) : RunSimple(run));
  report.interrupted = Cancelled(cancel);
  return report;
}

nlohmann::json UdpClientReportToJson(const UdpClientReport& r) {
  nlohmann::json malformed = nlohmann::json::object();
  for (const auto& [reason, count] : r.malformed) malformed[reason] = count;
  nlohmann::json intervals = nlohmann::json::array();
  for (const IntervalSample& s : r.intervals) intervals.push_back(IntervalToJson(s));
  const nlohmann::json null;
  return {{"mode", r.mode},
          {"one_way", r.one_way},
          {"server", r.server.ToString()},
          {"flow_id", r.flow_id},
          {"length", r.length},
          {"rate_pps", r.rate_pps ? nlohmann::json(*r.rate_pps) : null},
          {"sent", r.sent},
          {"bytes_sent", r.bytes_sent},
          {"received", r.received},
          {"lost_packets", r.one_way ? null : nlohmann::json(r.lost_packets)},
          {"lost_percent", r.one_way ? null : nlohmann::json(r.lost_percent)},
          {"out_of_order", r.out_of_order},
          {"duplicates", r.duplicates},
          {"jitter_ms", r.one_way ? null : nlohmann::json(r.jitter_ms)},
          {"seconds", r.seconds},
          {"bits_per_second", r.bits_per_second},
          {"packets_per_second", r.packets_per_second},
          {"received_packets_per_second", r.received_packets_per_second},
          {"latency_us", LatencySummaryJson(r.latency_us)},
          {"latency_histogram", SparseBucketsJson(r.latency_us, "latency_us_v1")},
          {"errors", r.errors},
          {"send_errors", r.send_errors},
          {"malformed", malformed},
          {"skipped_slots", r.skipped_slots},
          {"interrupted", r.interrupted},
          {"intervals", intervals}};
}

}  // namespace lab::traffic

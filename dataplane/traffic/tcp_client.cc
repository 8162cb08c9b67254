#include "dataplane/traffic/tcp_client.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/errno_status.h"
#include "dataplane/net/scoped_fd.h"
#include "dataplane/net/tcp_socket.h"

namespace lab::traffic {

namespace {

using net::IoResult;
using net::ScopedFd;

constexpr std::size_t kDefaultRrLength = 64;
constexpr std::size_t kDefaultBulkLength = 128 * 1024;
// How long connections may take to end in an orderly way after the run.
constexpr int64_t kDrainNs = 2'000'000'000;

struct Connection {
  ScopedFd fd;
  enum State { kConnecting, kOpen, kDone } state = kConnecting;
  // rr: bytes of the current request written and of its response read; when it started.
  std::size_t written = 0;
  std::size_t read = 0;
  int64_t request_start_ns = 0;
  bool idle = false;       // rr: the request budget is spent
  bool in_flight = false;  // rr: a request was issued and its response is not in yet
};

// Shared between the threads of one run.
struct Run {
  Run(const TcpClientOptions& o, std::size_t l) : options(o), length(l) {}
  const TcpClientOptions& options;
  std::size_t length;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> requests_issued{0};
  std::atomic<uint64_t> requests_done{0};
  std::atomic<uint64_t> requests_abandoned{0};  // issued on a connection that then failed
  std::mutex mu;
  std::condition_variable cv;
  int connecting_threads = 0;  // guarded by mu: threads still connecting
  bool go = false;             // guarded by mu: every connect is over, traffic may start
  bool finished = false;       // guarded by mu: the rr request budget is spent
  int trafficking = 0;         // guarded by mu: threads still moving data
  int64_t traffic_end_ns = 0;  // guarded by mu: when the last of them stopped
};

// One worker thread's connections and figures.
class Worker {
 public:
  Worker(Run& run, int connections) : run_(run), conns_(static_cast<std::size_t>(connections)) {}

  // Figures read by the reporting thread while the run goes on.
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> requests_sent{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<int> live{0};  // connections open (set once connects are over)

  // The latency of what completed since the last call (the reporting thread's interval).
  stats::Histogram TakeIntervalLatency() {
    std::lock_guard<std::mutex> lock(interval_mu_);
    stats::Histogram out(stats::LatencyEdgesUs());
    std::swap(out, interval_latency_);
    return out;
  }

  // Read after the thread ended.
  stats::Histogram latency{stats::LatencyEdgesUs()};
  int established = 0;
  uint64_t connect_errors = 0;
  uint64_t resets = 0;
  uint64_t closed_by_server = 0;
  std::string first_error;

  void Main() {
    Connect();
    {
      std::unique_lock<std::mutex> lock(run_.mu);
      if (--run_.connecting_threads == 0) run_.cv.notify_all();
      run_.cv.wait(lock, [&] { return run_.go; });
    }
    Traffic();
    {
      std::lock_guard<std::mutex> lock(run_.mu);
      run_.traffic_end_ns = std::max(run_.traffic_end_ns, MonotonicNowNs());
      if (--run_.trafficking == 0) run_.cv.notify_all();
    }
    Drain();
  }

 private:
  void NoteError(const absl::Status& status) {
    if (first_error.empty()) first_error = std::string(status.message());
  }

  // Starts every connect, then waits for them (at most connect_timeout_ns).
  void Connect() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) {
      NoteError(ErrnoToStatus(errno, "epoll_create1"));
      connect_errors += conns_.size();
      for (auto& c : conns_) c.state = Connection::kDone;
      return;
    }
    int pending = 0;
    for (auto& c : conns_) {
      auto fd = net::StartConnect(run_.options.server);
      if (!fd.ok()) {
        NoteError(fd.status());
        ++connect_errors;
        c.state = Connection::kDone;
        continue;
      }
      c.fd = std::move(*fd);
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.ptr = &c;
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) != 0) {
        NoteError(ErrnoToStatus(errno, "epoll_ctl"));
        ++connect_errors;
        c.fd.reset();
        c.state = Connection::kDone;
        continue;
      }
      ++pending;
    }
    const int64_t deadline = MonotonicNowNs() + run_.options.connect_timeout_ns;
    std::vector<epoll_event> events(256);
    while (pending > 0) {
      const int64_t left_ms = (deadline - MonotonicNowNs()) / 1'000'000;
      if (left_ms <= 0) break;
      const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()),
                                 static_cast<int>(std::min<int64_t>(left_ms, 100)));
      for (int i = 0; i < n; ++i) {
        auto* c = static_cast<Connection*>(events[i].data.ptr);
        if (c->state != Connection::kConnecting) continue;
        if ((events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) continue;
        --pending;
        if (absl::Status s = net::FinishConnect(c->fd.get(), run_.options.server); !s.ok()) {
          NoteError(s);
          ++connect_errors;
          Close(*c);
          continue;
        }
        c->state = Connection::kOpen;
        ++established;
        if (run_.options.mode == TcpClientMode::kRequestResponse) {
          (void)net::SetNoDelay(c->fd.get(), true);
        }
      }
    }
    for (auto& c : conns_) {
      if (c.state == Connection::kConnecting) {
        NoteError(absl::DeadlineExceededError(
            absl::StrCat("connect(tcp ", run_.options.server.ToString(), "): no answer within ",
                         run_.options.connect_timeout_ns / 1'000'000, " ms")));
        ++connect_errors;
        Close(c);
      }
    }
    errors.fetch_add(connect_errors, std::memory_order_relaxed);
    live.store(established, std::memory_order_relaxed);
  }

  void Close(Connection& c) {
    c.fd.reset();
    c.state = Connection::kDone;
  }

  // With a request budget, the run is over once every issued request completed or was lost
  // with its connection, and no more can be issued.
  void CheckRequestBudget() {
    const uint64_t budget = run_.options.requests;
    if (run_.requests_done.load() + run_.requests_abandoned.load() < budget) return;
    std::lock_guard<std::mutex> lock(run_.mu);
    run_.finished = true;
    run_.cv.notify_all();
  }

  // Ends `c` because of `r` (a close, reset or error from the server's side).
  void Fail(Connection& c, const IoResult& r) {
    if (r.kind == IoResult::kClosed) {
      ++closed_by_server;
      NoteError(absl::UnavailableError(
          absl::StrCat("the server ", run_.options.server.ToString(), " closed a connection")));
    } else {
      ++resets;
      NoteError(r.ToStatus(absl::StrCat("tcp ", run_.options.server.ToString())));
    }
    errors.fetch_add(1, std::memory_order_relaxed);
    live.fetch_sub(1, std::memory_order_relaxed);
    Close(c);
    if (c.in_flight && run_.options.requests > 0) {
      c.in_flight = false;
      run_.requests_abandoned.fetch_add(1);
      CheckRequestBudget();
    }
  }

  void Traffic() {
    buffer_.resize(std::max<std::size_t>(run_.length, 64 * 1024));
    for (std::size_t i = 0; i < buffer_.size(); ++i) buffer_[i] = static_cast<uint8_t>(i * 7);
    int open = 0;
    for (auto& c : conns_) {
      if (c.state != Connection::kOpen) continue;
      if (run_.options.reverse) {
        // A source server sends from the moment it accepts: what came before the start is
        // not part of the run.
        while (net::ReadSome(c.fd.get(), absl::MakeSpan(buffer_)).kind == IoResult::kData) {
        }
      }
      ++open;
      Serve(c);  // edge-triggered: the connect's events are spent; start now
    }
    std::vector<epoll_event> events(256);
    while (!run_.stop.load(std::memory_order_relaxed) && open > 0) {
      const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), 50);
      for (int i = 0; i < n; ++i) {
        auto* c = static_cast<Connection*>(events[i].data.ptr);
        if (c->state != Connection::kOpen) continue;
        Serve(*c);
        if (c->state == Connection::kDone) --open;
      }
    }
  }

  // Moves `c` on until its socket would block.
  void Serve(Connection& c) {
    switch (run_.options.mode) {
      case TcpClientMode::kRequestResponse:
        return ServeRequestResponse(c);
      case TcpClientMode::kBulk:
        return run_.options.reverse ? ServeBulkReceive(c) : ServeBulkSend(c);
    }
  }

  void ServeRequestResponse(Connection& c) {
    const std::size_t length = run_.length;
    for (int rounds = 0; rounds < 64 && c.state == Connection::kOpen; ++rounds) {
      if (c.idle) return;
      if (c.written == 0 && c.read == 0) {
        // A new request, within the run's budget.
        if (run_.options.requests > 0 &&
            run_.requests_issued.fetch_add(1, std::memory_order_relaxed) >= run_.options.requests) {
          c.idle = true;
          return;
        }
        c.request_start_ns = MonotonicNowNs();
        c.in_flight = true;
        requests_sent.fetch_add(1, std::memory_order_relaxed);
      }
      if (c.written < length) {
        const IoResult w = net::WriteSome(
            c.fd.get(), absl::MakeConstSpan(buffer_.data() + c.written, length - c.written));
        if (w.kind == IoResult::kWouldBlock) return;
        if (w.kind != IoResult::kData) return Fail(c, w);
        c.written += w.bytes;
        bytes_sent.fetch_add(w.bytes, std::memory_order_relaxed);
        if (c.written < length) continue;
        // The response cannot be there yet; its arrival raises an event (edge-triggered),
        // so do not spend a read that would find nothing.
        if (c.read == 0) return;
      }
      // Only this request's response can arrive (one in flight), so reading up to what is
      // missing never takes bytes of another response.
      const IoResult r = net::ReadSome(
          c.fd.get(), absl::MakeSpan(scratch_.data(), std::min(scratch_.size(), length - c.read)));
      if (r.kind == IoResult::kWouldBlock) return;
      if (r.kind != IoResult::kData) return Fail(c, r);
      c.read += r.bytes;
      bytes_received.fetch_add(r.bytes, std::memory_order_relaxed);
      if (c.read < length) continue;
      const double us = static_cast<double>(MonotonicNowNs() - c.request_start_ns) / 1000.0;
      latency.Add(us);
      {
        std::lock_guard<std::mutex> lock(interval_mu_);
        interval_latency_.Add(us);
      }
      requests.fetch_add(1, std::memory_order_relaxed);
      c.written = c.read = 0;
      c.in_flight = false;
      if (run_.options.requests > 0) {
        run_.requests_done.fetch_add(1, std::memory_order_relaxed);
        CheckRequestBudget();
      }
    }
    if (c.state == Connection::kOpen) Defer(c);
  }

  void ServeBulkSend(Connection& c) {
    for (int rounds = 0; rounds < 16; ++rounds) {
      const IoResult w =
          net::WriteSome(c.fd.get(), absl::MakeConstSpan(buffer_.data(), run_.length));
      if (w.kind == IoResult::kWouldBlock) return;
      if (w.kind != IoResult::kData) return Fail(c, w);
      bytes_sent.fetch_add(w.bytes, std::memory_order_relaxed);
    }
    Defer(c);
  }

  void ServeBulkReceive(Connection& c) {
    for (int rounds = 0; rounds < 16; ++rounds) {
      const IoResult r = net::ReadSome(c.fd.get(), absl::MakeSpan(buffer_));
      if (r.kind == IoResult::kWouldBlock) return;
      if (r.kind != IoResult::kData) return Fail(c, r);
      bytes_received.fetch_add(r.bytes, std::memory_order_relaxed);
    }
    Defer(c);
  }

  // The budget ran out with the socket still ready: edge-triggered epoll will not report it
  // again, so queue a fake event by re-arming (EPOLL_CTL_MOD re-evaluates readiness).
  void Defer(Connection& c) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = &c;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
  }

  // Ends every open connection in an orderly way: FIN, then read until the server closes (at
  // most kDrainNs), so the server sees a clean close rather than a reset.
  void Drain() {
    int open = 0;
    for (auto& c : conns_) {
      if (c.state != Connection::kOpen) continue;
      ::shutdown(c.fd.get(), SHUT_WR);
      ++open;
    }
    const int64_t deadline = MonotonicNowNs() + kDrainNs;
    std::vector<epoll_event> events(256);
    while (open > 0) {
      const int64_t left_ms = (deadline - MonotonicNowNs()) / 1'000'000;
      if (left_ms <= 0) break;
      const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()),
                                 static_cast<int>(left_ms));
      for (int i = 0; i < n; ++i) {
        auto* c = static_cast<Connection*>(events[i].data.ptr);
        if (c->state != Connection::kOpen) continue;
        for (;;) {
          const IoResult r = net::ReadSome(c->fd.get(), absl::MakeSpan(buffer_));
          if (r.kind == IoResult::kData) continue;
          if (r.kind == IoResult::kWouldBlock) break;
          Close(*c);
          --open;
          break;
        }
      }
    }
    for (auto& c : conns_) Close(c);
  }

  Run& run_;
  std::vector<Connection> conns_;
  ScopedFd epoll_;
  std::vector<uint8_t> buffer_;               // what is written; bulk reads
  std::array<uint8_t, 64 * 1024> scratch_{};  // rr responses
  std::mutex interval_mu_;
  stats::Histogram interval_latency_{stats::LatencyEdgesUs()};  // guarded by interval_mu_
};

}  // namespace

const char* TcpClientModeName(TcpClientMode mode) {
  return mode == TcpClientMode::kRequestResponse ? "rr" : "bulk";
}

absl::StatusOr<TcpClientMode> ParseTcpClientMode(absl::string_view name) {
  if (name == "rr") return TcpClientMode::kRequestResponse;
  if (name == "bulk") return TcpClientMode::kBulk;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown TCP client mode '", name, "': use rr (request/response) or bulk"));
}

std::size_t TcpClientOptions::effective_length() const {
  if (length != 0) return length;
  return mode == TcpClientMode::kRequestResponse ? kDefaultRrLength : kDefaultBulkLength;
}

absl::Status TcpClientOptions::Validate() const {
  if (connections < 1 || connections > 1'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("connections must be in [1, 1000000], got ", connections));
  }
  if (threads < 1 || threads > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("threads must be in [1, 1024], got ", threads));
  }
  if (threads > connections) {
    return absl::InvalidArgumentError(absl::StrCat("threads (", threads,
                                                   ") must not exceed connections (", connections,
                                                   "): each thread needs one"));
  }
  if (duration_ns <= 0 && requests == 0) {
    return absl::InvalidArgumentError("give a duration > 0 or a number of requests");
  }
  if (mode == TcpClientMode::kRequestResponse && length > 64 * 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("request length must be in [1, 65536] bytes, got ", length));
  }
  if (length > (16u << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("write length must be in [1, 16777216] bytes, got ", length));
  }
  if (requests > 0 && mode != TcpClientMode::kRequestResponse) {
    return absl::InvalidArgumentError("a number of requests applies to rr mode only");
  }
  if (reverse && mode != TcpClientMode::kBulk) {
    return absl::InvalidArgumentError("reverse applies to bulk mode only");
  }
  if (connect_timeout_ns <= 0) return absl::InvalidArgumentError("the connect timeout must be > 0");
  if (interval_ns != 0 && (interval_ns < kMinIntervalNs || interval_ns < 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the report interval must be 0 (none) or >= 10ms, got ", interval_ns, " ns"));
  }
  return absl::OkStatus();
}

double TcpClientReport::bits_per_second() const {
  if (seconds <= 0) return 0;
  const uint64_t bytes = mode == TcpClientMode::kBulk && reverse ? bytes_received : bytes_sent;
  return static_cast<double>(bytes) * 8.0 / seconds;
}

double TcpClientReport::requests_per_second() const {
  return seconds <= 0 ? 0 : static_cast<double>(requests) / seconds;
}

absl::StatusOr<TcpClientReport> RunTcpClient(const TcpClientOptions& options,
                                             const std::atomic<bool>* cancel,
                                             const IntervalCallback& on_interval) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  Run run(options, options.effective_length());
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < options.threads; ++t) {
    // Connections spread evenly: the first (connections % threads) threads take one more.
    const int n =
        options.connections / options.threads + (t < options.connections % options.threads ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(run, n));
  }
  run.connecting_threads = options.threads;
  run.trafficking = options.threads;
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([w = w.get()] { w->Main(); });

  TcpClientReport report;
  report.mode = options.mode;
  report.reverse = options.reverse;
  report.server = options.server.ToString();
  report.length = run.length;
  report.threads = options.threads;
  report.connections_requested = options.connections;

  auto cancelled = [&] { return cancel != nullptr && cancel->load(); };
  int64_t start_ns;
  {
    std::unique_lock<std::mutex> lock(run.mu);
    run.cv.wait(lock, [&] { return run.connecting_threads == 0; });
    run.go = true;
    start_ns = MonotonicNowNs();
  }
  run.cv.notify_all();

  struct Totals {
    uint64_t sent = 0, received = 0, requests_sent = 0, requests = 0, errors = 0;
  };
  auto totals = [&] {
    Totals t;
    for (auto& w : workers) {
      t.sent += w->bytes_sent.load(std::memory_order_relaxed);
      t.received += w->bytes_received.load(std::memory_order_relaxed);
      t.requests_sent += w->requests_sent.load(std::memory_order_relaxed);
      t.requests += w->requests.load(std::memory_order_relaxed);
      t.errors += w->errors.load(std::memory_order_relaxed);
    }
    return t;
  };
  // Connect errors belong to the first interval.
  Totals last;
  int64_t last_ns = start_ns;
  auto emit_interval = [&](int64_t now_ns) {
    const Totals t = totals();
    IntervalSample s;
    s.start_s = static_cast<double>(last_ns - start_ns) / 1e9;
    s.end_s = static_cast<double>(now_ns - start_ns) / 1e9;
    s.bytes_sent = t.sent - last.sent;
    s.bytes_received = t.received - last.received;
    s.messages_sent = t.requests_sent - last.requests_sent;
    s.messages_received = t.requests - last.requests;
    s.errors = t.errors - last.errors;
    stats::Histogram latency(stats::LatencyEdgesUs());
    for (auto& w : workers) (void)latency.Merge(w->TakeIntervalLatency());
    if (latency.count() > 0) {
      s.latency_p50_us = latency.Quantile(0.5);
      s.latency_p99_us = latency.Quantile(0.99);
      s.latency_max_us = latency.max();
    }
    last = t;
    last_ns = now_ns;
    report.intervals.push_back(s);
    if (on_interval) on_interval(s);
  };

  const int64_t end_ns = options.duration_ns > 0 ? start_ns + options.duration_ns : INT64_MAX;
  int64_t next_interval_ns = options.interval_ns > 0 ? start_ns + options.interval_ns : INT64_MAX;
  for (;;) {
    const int64_t now = MonotonicNowNs();
    if (now >= end_ns || cancelled()) break;
    {
      std::lock_guard<std::mutex> lock(run.mu);
      if (run.finished) break;
    }
    int live = 0;
    for (auto& w : workers) live += w->live.load(std::memory_order_relaxed);
    if (live == 0) break;  // the server ended every connection: nothing more will happen
    if (now >= next_interval_ns) {
      emit_interval(now);
      next_interval_ns += options.interval_ns;
      continue;
    }
    // Wake at the next interval, the end, a finished request budget, or in 20 ms to look at
    // `cancel`.
    const int64_t wake = std::min({next_interval_ns, end_ns, now + 20'000'000});
    std::unique_lock<std::mutex> lock(run.mu);
    run.cv.wait_for(lock, std::chrono::nanoseconds(wake - now), [&] { return run.finished; });
  }
  // Stop, and wait until no thread moves data any more: the figures are then final (what
  // moves while connections drain is not part of the run).
  run.stop = true;
  int64_t stop_ns;
  {
    std::unique_lock<std::mutex> lock(run.mu);
    run.cv.wait(lock, [&] { return run.trafficking == 0; });
    stop_ns = std::max(run.traffic_end_ns, start_ns + 1);
  }
  report.interrupted = cancelled();
  const Totals final_totals = totals();
  // The last, partial interval, so that the intervals add up to the totals.
  if (options.interval_ns > 0 &&
      (stop_ns > last_ns + 1'000'000 || final_totals.sent != last.sent ||
       final_totals.received != last.received || final_totals.errors != last.errors)) {
    emit_interval(std::max(stop_ns, last_ns));
  }
  for (auto& t : threads) t.join();

  report.seconds = static_cast<double>(stop_ns - start_ns) / 1e9;
  report.bytes_sent = final_totals.sent;
  report.bytes_received = final_totals.received;
  report.requests = final_totals.requests;
  for (auto& w : workers) {
    report.connections_established += w->established;
    report.connect_errors += w->connect_errors;
    report.resets += w->resets;
    report.closed_by_server += w->closed_by_server;
    (void)report.latency_us.Merge(w->latency);
    if (report.first_error.empty()) report.first_error = w->first_error;
  }
  if (report.connections_established == 0) {
    return absl::UnavailableError(absl::StrCat("no connection to ", report.server,
                                               " could be established: ", report.first_error));
  }
  return report;
}

nlohmann::json TcpClientReportToJson(const TcpClientReport& r) {
  nlohmann::json intervals = nlohmann::json::array();
  for (const auto& s : r.intervals) intervals.push_back(IntervalToJson(s));
  return {{"mode", TcpClientModeName(r.mode)},
          {"server", r.server},
          {"reverse", r.reverse},
          {"length", r.length},
          {"threads", r.threads},
          {"connections",
           {{"requested", r.connections_requested},
            {"established", r.connections_established},
            {"connect_errors", r.connect_errors},
            {"resets", r.resets},
            {"closed_by_server", r.closed_by_server}}},
          {"seconds", r.seconds},
          {"bytes_sent", r.bytes_sent},
          {"bytes_received", r.bytes_received},
          {"bits_per_second", r.bits_per_second()},
          {"requests", r.requests},
          {"requests_per_second", r.requests_per_second()},
          {"latency_us", LatencySummaryJson(r.latency_us)},
          {"latency_histogram", SparseBucketsJson(r.latency_us, "latency_us_v1")},
          {"errors", r.errors()},
          {"first_error", r.first_error},
          {"interrupted", r.interrupted},
          {"intervals", std::move(intervals)}};
}

}  // namespace lab::traffic

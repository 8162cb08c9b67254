#include "dataplane/traffic/tcp_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "dataplane/net/scoped_fd.h"
#include "dataplane/net/tcp_socket.h"

namespace lab::traffic {

namespace {

using net::IoResult;
using net::ScopedFd;

// Reads or writes per connection before another connection gets its turn.
constexpr int kStepBudget = 16;
// The thread-pool engine's workers unless told.
constexpr int kDefaultWorkers = 256;
// Connections accepted per wake-up of the listener.
constexpr int kAcceptBatch = 64;

// One open connection. Only the thread serving it touches fd/pending; the byte counters are
// read by other threads (Connections(), counters()).
struct Conn {
  ScopedFd fd;
  uint64_t id = 0;
  net::SocketAddress peer;
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> bytes_sent{0};
  // Echo: bytes read but not yet written back (the peer is slow to read).
  std::vector<uint8_t> pending;
  std::size_t pending_offset = 0;
  bool in_ready_list = false;
  // Edge-triggered epoll said the peer closed (or the socket failed): read until EAGAIN,
  // since no further event will announce the end.
  bool hangup_seen = false;
};

// What a connection needs next.
enum class Next {
  kWaitRead,   // read hit EAGAIN
  kWaitWrite,  // write hit EAGAIN
  kMore,       // the budget ran out with work left
  kClosed,     // the peer closed (or the server must close it)
  kReset,
  kError,
};

Next FromIo(const IoResult& r) {
  switch (r.kind) {
    case IoResult::kClosed:
      return Next::kClosed;
    case IoResult::kReset:
      return Next::kReset;
    default:
      return Next::kError;
  }
}

// Does up to kStepBudget reads/writes of `mode` on `c`, using `buffer` as scratch.
Next Step(TcpMode mode, Conn& c, std::vector<uint8_t>& buffer, absl::Span<const uint8_t> pattern) {
  for (int i = 0; i < kStepBudget; ++i) {
    if (mode == TcpMode::kSource) {
      // Notice the peer's close (or reset) even while we only write.
      if (i == 0) {
        const IoResult r = net::ReadSome(c.fd.get(), absl::MakeSpan(buffer));
        if (r.kind == IoResult::kData) {
          c.bytes_received.fetch_add(r.bytes, std::memory_order_relaxed);
        } else if (r.kind != IoResult::kWouldBlock) {
          return FromIo(r);
        }
      }
      const IoResult w = net::WriteSome(c.fd.get(), pattern);
      if (w.kind == IoResult::kWouldBlock) return Next::kWaitWrite;
      if (w.kind != IoResult::kData) return FromIo(w);
      c.bytes_sent.fetch_add(w.bytes, std::memory_order_relaxed);
      continue;
    }
    if (!c.pending.empty()) {
      const auto rest = absl::MakeConstSpan(c.pending).subspan(c.pending_offset);
      const IoResult w = net::WriteSome(c.fd.get(), rest);
      if (w.kind == IoResult::kWouldBlock) return Next::kWaitWrite;
      if (w.kind != IoResult::kData) return FromIo(w);
      c.bytes_sent.fetch_add(w.bytes, std::memory_order_relaxed);
      c.pending_offset += w.bytes;
      if (c.pending_offset < c.pending.size()) continue;
      std::vector<uint8_t>().swap(c.pending);  // give the memory back
      c.pending_offset = 0;
    }
    const IoResult r = net::ReadSome(c.fd.get(), absl::MakeSpan(buffer));
    if (r.kind == IoResult::kWouldBlock) return Next::kWaitRead;
    if (r.kind != IoResult::kData) return FromIo(r);
    c.bytes_received.fetch_add(r.bytes, std::memory_order_relaxed);
    // A short read took everything there was: more data (or the peer's FIN) arriving later
    // raises a new event, so waiting now saves a read that would find nothing.
    const bool drained = r.bytes < buffer.size() && !c.hangup_seen;
    if (mode == TcpMode::kSink) {
      if (drained) return Next::kWaitRead;
      continue;
    }
    // Echo: write it back at once; keep what the socket did not take.
    const auto data = absl::MakeConstSpan(buffer.data(), r.bytes);
    const IoResult w = net::WriteSome(c.fd.get(), data);
    std::size_t written = 0;
    if (w.kind == IoResult::kData) {
      written = w.bytes;
      c.bytes_sent.fetch_add(written, std::memory_order_relaxed);
    } else if (w.kind != IoResult::kWouldBlock) {
      return FromIo(w);
    }
    if (written < data.size()) {
      c.pending.assign(data.begin() + static_cast<std::ptrdiff_t>(written), data.end());
      c.pending_offset = 0;
      return w.kind == IoResult::kWouldBlock ? Next::kWaitWrite : Next::kMore;
    }
    if (drained) return Next::kWaitRead;
  }
  return Next::kMore;
}

// The state both engines share: the listener, the cap, the registry of open connections and
// the totals of closed ones.
class ServerBase : public TcpServer {
 public:
  ServerBase(const TcpServerOptions& options, net::TcpListener listener,
             std::shared_ptr<spdlog::logger> logger)
      : options_(options),
        listener_(std::move(listener)),
        logger_(std::move(logger)),
        pattern_(options.io_bytes),
        cap_(options.max_connections),
        reserve_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {
    for (std::size_t i = 0; i < pattern_.size(); ++i) {
      pattern_[i] = static_cast<uint8_t>('a' + i % 26);
    }
  }

  const net::SocketAddress& local_address() const override { return listener_.local_address(); }

  TcpServerCounters counters() const override {
    std::lock_guard<std::mutex> lock(mu_);
    TcpServerCounters c = closed_totals_;
    c.accepted = accepted_.load(std::memory_order_relaxed);
    c.refused = refused_.load(std::memory_order_relaxed);
    c.errors += accept_errors_.load(std::memory_order_relaxed);
    c.active = open_.size();
    c.peak_active = peak_active_;
    for (const auto& [id, conn] : open_) {
      c.bytes_received += conn->bytes_received.load(std::memory_order_relaxed);
      c.bytes_sent += conn->bytes_sent.load(std::memory_order_relaxed);
    }
    return c;
  }

  std::vector<TcpConnectionInfo> Connections() const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<TcpConnectionInfo> out;
    out.reserve(open_.size());
    for (const auto& [id, conn] : open_) {
      out.push_back({id, conn->peer, conn->bytes_received.load(std::memory_order_relaxed),
                     conn->bytes_sent.load(std::memory_order_relaxed)});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
  }

 protected:
  // Accepts up to kAcceptBatch waiting connections; those within the cap are returned
  // (registered), the others refused.
  std::vector<std::unique_ptr<Conn>> AcceptSome() {
    std::vector<std::unique_ptr<Conn>> out;
    for (int i = 0; i < kAcceptBatch; ++i) {
      auto accepted = listener_.Accept();
      if (absl::IsResourceExhausted(accepted.status())) {
        // Out of descriptors: the connection would stay queued and the listener readable, so
        // the loop would spin. Free the reserve descriptor, take the connection and close it
        // (refused), then take the reserve back.
        std::lock_guard<std::mutex> lock(reserve_mu_);
        reserve_.reset();
        auto taken = listener_.Accept();
        if (taken.ok()) Refuse(taken->peer, "out of file descriptors");
        reserve_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        if (!taken.ok()) break;
        continue;
      }
      if (!accepted.ok()) {
        if (!absl::IsUnavailable(accepted.status())) {
          accept_errors_.fetch_add(1, std::memory_order_relaxed);
          logger_->warn("tcp server {}: {}", local_address().ToString(),
                        accepted.status().ToString());
        }
        break;
      }
      auto conn = std::make_unique<Conn>();
      conn->fd = std::move(accepted->fd);
      conn->peer = accepted->peer;
      if (!Register(conn.get())) {
        Refuse(conn->peer, "at the cap");
        continue;  // closing conn->fd sends the FIN
      }
      if (options_.mode != TcpMode::kSink) (void)net::SetNoDelay(conn->fd.get(), true);
      out.push_back(std::move(conn));
    }
    return out;
  }

  // Adds `conn` to the open set unless the cap is reached.
  bool Register(Conn* conn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (open_.size() >= static_cast<std::size_t>(cap_)) return false;
    conn->id = ++last_id_;
    open_.emplace(conn->id, conn);
    peak_active_ = std::max<uint64_t>(peak_active_, open_.size());
    accepted_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  // Removes `conn` from the open set, adding its figures to the totals. The caller then
  // destroys it (closing the socket).
  void Unregister(Conn* conn, Next why) {
    std::lock_guard<std::mutex> lock(mu_);
    open_.erase(conn->id);
    closed_totals_.closed++;
    closed_totals_.bytes_received += conn->bytes_received.load(std::memory_order_relaxed);
    closed_totals_.bytes_sent += conn->bytes_sent.load(std::memory_order_relaxed);
    if (why == Next::kReset) closed_totals_.resets++;
    if (why == Next::kError) closed_totals_.errors++;
  }

  void Refuse(const net::SocketAddress& peer, const char* why) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    const int64_t now = MonotonicNowNs();
    int64_t last = last_refusal_log_ns_.load(std::memory_order_relaxed);
    if (now - last >= 1'000'000'000 &&
        last_refusal_log_ns_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
      logger_->warn("tcp server {}: refused {} {} (cap {} connections; {} refused so far)",
                    local_address().ToString(), peer.ToString(), why, cap_,
                    refused_.load(std::memory_order_relaxed));
    }
  }

  const TcpServerOptions options_;
  net::TcpListener listener_;
  std::shared_ptr<spdlog::logger> logger_;
  std::vector<uint8_t> pattern_;  // what source mode sends
  int cap_;                       // connections open at most

 private:
  mutable std::mutex mu_;
  absl::flat_hash_map<uint64_t, Conn*> open_;  // guarded by mu_
  TcpServerCounters closed_totals_;            // guarded by mu_
  uint64_t peak_active_ = 0;                   // guarded by mu_
  uint64_t last_id_ = 0;                       // guarded by mu_
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> accept_errors_{0};
  std::atomic<int64_t> last_refusal_log_ns_{0};
  std::mutex reserve_mu_;
  net::ScopedFd reserve_;  // guarded by reserve_mu_: given up to refuse when out of descriptors
};

// An eventfd that, once signalled, stays readable: wakes every poll/epoll waiting on it.
absl::StatusOr<ScopedFd> NewStopEvent() {
  ScopedFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) return ErrnoToStatus(errno, "eventfd");
  return fd;
}

void Signal(const ScopedFd& event) {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(event.get(), &one, sizeof(one));
}

// ---------------------------------------------------------------------------------------------
// Epoll engine.

class EpollServer final : public ServerBase {
 public:
  EpollServer(const TcpServerOptions& options, net::TcpListener listener,
              std::shared_ptr<spdlog::logger> logger, ScopedFd stop)
      : ServerBase(options, std::move(listener), std::move(logger)), stop_(std::move(stop)) {}

  ~EpollServer() override { Stop(); }

  absl::Status Init() {
    const int loops = options_.threads > 0 ? options_.threads : 1;
    for (int i = 0; i < loops; ++i) {
      auto loop = std::make_unique<Loop>();
      loop->epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
      if (!loop->epoll.valid()) return ErrnoToStatus(errno, "epoll_create1");
      // Every loop watches the listener; EPOLLEXCLUSIVE wakes only one of them per arrival.
      epoll_event ev{};
      ev.events = loops > 1 ? uint32_t{EPOLLIN} | uint32_t{EPOLLEXCLUSIVE} : uint32_t{EPOLLIN};
      ev.data.ptr = &listener_;
      if (::epoll_ctl(loop->epoll.get(), EPOLL_CTL_ADD, listener_.fd(), &ev) != 0) {
        return ErrnoToStatus(errno, "epoll_ctl(listener)");
      }
      ev.events = EPOLLIN;
      ev.data.ptr = &stop_;
      if (::epoll_ctl(loop->epoll.get(), EPOLL_CTL_ADD, stop_.get(), &ev) != 0) {
        return ErrnoToStatus(errno, "epoll_ctl(stop)");
      }
      loop->buffer.resize(options_.io_bytes);
      loops_.push_back(std::move(loop));
    }
    for (auto& loop : loops_) loop->thread = std::thread([this, l = loop.get()] { Run(*l); });
    return absl::OkStatus();
  }

  void Stop() override {
    std::call_once(stopped_, [this] {
      Signal(stop_);
      for (auto& loop : loops_) {
        if (loop->thread.joinable()) loop->thread.join();
      }
    });
  }

 private:
  struct Loop {
    ScopedFd epoll;
    std::vector<uint8_t> buffer;
    std::thread thread;
    absl::flat_hash_map<Conn*, std::unique_ptr<Conn>> conns;  // this loop's thread only
    std::vector<Conn*> ready;                                 // connections whose budget ran out
  };

  void Run(Loop& loop) {
    std::vector<epoll_event> events(256);
    bool stopping = false;
    while (!stopping) {
      const int timeout = loop.ready.empty() ? -1 : 0;
      const int n =
          ::epoll_wait(loop.epoll.get(), events.data(), static_cast<int>(events.size()), timeout);
      if (n < 0 && errno != EINTR) {
        logger_->error("tcp server: {}", ErrnoToStatus(errno, "epoll_wait").ToString());
        break;
      }
      for (int i = 0; i < n; ++i) {
        void* tag = events[i].data.ptr;
        if (tag == &stop_) {
          stopping = true;
        } else if (tag == &listener_) {
          for (auto& conn : AcceptSome()) Adopt(loop, std::move(conn));
        } else {
          auto* c = static_cast<Conn*>(tag);
          if ((events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) c->hangup_seen = true;
          Serve(loop, c);
        }
      }
      // Connections that still had work: one more step each (new ones may re-enter).
      std::vector<Conn*> ready;
      ready.swap(loop.ready);
      for (Conn* c : ready) {
        c->in_ready_list = false;
        Serve(loop, c);
      }
    }
    for (auto& [ptr, conn] : loop.conns) Unregister(ptr, Next::kClosed);
    loop.conns.clear();
  }

  void Adopt(Loop& loop, std::unique_ptr<Conn> conn) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = conn.get();
    if (::epoll_ctl(loop.epoll.get(), EPOLL_CTL_ADD, conn->fd.get(), &ev) != 0) {
      logger_->warn("tcp server: {}", ErrnoToStatus(errno, "epoll_ctl(add)").ToString());
      Unregister(conn.get(), Next::kError);
      return;
    }
    Conn* c = conn.get();
    loop.conns.emplace(c, std::move(conn));
    Serve(loop, c);  // data may already be waiting (edge-triggered: no event for it)
  }

  void Serve(Loop& loop, Conn* c) {
    if (c->in_ready_list) return;  // its turn comes after this batch of events
    const Next next = Step(options_.mode, *c, loop.buffer, pattern_);
    switch (next) {
      case Next::kWaitRead:
      case Next::kWaitWrite:
        return;
      case Next::kMore:
        c->in_ready_list = true;
        loop.ready.push_back(c);
        return;
      default:
        Close(loop, c, next);
    }
  }

  void Close(Loop& loop, Conn* c, Next why) {
    Unregister(c, why);
    loop.conns.erase(c);  // closes the socket (and removes it from the epoll set)
  }

  ScopedFd stop_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::once_flag stopped_;
};

// ---------------------------------------------------------------------------------------------
// Thread-pool engine.

class ThreadPoolServer final : public ServerBase {
 public:
  ThreadPoolServer(const TcpServerOptions& options, net::TcpListener listener,
                   std::shared_ptr<spdlog::logger> logger, ScopedFd stop)
      : ServerBase(options, std::move(listener), std::move(logger)), stop_(std::move(stop)) {}

  ~ThreadPoolServer() override { Stop(); }

  absl::Status Init() {
    const int workers = options_.threads > 0 ? options_.threads : kDefaultWorkers;
    // One worker per connection, at once: a connection never waits unserved for a worker.
    cap_ = std::min(cap_, workers);
    for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { Work(); });
    acceptor_ = std::thread([this] { AcceptLoop(); });
    return absl::OkStatus();
  }

  void Stop() override {
    std::call_once(stopped_, [this] {
      stopping_flag_ = true;
      Signal(stop_);
      {
        std::lock_guard<std::mutex> lock(queue_mu_);
        stopping_ = true;
      }
      queue_cv_.notify_all();
      if (acceptor_.joinable()) acceptor_.join();
      for (auto& t : workers_) t.join();
      for (auto& conn : queue_) Unregister(conn.get(), Next::kClosed);
      queue_.clear();
    });
  }

 private:
  void AcceptLoop() {
    pollfd fds[2] = {{listener_.fd(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    for (;;) {
      const int rc = ::poll(fds, 2, -1);
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0 || (fds[1].revents & POLLIN) != 0) return;
      auto conns = AcceptSome();
      if (conns.empty()) continue;
      {
        std::lock_guard<std::mutex> lock(queue_mu_);
        for (auto& c : conns) queue_.push_back(std::move(c));
      }
      queue_cv_.notify_all();
    }
  }

  void Work() {
    std::vector<uint8_t> buffer(options_.io_bytes);
    for (;;) {
      std::unique_ptr<Conn> conn;
      {
        std::unique_lock<std::mutex> lock(queue_mu_);
        queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        conn = std::move(queue_.front());
        queue_.pop_front();
      }
      Unregister(conn.get(), Serve(*conn, buffer));
    }
  }

  // Serves one connection to its end (or until Stop); returns why it ended.
  Next Serve(Conn& c, std::vector<uint8_t>& buffer) {
    for (;;) {
      const Next next = Step(options_.mode, c, buffer, pattern_);
      if (next == Next::kMore) {
        if (stopping_flag_.load(std::memory_order_relaxed)) return Next::kClosed;  // Stop()
        continue;
      }
      if (next != Next::kWaitRead && next != Next::kWaitWrite) return next;
      pollfd fds[2] = {
          {c.fd.get(), static_cast<short>(next == Next::kWaitRead ? POLLIN : POLLOUT), 0},
          {stop_.get(), POLLIN, 0}};
      int rc;
      do {
        rc = ::poll(fds, 2, -1);
      } while (rc < 0 && errno == EINTR);
      if (rc < 0) return Next::kError;
      if ((fds[1].revents & POLLIN) != 0) return Next::kClosed;  // Stop()
    }
  }

  ScopedFd stop_;
  std::thread acceptor_;
  std::vector<std::thread> workers_;
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::unique_ptr<Conn>> queue_;  // guarded by queue_mu_
  bool stopping_ = false;                    // guarded by queue_mu_
  std::atomic<bool> stopping_flag_{false};   // read by busy workers between steps
  std::once_flag stopped_;
};

}  // namespace

const char* TcpModeName(TcpMode mode) {
  switch (mode) {
    case TcpMode::kEcho:
      return "echo";
    case TcpMode::kSink:
      return "sink";
    case TcpMode::kSource:
      return "source";
  }
  return "?";
}

const char* TcpEngineName(TcpEngine engine) {
  return engine == TcpEngine::kEpoll ? "epoll" : "threads";
}

absl::StatusOr<TcpMode> ParseTcpMode(absl::string_view name) {
  for (TcpMode m : {TcpMode::kEcho, TcpMode::kSink, TcpMode::kSource}) {
    if (name == TcpModeName(m)) return m;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown TCP server mode '", name, "': use echo, sink or source"));
}

absl::StatusOr<TcpEngine> ParseTcpEngine(absl::string_view name) {
  for (TcpEngine e : {TcpEngine::kEpoll, TcpEngine::kThreads}) {
    if (name == TcpEngineName(e)) return e;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown TCP server engine '", name, "': use epoll or threads"));
}

absl::Status TcpServerOptions::Validate() const {
  if (max_connections < 1 || max_connections > 10'000'000) {
    return absl::InvalidArgumentError(
        absl::StrCat("max connections must be in [1, 10000000], got ", max_connections));
  }
  if (threads < 0 || threads > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("threads must be in [0, 4096], got ", threads));
  }
  if (io_bytes < 1 || io_bytes > (64u << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("I/O size must be in [1, 67108864] bytes, got ", io_bytes));
  }
  if (port_last != 0 && port_last < listen.port()) {
    return absl::InvalidArgumentError(absl::StrCat("port range ", listen.port(), "-", port_last,
                                                   " is empty: give FIRST-LAST, FIRST <= LAST"));
  }
  if (!allow_non_loopback && !listen.IsLoopback()) {
    return absl::InvalidArgumentError(
        absl::StrCat("refusing to listen on ", listen.HostString(),
                     " (not loopback) without --insecure: the TCP server has no authentication"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TcpServer>> TcpServer::Start(
    const TcpServerOptions& options, std::shared_ptr<spdlog::logger> logger) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (logger == nullptr) logger = NullLogger();
  absl::StatusOr<net::TcpListener> listener =
      options.port_last != 0 && options.listen.port() != 0
          ? net::TcpListener::ListenInRange(options.listen, options.listen.port(),
                                            options.port_last)
          : net::TcpListener::Listen(options.listen);
  if (!listener.ok()) return listener.status();
  auto stop = NewStopEvent();
  if (!stop.ok()) return stop.status();
  if (options.engine == TcpEngine::kEpoll) {
    auto server =
        std::make_unique<EpollServer>(options, std::move(*listener), logger, std::move(*stop));
    if (absl::Status s = server->Init(); !s.ok()) return s;
    return server;
  }
  auto server =
      std::make_unique<ThreadPoolServer>(options, std::move(*listener), logger, std::move(*stop));
  if (absl::Status s = server->Init(); !s.ok()) return s;
  return server;
}

nlohmann::json TcpServerCountersToJson(const TcpServerCounters& c) {
  return {{"accepted", c.accepted},
          {"refused", c.refused},
          {"closed", c.closed},
          {"resets", c.resets},
          {"errors", c.errors},
          {"active", c.active},
          {"peak_connections", c.peak_active},
          {"bytes_received", c.bytes_received},
          {"bytes_sent", c.bytes_sent}};
}

}  // namespace lab::traffic

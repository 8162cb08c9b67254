// Blocking helpers for TCP tests: a plain client socket driven with poll() and deadlines, and
// waiting for a condition (a server's counters) with a deadline.
#ifndef TESTS_DATAPLANE_TRAFFIC_TCP_TEST_UTIL_H_
#define TESTS_DATAPLANE_TRAFFIC_TCP_TEST_UTIL_H_

#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/net/tcp_socket.h"

namespace lab::traffic::testing {

inline int64_t NowMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

// Re-evaluates `done` until it holds or `timeout_ms` passes (checking every millisecond);
// returns whether it held.
inline bool WaitUntil(const std::function<bool()>& done, int64_t timeout_ms = 10'000) {
  const int64_t deadline = NowMs() + timeout_ms;
  while (!done()) {
    if (NowMs() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

inline bool WaitFd(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    const int64_t left = deadline_ms - NowMs();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc > 0) return true;
  }
}

// Writes all of `data` (false on error or after 10 s).
inline bool SendAll(int fd, const std::string& data) {
  const int64_t deadline = NowMs() + 10'000;
  std::size_t off = 0;
  while (off < data.size()) {
    const net::IoResult w =
        net::WriteSome(fd, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(data.data()) + off,
                                               data.size() - off));
    if (w.kind == net::IoResult::kData) {
      off += w.bytes;
    } else if (w.kind != net::IoResult::kWouldBlock || !WaitFd(fd, POLLOUT, deadline)) {
      return false;
    }
  }
  return true;
}

// Reads until `n` bytes came, the peer closed, an error, or 10 s; returns what came and how
// the reading ended.
struct ReadOutcome {
  std::string data;
  net::IoResult::Kind end = net::IoResult::kData;  // kData: got n bytes
};
inline ReadOutcome ReadUpTo(int fd, std::size_t n, int64_t timeout_ms = 10'000) {
  const int64_t deadline = NowMs() + timeout_ms;
  ReadOutcome out;
  std::vector<uint8_t> buf(64 * 1024);
  while (out.data.size() < n) {
    const net::IoResult r =
        net::ReadSome(fd, absl::MakeSpan(buf.data(), std::min(buf.size(), n - out.data.size())));
    if (r.kind == net::IoResult::kData) {
      out.data.append(reinterpret_cast<const char*>(buf.data()), r.bytes);
    } else if (r.kind != net::IoResult::kWouldBlock) {
      out.end = r.kind;
      return out;
    } else if (!WaitFd(fd, POLLIN, deadline)) {
      out.end = net::IoResult::kWouldBlock;  // timed out
      return out;
    }
  }
  return out;
}

inline net::SocketAddress Loopback(uint16_t port = 0) {
  return *net::SocketAddress::Resolve("127.0.0.1", port);
}

}  // namespace lab::traffic::testing

#endif  // TESTS_DATAPLANE_TRAFFIC_TCP_TEST_UTIL_H_

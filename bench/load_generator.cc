// Closed-loop load for time servers: N simulated clients over one socket, each with one
// probe outstanding; every reply immediately triggers that client's next probe (carrying
// the completed exchange, as a real client's would). Batched with recvmmsg/sendmmsg so the
// generator is not the bottleneck. Prints one JSON line:
//   {"replies":…, "seconds":…, "rps":…, "resends":…}
//   usage: ts_load --server 127.0.0.1:PORT [--clients 64] [--duration 4s] [--scheme kalman]
#include <endian.h>
#include <poll.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"
#include "common/clock.h"
#include "dataplane/net/udp_socket.h"
#include "dataplane/timesync/wire.h"

namespace {

using lab::timesync::Probe;

struct ClientState {
  uint64_t seq = 0;
  uint64_t last_answered = 0;
  int64_t last_t4 = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"time-server load generator"};
  std::string server = "127.0.0.1:12345";
  uint32_t clients = 64;
  std::string duration_text = "4s";
  std::string scheme_name = "kalman";
  app.add_option("--server", server)->capture_default_str();
  app.add_option("--clients", clients)->capture_default_str();
  app.add_option("--duration", duration_text)->capture_default_str();
  app.add_option("--scheme", scheme_name)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  absl::Duration duration;
  const auto address = lab::net::SocketAddress::ParseHostPort(server);
  const auto scheme = lab::timesync::ParseScheme(scheme_name);
  if (!absl::ParseDuration(duration_text, &duration) || duration <= absl::ZeroDuration()) {
    std::fprintf(stderr, "ts_load: --duration '%s' is not a positive duration (e.g. 4s)\n",
                 duration_text.c_str());
    return 2;
  }
  for (const absl::Status& s : {address.status(), scheme.status()}) {
    if (!s.ok()) {
      std::fprintf(stderr, "ts_load: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  if (clients == 0) {
    std::fprintf(stderr, "ts_load: --clients must be > 0\n");
    return 2;
  }
  auto socket = lab::net::UdpSocket::Connect(*address);
  if (!socket.ok()) {
    std::fprintf(stderr, "ts_load: %s\n", socket.status().ToString().c_str());
    return 1;
  }
  (void)socket->SetBufferSizes(4 << 20, 4 << 20);
  const lab::Clock& clock = lab::RealtimeClock::Get();
  std::vector<ClientState> state(clients);
  lab::net::DatagramBatch in(64, lab::timesync::kProbeSize);
  lab::net::SendBatch out(64, lab::timesync::kProbeSize);

  const auto queue_probe = [&](uint32_t id, int64_t now) {
    if (out.full()) {
      out.Flush(*socket);
    }
    ClientState& c = state[id];
    Probe p;
    p.scheme = *scheme;
    p.client_id = id;
    p.seq = ++c.seq;
    p.t1_ns = now;
    p.flags = 0;
    if (c.last_answered != 0) {
      p.flags |= lab::timesync::kProbeHasPrevious;
      p.prev_seq = c.last_answered;
      p.prev_t4_ns = c.last_t4;
    }
    lab::timesync::EncodeProbe(p, out.NextBuffer());
    out.Commit(lab::timesync::kProbeSize, *address);
  };

  const int64_t start = clock.NowNs();
  const int64_t end = start + absl::ToInt64Nanoseconds(duration);
  for (uint32_t id = 0; id < clients; ++id) queue_probe(id, start);
  out.Flush(*socket);
  uint64_t replies = 0, resends = 0;
  while (true) {
    pollfd pfd{socket->fd(), POLLIN, 0};
    const int ready = poll(&pfd, 1, 100);
    const int64_t now = clock.NowNs();
    if (now >= end) break;
    if (ready <= 0) {
      // Nothing for 100 ms: something was lost; restart every client.
      for (uint32_t id = 0; id < clients; ++id) queue_probe(id, now);
      out.Flush(*socket);
      resends += clients;
      continue;
    }
    while (true) {
      const auto n = in.Receive(*socket, clock);
      if (!n.ok() || *n == 0) break;
      for (std::size_t i = 0; i < *n; ++i) {
        const auto data = in.data(i);
        if (data.size() < 24) continue;
        uint32_t id;
        uint64_t seq;
        std::memcpy(&id, data.data() + 12, 4);
        std::memcpy(&seq, data.data() + 16, 8);
        id = be32toh(id);
        seq = be64toh(seq);
        if (id >= clients || seq != state[id].seq) continue;  // stale
        ++replies;
        state[id].last_answered = seq;
        state[id].last_t4 = in.rx_ns(i);
        queue_probe(id, now);
      }
      out.Flush(*socket);
      if (*n < in.capacity()) break;
    }
  }
  const double seconds = static_cast<double>(clock.NowNs() - start) / 1e9;
  std::printf("{\"replies\":%llu,\"seconds\":%.3f,\"rps\":%.0f,\"resends\":%llu}\n",
              static_cast<unsigned long long>(replies), seconds, replies / seconds,
              static_cast<unsigned long long>(resends));
  return replies > 0 ? 0 : 1;
}

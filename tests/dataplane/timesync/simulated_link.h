// Test support: a time-sync client and server (the real ClientCore and ServerCore) exchanging
// probes over a simulated link, with no socket, no thread and no sleep. Time is a simulated
// host clock shared by both ends (so the truth is known, as on one kernel); the link's
// one-way delays come from a caller-supplied, seeded model.
#ifndef TESTS_DATAPLANE_TIMESYNC_SIMULATED_LINK_H_
#define TESTS_DATAPLANE_TIMESYNC_SIMULATED_LINK_H_

#include <array>
#include <cstdint>
#include <functional>
#include <random>

#include "common/clock.h"
#include "dataplane/timesync/client_core.h"
#include "dataplane/timesync/server_core.h"

namespace lab::timesync::testing {

struct LinkDelays {
  int64_t forward_ns = 0;  // client -> server
  int64_t back_ns = 0;     // server -> client
};

struct SimulationOptions {
  ClientCoreOptions client;
  ServerCoreOptions server;
  int64_t interval_ns = 10'000'000;
  int64_t server_hold_ns = 2'000;  // t3 - t2
  uint64_t count = 1000;
  // Called once per exchange with the seeded generator; the default is a fixed 20 us each way.
  std::function<LinkDelays(std::mt19937_64&)> delays = [](std::mt19937_64&) {
    return LinkDelays{20'000, 20'000};
  };
  uint64_t seed = 1;
};

// Runs `count` exchanges, one per interval; every reply arrives before the next probe leaves
// (delays must stay below the interval). Returns the client (records, counters) by value.
inline ClientCore RunSimulation(const SimulationOptions& options,
                                ServerCounters* server_counters = nullptr) {
  constexpr int64_t kStartNs = 1'700'000'000'000'000'000;
  SimulatedClock clock(kStartNs);
  ClientCore client(options.client, kStartNs);
  ServerCore server(options.server);
  std::mt19937_64 rng(options.seed);
  const net::SocketAddress peer = *net::SocketAddress::Resolve("127.0.0.1", 40000);
  std::array<uint8_t, kProbeSize> probe{};
  std::array<uint8_t, kProbeSize> reply{};
  for (uint64_t k = 0; k < options.count; ++k) {
    const int64_t send_ns = kStartNs + static_cast<int64_t>(k) * options.interval_ns;
    const LinkDelays d = options.delays(rng);
    client.MakeProbe(send_ns, absl::MakeSpan(probe));
    const int64_t t2 = send_ns + d.forward_ns;
    clock.SetNs(t2 + options.server_hold_ns);  // what the server reads as t3
    const std::size_t len = server.HandleDatagram(probe, peer, t2, net::TimestampSource::kKernel,
                                                  clock, absl::MakeSpan(reply));
    if (len == 0) continue;
    const int64_t t4 = t2 + options.server_hold_ns + d.back_ns;
    client.HandleDatagram(absl::MakeConstSpan(reply.data(), len), t4,
                          net::TimestampSource::kKernel);
  }
  if (server_counters != nullptr) *server_counters = server.counters();
  return client;
}

}  // namespace lab::timesync::testing

#endif  // TESTS_DATAPLANE_TIMESYNC_SIMULATED_LINK_H_

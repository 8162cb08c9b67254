// The NTP four-timestamp method. t1: client transmit, t2: server receive, t3: server
// transmit, t4: client receive; t1/t4 on the client's clock, t2/t3 on the server's.
#ifndef DATAPLANE_TIMESYNC_EXCHANGE_H_
#define DATAPLANE_TIMESYNC_EXCHANGE_H_

#include <cstdint>

namespace lab::timesync {

// Differences are taken in 128 bits, so timestamps off the wire, however absurd, cannot
// overflow; the results are exact for any realistic offset and delay.
struct Exchange {
  int64_t t1_ns = 0;
  int64_t t2_ns = 0;
  int64_t t3_ns = 0;
  int64_t t4_ns = 0;

  // Server clock minus client clock: ((t2 - t1) + (t3 - t4)) / 2. Exact when the two network
  // legs take equal time; otherwise wrong by half their difference.
  double OffsetNs() const {
    return static_cast<double>((Wide(t2_ns) - t1_ns) + (Wide(t3_ns) - t4_ns)) / 2.0;
  }
  // Round trip minus the server's hold time: (t4 - t1) - (t3 - t2).
  double DelayNs() const {
    return static_cast<double>((Wide(t4_ns) - t1_ns) - (Wide(t3_ns) - t2_ns));
  }
  // The server-clock instant the offset refers to (midpoint of t2 and t3).
  int64_t ServerMidpointNs() const { return static_cast<int64_t>((Wide(t2_ns) + t3_ns) / 2); }

 private:
  static __int128 Wide(int64_t v) { return v; }
};

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_EXCHANGE_H_

// The client's virtual clock: the host clock plus an injected offset and drift, plus every
// correction the time server sent. Because the host clock is the ground truth when client
// and server share a kernel, the clock's error is known exactly at every instant.
#ifndef DATAPLANE_TIMESYNC_VIRTUAL_CLOCK_H_
#define DATAPLANE_TIMESYNC_VIRTUAL_CLOCK_H_

#include <cmath>
#include <cstdint>

namespace lab::timesync {

// Value type; not thread-safe.
class VirtualClock {
 public:
  // The clock reads host + offset_ns at host time `epoch_host_ns` and gains drift_ppm
  // microseconds per second of host time from there (negative: loses).
  VirtualClock(int64_t epoch_host_ns, int64_t offset_ns, double drift_ppm)
      : epoch_ns_(epoch_host_ns), offset_ns_(offset_ns), drift_ppm_(drift_ppm) {}

  // Error against the host clock at host time `host_ns`, ns (exact, no rounding).
  double ErrorNs(int64_t host_ns) const {
    return static_cast<double>(offset_ns_) +
           drift_ppm_ * 1e-6 * static_cast<double>(host_ns - epoch_ns_) +
           static_cast<double>(correction_ns_);
  }
  // What the clock reads at host time `host_ns` (rounded to the nanosecond).
  int64_t Read(int64_t host_ns) const { return host_ns + std::llround(ErrorNs(host_ns)); }
  // Steps the clock by `delta_ns` (the server's correction).
  void ApplyCorrection(int64_t delta_ns) { correction_ns_ += delta_ns; }
  // Sum of all corrections applied so far.
  int64_t correction_ns() const { return correction_ns_; }

 private:
  int64_t epoch_ns_;
  int64_t offset_ns_;
  double drift_ppm_;
  int64_t correction_ns_ = 0;
};

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_VIRTUAL_CLOCK_H_

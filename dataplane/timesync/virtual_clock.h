// The client's virtual clock: the host clock plus an injected offset and drift, plus every
// correction the time server sent. Because the host clock is the ground truth when client
// and server share a kernel, the clock's error is known exactly at every instant.
#ifndef DATAPLANE_TIMESYNC_VIRTUAL_CLOCK_H_
#define DATAPLANE_TIMESYNC_VIRTUAL_CLOCK_H_

#include <cmath>
#include <cstdint>
#include <limits>

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
  // What the clock reads at host time `host_ns` (rounded to the nanosecond, saturated to
  // the int64 range).
  int64_t Read(int64_t host_ns) const {
    const int64_t error_ns = Saturate(ErrorNs(host_ns));
    int64_t out;
    if (__builtin_add_overflow(host_ns, error_ns, &out))
      return error_ns > 0 ? INT64_MAX : INT64_MIN;
    return out;
  }
  // Steps the clock by `delta_ns` (the server's correction); saturates rather than wraps.
  void ApplyCorrection(int64_t delta_ns) {
    if (__builtin_add_overflow(correction_ns_, delta_ns, &correction_ns_)) {
      correction_ns_ = delta_ns > 0 ? INT64_MAX : INT64_MIN;
    }
  }
  // Sum of all corrections applied so far.
  int64_t correction_ns() const { return correction_ns_; }

 private:
  static int64_t Saturate(double v) {
    if (!(v > -9.2e18)) return INT64_MIN;  // also NaN
    if (v > 9.2e18) return INT64_MAX;
    return std::llround(v);
  }

  int64_t epoch_ns_;
  int64_t offset_ns_;
  double drift_ppm_;
  int64_t correction_ns_ = 0;
};

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_VIRTUAL_CLOCK_H_

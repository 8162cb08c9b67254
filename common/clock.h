// Time sources. Logic never reads the time itself: it takes a Clock& (or timestamps in its
// inputs) so tests can drive it with SimulatedClock and never sleep.
#ifndef COMMON_CLOCK_H_
#define COMMON_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace lab {

// A source of wall-clock time in nanoseconds since the Unix epoch. Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // CLOCK_REALTIME-compatible time, ns since the epoch.
  virtual int64_t NowNs() const = 0;
};

// CLOCK_MONOTONIC in nanoseconds: for durations and deadlines, never for timestamps.
int64_t MonotonicNowNs();

// The host's CLOCK_REALTIME (the same clock the kernel stamps packets with).
class RealtimeClock final : public Clock {
 public:
  int64_t NowNs() const override;
  // A process-wide instance; never destroyed.
  static RealtimeClock& Get();
};

// A clock that moves only when told to. Thread-safe.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(int64_t start_ns = 0) : now_ns_(start_ns) {}
  int64_t NowNs() const override { return now_ns_.load(std::memory_order_relaxed); }
  void AdvanceNs(int64_t delta_ns) { now_ns_.fetch_add(delta_ns, std::memory_order_relaxed); }
  void SetNs(int64_t now_ns) { now_ns_.store(now_ns, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace lab

#endif  // COMMON_CLOCK_H_

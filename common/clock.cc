#include "common/clock.h"

#include <time.h>

namespace lab {

int64_t RealtimeClock::NowNs() const {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

RealtimeClock& RealtimeClock::Get() {
  static RealtimeClock* clock = new RealtimeClock();
  return *clock;
}

int64_t MonotonicNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace lab

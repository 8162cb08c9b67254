// Clock filters: the four schemes behind one interface, shaped like chrony's sample filter.
//
// A filter estimates the client's *uncorrected* offset (server clock minus the client's clock
// before any correction) as a function of server time, from samples produced by the
// four-timestamp method. The server answers each probe with Estimate(now) minus the
// correction the client already applies, so the loop does not feed back on itself.
//
// Filters are pure: no sockets, no clock reads, no logging; time comes from the samples.
// Not thread-safe: one filter per client, used by one thread.
#ifndef DATAPLANE_TIMESYNC_FILTER_H_
#define DATAPLANE_TIMESYNC_FILTER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataplane/timesync/scheme.h"

namespace lab::timesync {

struct OffsetSample {
  int64_t time_ns = 0;   // server time the offset refers to
  double offset_ns = 0;  // server clock minus uncorrected client clock
  double delay_ns = 0;   // round-trip delay of the exchange (quality: a long delay may hide
                         // up to delay/2 of asymmetry)
};

class ClockFilter {
 public:
  virtual ~ClockFilter() = default;
  virtual Scheme scheme() const = 0;

  // Adds a sample. Returns true when it changed the estimate, false when the filter
  // judged it an outlier (a delay spike) and skipped it. InvalidArgument, with the state
  // unchanged, when the sample is not strictly newer than the previous one or not finite.
  absl::StatusOr<bool> Accumulate(const OffsetSample& sample);

  // The estimated offset at server time `at_ns`, ns; nullopt before the first sample.
  // Schemes with a drift term extrapolate from the last sample to `at_ns`.
  virtual std::optional<double> Estimate(int64_t at_ns) const = 0;

 protected:
  // Called with in-order, finite samples only.
  virtual bool Update(const OffsetSample& sample) = 0;

 private:
  std::optional<int64_t> last_time_ns_;
};

// A new filter for params.scheme; InvalidArgument when params.Validate() fails.
absl::StatusOr<std::unique_ptr<ClockFilter>> MakeFilter(const SchemeParams& params);

// Delay-spike detector shared by the smoothing schemes (RAW takes every sample on purpose:
// it is the unfiltered reference). Remembers the last kWindow delays; a sample is a spike
// when its delay exceeds the window's minimum by more than
//   max(kFloorNs, kSpreadFactor * (median - minimum)),
// i.e. it is far slower than the network has recently been. After kMaxConsecutive spikes in
// a row the next sample is accepted anyway, so a lasting change of path is followed.
class DelayGate {
 public:
  static constexpr int kWindow = 32;
  static constexpr double kFloorNs = 20'000;
  static constexpr double kSpreadFactor = 3.0;
  static constexpr int kMaxConsecutive = 8;

  // Records `delay_ns` and returns true when the sample should be used. O(kWindow) moves,
  // no allocation.
  bool Accept(double delay_ns);
  // Smallest delay in the window (0 when empty).
  double min_delay_ns() const { return count_ == 0 ? 0 : sorted_[0]; }

 private:
  std::array<double, kWindow> arrivals_{};  // ring buffer, oldest at next_ when full
  std::array<double, kWindow> sorted_{};    // the same delays, ascending (first count_)
  int count_ = 0;
  int next_ = 0;
  int consecutive_rejects_ = 0;
};

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_FILTER_H_

// The time-sync experiment's bucket edges. The histogram itself is lab::stats::Histogram
// (dataplane/stats/histogram.h): fixed edges, mergeable by adding counts.
#ifndef DATAPLANE_TIMESYNC_HISTOGRAM_H_
#define DATAPLANE_TIMESYNC_HISTOGRAM_H_

#include <span>

#include "dataplane/stats/histogram.h"

namespace lab::timesync {

using stats::Histogram;

// Residual clock error, microseconds, symmetric around 0:
//   -50000 -20000 -10000 -5000 -2000 -1000 -500 -200 -100 -50 -20 -10 -5 -2 -1 -0.5 -0.2 -0.1
//   0 0.1 0.2 0.5 1 2 5 10 20 50 100 200 500 1000 2000 5000 10000 20000 50000
std::span<const double> ErrorEdgesUs();
// Round-trip time, microseconds: 1 2 5 10 20 50 ... 500000 1000000.
std::span<const double> RttEdgesUs();

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_HISTOGRAM_H_

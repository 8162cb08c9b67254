// Downsampling of a plotted series that keeps its extremes, so that a spike in a
// 100 000-sample run still shows when the browser draws 5 000 points.
#ifndef CONTROLLER_HTTP_DOWNSAMPLE_H_
#define CONTROLLER_HTTP_DOWNSAMPLE_H_

#include <cstddef>
#include <span>
#include <vector>

namespace lab::controller {

// The indices (increasing) of the values to keep so that `values` fits in `max_points`:
// every index when values.size() <= max_points; otherwise the values are cut into
// (max_points - 2) / 2 consecutive buckets of nearly equal size, each keeping the index of its
// smallest and of its largest value (once when they are the same), plus the first and the last
// index. NaN marks a missing value: it is never chosen unless a whole bucket is missing, and
// then the bucket keeps its first index. The result never has more than max_points indices.
// max_points < 4 is treated as 4.
std::vector<std::size_t> DownsampleMinMax(std::span<const double> values, std::size_t max_points);

}  // namespace lab::controller

#endif  // CONTROLLER_HTTP_DOWNSAMPLE_H_

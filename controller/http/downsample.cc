#include "controller/http/downsample.h"

#include <algorithm>
#include <cmath>

namespace lab::controller {

std::vector<std::size_t> DownsampleMinMax(std::span<const double> values, std::size_t max_points) {
  const std::size_t n = values.size();
  std::vector<std::size_t> out;
  if (n <= max_points) {
    out.resize(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = i;
    return out;
  }
  const std::size_t buckets = (std::max<std::size_t>(max_points, 4) - 2) / 2;
  out.reserve(2 * buckets + 2);
  out.push_back(0);
  for (std::size_t b = 0; b < buckets; ++b) {
    const std::size_t begin = b * n / buckets;
    const std::size_t end = (b + 1) * n / buckets;
    std::size_t lo = end, hi = end;
    for (std::size_t i = begin; i < end; ++i) {
      const double v = values[i];
      if (std::isnan(v)) continue;
      if (lo == end || v < values[lo]) lo = i;
      if (hi == end || v > values[hi]) hi = i;
    }
    if (lo == end) lo = hi = begin;  // the whole bucket is missing
    const std::size_t first = std::min(lo, hi), second = std::max(lo, hi);
    if (first != out.back()) out.push_back(first);
    if (second != out.back()) out.push_back(second);
  }
  if (out.back() != n - 1) out.push_back(n - 1);
  return out;
}

}  // namespace lab::controller

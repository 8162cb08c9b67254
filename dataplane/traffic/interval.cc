#include "dataplane/traffic/interval.h"

#include <algorithm>
#include <cmath>

namespace lab::traffic {

namespace {

nlohmann::json NumberOrNull(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

}  // namespace

double IntervalSample::bits_per_second() const {
  const double s = seconds();
  if (s <= 0) return 0;
  return static_cast<double>(std::max(bytes_sent, bytes_received)) * 8.0 / s;
}

double IntervalSample::messages_per_second() const {
  const double s = seconds();
  return s <= 0 ? 0 : static_cast<double>(messages_received) / s;
}

nlohmann::json IntervalToJson(const IntervalSample& sample) {
  return {{"start", sample.start_s},
          {"end", sample.end_s},
          {"seconds", sample.seconds()},
          {"bytes_sent", sample.bytes_sent},
          {"bytes_received", sample.bytes_received},
          {"bits_per_second", sample.bits_per_second()},
          {"messages_sent", sample.messages_sent},
          {"messages_received", sample.messages_received},
          {"messages_per_second", sample.messages_per_second()},
          {"latency_us",
           {{"p50", NumberOrNull(sample.latency_p50_us)},
            {"p99", NumberOrNull(sample.latency_p99_us)},
            {"max", NumberOrNull(sample.latency_max_us)}}},
          {"jitter_us", NumberOrNull(sample.jitter_us)},
          {"errors", sample.errors}};
}

nlohmann::json LatencySummaryJson(const stats::Histogram& latency_us) {
  const bool empty = latency_us.count() == 0;
  auto q = [&](double quantile) { return NumberOrNull(latency_us.Quantile(quantile)); };
  return {{"p50", q(0.5)},
          {"p99", q(0.99)},
          {"p999", q(0.999)},
          {"min", empty ? nlohmann::json(nullptr) : nlohmann::json(latency_us.min())},
          {"max", empty ? nlohmann::json(nullptr) : nlohmann::json(latency_us.max())},
          {"mean", NumberOrNull(latency_us.mean())},
          {"count", latency_us.count()}};
}

nlohmann::json SparseBucketsJson(const stats::Histogram& histogram, absl::string_view edges_name) {
  nlohmann::json buckets = nlohmann::json::array();
  const auto counts = histogram.bucket_counts();
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] != 0) buckets.push_back({i, counts[i]});
  }
  return {
      {"edges", std::string(edges_name)},
      {"buckets", std::move(buckets)},
      {"sum", histogram.sum()},
      {"min", histogram.count() == 0 ? nlohmann::json(nullptr) : nlohmann::json(histogram.min())},
      {"max", histogram.count() == 0 ? nlohmann::json(nullptr) : nlohmann::json(histogram.max())}};
}

}  // namespace lab::traffic

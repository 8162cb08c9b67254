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

}  // namespace lab::traffic

// The controller's Prometheus metrics (prometheus-cpp), exposed at /metrics:
//   lab_agents_up                          gauge, agents connected now
//   lab_experiments{state}                 gauge, stored experiments per state
//   lab_samples_ingested_total             counter, samples stored since the controller started
//   lab_timesync_error_us{scheme}          histogram of the residual error of those samples,
//                                          with the fixed edges of timesync::ErrorEdgesUs()
// Thread-safe.
#ifndef CONTROLLER_HTTP_METRICS_H_
#define CONTROLLER_HTTP_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "controller/service/experiment_runner.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace lab::controller {

class ControllerMetrics final : public SampleObserver {
 public:
  ControllerMetrics();

  // SampleObserver: counts the batch and adds each sample's error to its scheme's histogram.
  void OnSamplesStored(const std::string& scheme, absl::Span<const SampleRecord> samples) override;

  // The text exposition format (version 0.0.4), with the two gauges set to the given values
  // first; every known experiment state appears, 0 when absent from `experiments_by_state`.
  std::string Render(int64_t agents_up, const std::map<std::string, int64_t>& experiments_by_state);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge& agents_up_;
  prometheus::Family<prometheus::Gauge>& experiments_;
  prometheus::Counter& samples_;
  prometheus::Family<prometheus::Histogram>& error_;
  std::mutex mu_;  // Render's gauge updates and serialisation
};

}  // namespace lab::controller

#endif  // CONTROLLER_HTTP_METRICS_H_

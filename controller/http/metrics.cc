#include "controller/http/metrics.h"

#include <sstream>
#include <vector>

#include "dataplane/timesync/histogram.h"
#include "prometheus/text_serializer.h"

namespace lab::controller {

namespace {

constexpr const char* kExperimentStates[] = {"running", "completed", "partial", "failed",
                                             "interrupted"};

prometheus::Histogram::BucketBoundaries ErrorBoundaries() {
  const auto edges = timesync::ErrorEdgesUs();
  return {edges.begin(), edges.end()};
}

}  // namespace

ControllerMetrics::ControllerMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      agents_up_(prometheus::BuildGauge()
                     .Name("lab_agents_up")
                     .Help("Agents connected to the controller")
                     .Register(*registry_)
                     .Add({})),
      experiments_(prometheus::BuildGauge()
                       .Name("lab_experiments")
                       .Help("Experiments in the results store, by state")
                       .Register(*registry_)),
      samples_(prometheus::BuildCounter()
                   .Name("lab_samples_ingested_total")
                   .Help("Time-sync samples stored since the controller started")
                   .Register(*registry_)
                   .Add({})),
      error_(prometheus::BuildHistogram()
                 .Name("lab_timesync_error_us")
                 .Help("Residual clock error of the stored samples, microseconds, per scheme")
                 .Register(*registry_)) {
  for (const char* state : kExperimentStates) experiments_.Add({{"state", state}});
}

void ControllerMetrics::OnSamplesStored(const std::string& scheme,
                                        absl::Span<const SampleRecord> samples) {
  if (samples.empty()) return;
  // One ObserveMultiple per batch: the same bucket semantics (v <= edge), one lock.
  timesync::Histogram batch(timesync::ErrorEdgesUs());
  for (const SampleRecord& s : samples) batch.Add(s.error_ns * 1e-3);
  const auto counts = batch.bucket_counts();
  prometheus::Histogram& histogram = error_.Add({{"scheme", scheme}}, ErrorBoundaries());
  histogram.ObserveMultiple(std::vector<double>(counts.begin(), counts.end()), batch.sum());
  samples_.Increment(static_cast<double>(samples.size()));
}

std::string ControllerMetrics::Render(int64_t agents_up,
                                      const std::map<std::string, int64_t>& experiments_by_state) {
  std::lock_guard<std::mutex> lock(mu_);
  agents_up_.Set(static_cast<double>(agents_up));
  for (const char* state : kExperimentStates) {
    const auto it = experiments_by_state.find(state);
    experiments_.Add({{"state", state}})
        .Set(it == experiments_by_state.end() ? 0.0 : static_cast<double>(it->second));
  }
  for (const auto& [state, count] : experiments_by_state) {
    experiments_.Add({{"state", state}}).Set(static_cast<double>(count));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace lab::controller

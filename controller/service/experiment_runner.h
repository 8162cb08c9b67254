// Runs experiments across the connected agents and keeps their results.
//
// The time-sync experiment: validate the spec (nothing starts on a bad one), place a time
// server on one agent and one client per requested scheme round-robin over the others and
// then the server's agent (several per agent when there are fewer agents than clients), so
// N clients run on N different agents when there are N; start the server and wait for its
// address, start the clients, store every sample as it arrives, and end when every client
// completed, failed or was lost (its agent went away). Results go to the ResultsStore, so a
// controller restart loses no finished run. Thread-safe; Run() blocks its caller.
#ifndef CONTROLLER_SERVICE_EXPERIMENT_RUNNER_H_
#define CONTROLLER_SERVICE_EXPERIMENT_RUNNER_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "controller/registry/agent_registry.h"
#include "controller/service/agent_hub.h"
#include "controller/store/results_store.h"
#include "lab/v1/controller.pb.h"
#include "spdlog/logger.h"

namespace lab::controller {

struct RunnerOptions {
  int64_t server_start_timeout_ns = 10'000'000'000;  // for the time server to report its address
  int64_t progress_interval_ns = 250'000'000;        // between progress events
  int64_t grace_ns = 30'000'000'000;  // beyond count * interval before clients count as failed
  // The dashboard's base URL ("http://127.0.0.1:8080/"); events then carry
  // <base>#/experiments/<id>. Empty: the controller serves no dashboard.
  std::string dashboard_url;
};

// Told about every batch of samples once it is stored (the controller's metrics count them).
// Called on the thread that delivered the batch; must be thread-safe and quick.
class SampleObserver {
 public:
  virtual ~SampleObserver() = default;
  // `scheme`: "raw", "ewma", "kalman" or "pid".
  virtual void OnSamplesStored(const std::string& scheme,
                               absl::Span<const SampleRecord> samples) = 0;
};

class ExperimentRunner : public AgentEvents {
 public:
  // Receives each event; returns false when nobody listens any more (the run goes on).
  using EventSink = std::function<bool(const lab::v1::ExperimentEvent&)>;

  ExperimentRunner(RunnerOptions options, AgentHub& hub, AgentRegistry& registry,
                   ResultsStore& store, const Clock& clock, std::shared_ptr<spdlog::logger> logger);

  // Runs `spec` to the end. InvalidArgument (bad spec, unknown agent) or FailedPrecondition
  // (no agents) before anything starts; otherwise OK with the outcome in the last event
  // (state "completed", "partial" or "failed").
  absl::Status Run(const lab::v1::ExperimentSpec& spec, const EventSink& sink);

  // {"experiment_id":…, "state":…, "clients":[…]} of a stored experiment: each client's
  // summary (the fields of `labnet ts-client --output json`) plus "agent", "agent_address"
  // (its lab addresses, comma-separated), "state", "task_id" and "truth_known"; lost clients
  // carry only those. NotFound for unknown ids.
  absl::StatusOr<std::string> SummaryJson(const std::string& experiment_id) const;

  // Call before the first Run; `observer` (may be null) must outlive the runner.
  void SetSampleObserver(SampleObserver* observer) { observer_ = observer; }
  // Call before the first Run: see RunnerOptions::dashboard_url.
  void SetDashboardUrl(std::string url) { options_.dashboard_url = std::move(url); }

  // AgentEvents.
  void OnTaskUpdate(const std::string& agent_id, const lab::v1::TaskUpdate& update) override;
  void OnSamples(const std::string& agent_id, const lab::v1::SampleBatch& batch) override;
  void OnAgentLost(const std::string& agent_id, const std::string& reason) override;

 private:
  struct Task;
  struct Active;

  std::shared_ptr<Active> FindActive(const std::string& experiment_id);
  // Store writes after the experiment was created: a failure is logged, the run goes on.
  void LogIfError(const absl::Status& status, const std::string& experiment_id,
                  const std::string& what) const;
  // Records a task's new state in memory and in the store (terminal states are final).
  void SetTaskState(Active& active, Task& task, const std::string& state,
                    const std::string& detail);

  RunnerOptions options_;
  AgentHub& hub_;
  AgentRegistry& registry_;
  ResultsStore& store_;
  const Clock& clock_;
  std::shared_ptr<spdlog::logger> logger_;
  SampleObserver* observer_ = nullptr;
  std::mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Active>> active_;
};

}  // namespace lab::controller

#endif  // CONTROLLER_SERVICE_EXPERIMENT_RUNNER_H_

// The JSON documents of the HTTP API (docs/http-api.md), built from the results store.
// Pure functions of their inputs, so the API's shapes are tested without a server.
#ifndef CONTROLLER_HTTP_API_JSON_H_
#define CONTROLLER_HTTP_API_JSON_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "controller/registry/agent_registry.h"
#include "controller/service/experiment_runner.h"
#include "controller/store/results_store.h"
#include "nlohmann/json.hpp"

namespace lab::controller {

// Which column downsampling keeps the extremes of.
enum class KeepColumn { kError, kOffset, kCorrection };

// Parses "error", "offset" or "correction"; InvalidArgument naming the allowed values.
absl::StatusOr<KeepColumn> ParseKeepColumn(const std::string& text);

// {"experiment_id","name","kind","state","created_ns","finished_ns","schemes":[…]}; the
// schemes are the client tasks' in task order, the name the spec's "name".
nlohmann::json ExperimentListingJson(const ExperimentRecord& experiment,
                                     absl::Span<const TaskRecord> tasks);

// The probes each client was asked to send (the spec's timesync.count), 0 when absent.
uint64_t ProbesPerClient(const ExperimentRecord& experiment);

// Everything GET /api/v1/experiments/{id} returns. NotFound for an unknown id.
absl::StatusOr<nlohmann::json> ExperimentDetailJson(const ResultsStore& store,
                                                    const ExperimentRunner& runner,
                                                    const std::string& experiment_id);

// A traffic run's per-interval samples, per client task, column-oriented:
// {"experiment_id", "state", "tasks":[{"task_id","scheme","agent","state",
//   "intervals":{"seq":[…],"start_s":[…],"end_s":[…],"bits_per_second":[…],
//   "messages_per_second":[…],"latency_p50_us":[…],"latency_p99_us":[…],
//   "latency_max_us":[…],"jitter_us":[…],"errors":[…]}}]}; null where a value is absent.
// NotFound for an unknown experiment.
absl::StatusOr<nlohmann::json> IntervalsJson(const ResultsStore& store,
                                             const std::string& experiment_id);

// Column-oriented samples {"seq":[…],"t_s":[…],"error_us":[…],"offset_us":[…],
// "correction_us":[…],"rtt_us":[…]} of samples[i] for i in `keep` (every sample when null).
// t_s counts from `origin_ns`; t_s is rounded to 1 µs and the *_us columns to 1 ns.
nlohmann::json SampleColumns(absl::Span<const SampleRecord> samples,
                             const std::vector<std::size_t>* keep, int64_t origin_ns);

// The indices of `samples` to send for at most `max_points` (0: all) points, keeping the
// extremes of `column` (controller/http/downsample.h).
std::vector<std::size_t> ChooseSamples(absl::Span<const SampleRecord> samples,
                                       std::size_t max_points, KeepColumn column);

// {"agents":[{"name","agent_id","alive","addresses","last_seen_ns","running_tasks"}]}.
nlohmann::json AgentsJson(absl::Span<const AgentSnapshot> agents);

}  // namespace lab::controller

#endif  // CONTROLLER_HTTP_API_JSON_H_

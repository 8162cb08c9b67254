#include "controller/http/api_json.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "controller/http/downsample.h"
#include "dataplane/timesync/histogram.h"

namespace lab::controller {

namespace {

// `value` rounded to 1/scale; dividing (not multiplying by 1/scale) gives the double nearest
// the decimal, which prints short.
double Round(double value, double scale) { return std::round(value * scale) / scale; }

nlohmann::json ParseOr(const std::string& text, nlohmann::json fallback) {
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? fallback : parsed;
}

}  // namespace

absl::StatusOr<KeepColumn> ParseKeepColumn(const std::string& text) {
  if (text == "error") return KeepColumn::kError;
  if (text == "offset") return KeepColumn::kOffset;
  if (text == "correction") return KeepColumn::kCorrection;
  return absl::InvalidArgumentError(
      absl::StrCat("keep must be error, offset or correction, got '", text, "'"));
}

nlohmann::json ExperimentListingJson(const ExperimentRecord& experiment,
                                     absl::Span<const TaskRecord> tasks) {
  const nlohmann::json spec = ParseOr(experiment.spec_json, nlohmann::json::object());
  nlohmann::json schemes = nlohmann::json::array();
  for (const TaskRecord& t : tasks) {
    if (t.role == "client") schemes.push_back(t.scheme);
  }
  return {{"experiment_id", experiment.id},
          {"name", spec.is_object() ? spec.value("name", "") : ""},
          {"kind", experiment.kind},
          {"state", experiment.state},
          {"created_ns", experiment.created_ns},
          {"finished_ns", experiment.finished_ns},
          {"schemes", schemes}};
}

uint64_t ProbesPerClient(const ExperimentRecord& experiment) {
  const nlohmann::json spec = ParseOr(experiment.spec_json, nlohmann::json::object());
  if (!spec.is_object() || !spec.contains("timesync")) return 0;
  const nlohmann::json& count = spec["timesync"].value("count", nlohmann::json());
  // Protobuf's JSON writes 64-bit integers as strings.
  if (count.is_number_unsigned()) return count.get<uint64_t>();
  if (count.is_string()) {
    uint64_t value = 0;
    for (char c : count.get<std::string>()) {
      if (c < '0' || c > '9') return 0;
      value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    return value;
  }
  return 0;
}

absl::StatusOr<nlohmann::json> ExperimentDetailJson(const ResultsStore& store,
                                                    const ExperimentRunner& runner,
                                                    const std::string& experiment_id) {
  auto experiment = store.GetExperiment(experiment_id);
  if (!experiment.ok()) return experiment.status();
  auto tasks = store.ListTasks(experiment_id);
  if (!tasks.ok()) return tasks.status();
  auto agents = store.ListAgents(experiment_id);
  if (!agents.ok()) return agents.status();
  auto summaries = store.GetSummaries(experiment_id);
  if (!summaries.ok()) return summaries.status();
  auto summary = runner.SummaryJson(experiment_id);
  if (!summary.ok()) return summary.status();

  nlohmann::json out;
  out["experiment"] = ExperimentListingJson(*experiment, *tasks);
  out["spec"] = ParseOr(experiment->spec_json, nlohmann::json::object());
  nlohmann::json& agent_list = out["agents"] = nlohmann::json::array();
  for (const AgentRecord& a : *agents) {
    agent_list.push_back({{"name", a.name},
                          {"address", a.address},
                          {"metadata", ParseOr(a.metadata_json, nlohmann::json::object())}});
  }
  nlohmann::json& task_list = out["tasks"] = nlohmann::json::array();
  for (const TaskRecord& t : *tasks) {
    task_list.push_back({{"task_id", t.task_id},
                         {"agent", t.agent_name},
                         {"role", t.role},
                         {"scheme", t.scheme},
                         {"state", t.state},
                         {"detail", t.detail}});
  }
  out["summary"] = ParseOr(*summary, nlohmann::json::object());
  nlohmann::json& histograms = out["histograms"] = nlohmann::json::object();
  for (const SummaryRecord& s : *summaries) {
    if (s.edges_us.empty()) continue;
    std::vector<uint64_t> cumulative;
    uint64_t total = 0;
    for (uint64_t c : s.bucket_counts) cumulative.push_back(total += c);
    histograms[s.task_id] = {
        {"edges_us", s.edges_us}, {"counts", s.bucket_counts}, {"cumulative", cumulative}};
  }
  const auto edges = timesync::ErrorEdgesUs();
  out["error_edges_us"] = std::vector<double>(edges.begin(), edges.end());
  return out;
}

nlohmann::json SampleColumns(absl::Span<const SampleRecord> samples,
                             const std::vector<std::size_t>* keep, int64_t origin_ns) {
  nlohmann::json seq = nlohmann::json::array(), t = nlohmann::json::array(),
                 error = nlohmann::json::array(), offset = nlohmann::json::array(),
                 correction = nlohmann::json::array(), rtt = nlohmann::json::array();
  const auto add = [&](const SampleRecord& s) {
    seq.push_back(s.seq);
    t.push_back(Round(static_cast<double>(s.send_host_ns - origin_ns) * 1e-9, 1e6));
    error.push_back(Round(s.error_ns * 1e-3, 1e3));
    offset.push_back(s.measured_offset_ns ? nlohmann::json(Round(*s.measured_offset_ns * 1e-3, 1e3))
                                          : nlohmann::json());
    correction.push_back(Round(static_cast<double>(s.correction_ns) * 1e-3, 1e3));
    rtt.push_back(Round(s.rtt_ns * 1e-3, 1e3));
  };
  if (keep == nullptr) {
    for (const SampleRecord& s : samples) add(s);
  } else {
    for (std::size_t i : *keep) add(samples[i]);
  }
  return {{"seq", std::move(seq)},
          {"t_s", std::move(t)},
          {"error_us", std::move(error)},
          {"offset_us", std::move(offset)},
          {"correction_us", std::move(correction)},
          {"rtt_us", std::move(rtt)}};
}

std::vector<std::size_t> ChooseSamples(absl::Span<const SampleRecord> samples,
                                       std::size_t max_points, KeepColumn column) {
  std::vector<double> values;
  values.reserve(samples.size());
  for (const SampleRecord& s : samples) {
    switch (column) {
      case KeepColumn::kError:
        values.push_back(s.error_ns);
        break;
      case KeepColumn::kOffset:
        values.push_back(s.measured_offset_ns.value_or(std::numeric_limits<double>::quiet_NaN()));
        break;
      case KeepColumn::kCorrection:
        values.push_back(static_cast<double>(s.correction_ns));
        break;
    }
  }
  return DownsampleMinMax(values, max_points == 0 ? values.size() : max_points);
}

nlohmann::json AgentsJson(absl::Span<const AgentSnapshot> agents) {
  nlohmann::json list = nlohmann::json::array();
  for (const AgentSnapshot& a : agents) {
    list.push_back({{"name", a.info.name()},
                    {"agent_id", a.agent_id},
                    {"alive", true},
                    {"addresses", std::vector<std::string>(a.info.addresses().begin(),
                                                           a.info.addresses().end())},
                    {"last_seen_ns", a.last_seen_ns},
                    {"running_tasks", a.running_tasks}});
  }
  return {{"agents", list}};
}

absl::StatusOr<nlohmann::json> IntervalsJson(const ResultsStore& store,
                                             const std::string& experiment_id) {
  auto experiment = store.GetExperiment(experiment_id);
  if (!experiment.ok()) return experiment.status();
  auto tasks = store.ListTasks(experiment_id);
  if (!tasks.ok()) return tasks.status();
  const auto optional = [](const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  nlohmann::json out_tasks = nlohmann::json::array();
  for (const TaskRecord& t : *tasks) {
    if (t.role != "client") continue;
    auto intervals = store.GetIntervals(experiment_id, t.task_id);
    if (!intervals.ok()) return intervals.status();
    nlohmann::json c = {{"seq", nlohmann::json::array()},
                        {"start_s", nlohmann::json::array()},
                        {"end_s", nlohmann::json::array()},
                        {"bits_per_second", nlohmann::json::array()},
                        {"messages_per_second", nlohmann::json::array()},
                        {"latency_p50_us", nlohmann::json::array()},
                        {"latency_p99_us", nlohmann::json::array()},
                        {"latency_max_us", nlohmann::json::array()},
                        {"jitter_us", nlohmann::json::array()},
                        {"errors", nlohmann::json::array()}};
    for (const IntervalRecord& r : *intervals) {
      const double seconds = r.end_s - r.start_s;
      const double bytes = static_cast<double>(std::max(r.bytes_sent, r.bytes_received));
      c["seq"].push_back(r.seq);
      c["start_s"].push_back(r.start_s);
      c["end_s"].push_back(r.end_s);
      c["bits_per_second"].push_back(seconds > 0 ? bytes * 8 / seconds : 0.0);
      // Of what came back; of what was sent when nothing comes back (one-way UDP).
      const uint64_t messages = r.messages_received > 0 ? r.messages_received : r.messages_sent;
      c["messages_per_second"].push_back(seconds > 0 ? static_cast<double>(messages) / seconds
                                                     : 0.0);
      c["latency_p50_us"].push_back(optional(r.latency_p50_us));
      c["latency_p99_us"].push_back(optional(r.latency_p99_us));
      c["latency_max_us"].push_back(optional(r.latency_max_us));
      c["jitter_us"].push_back(optional(r.jitter_us));
      c["errors"].push_back(r.errors);
    }
    out_tasks.push_back({{"task_id", t.task_id},
                         {"scheme", t.scheme},
                         {"agent", t.agent_name},
                         {"state", t.state},
                         {"intervals", std::move(c)}});
  }
  return nlohmann::json{{"experiment_id", experiment_id},
                        {"kind", experiment->kind},
                        {"state", experiment->state},
                        {"tasks", std::move(out_tasks)}};
}

}  // namespace lab::controller

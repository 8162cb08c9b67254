#include "controller/service/experiment_runner.h"

#include <algorithm>
#include <condition_variable>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "dataplane/timesync/scheme.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "rpc/timesync_conversion.h"

namespace lab::controller {

namespace {

bool Terminal(const std::string& state) {
  return state == "complete" || state == "failed" || state == "lost";
}

std::string NewExperimentId(int64_t now_ns) {
  static std::mt19937_64 rng(std::random_device{}());
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  return absl::StrCat(
      "ts-", absl::FormatTime("%Y%m%d-%H%M%S", absl::FromUnixNanos(now_ns), absl::UTCTimeZone()),
      "-", absl::StrFormat("%04x", rng() & 0xffff));
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

}  // namespace

struct ExperimentRunner::Task {
  std::string task_id;
  std::string agent_id;
  std::string agent_name;
  std::string role;    // "server" | "client"
  std::string scheme;  // clients
  std::string state = "pending";
  std::string detail;
  std::string endpoint;  // the server's HOST:PORT once running
  uint64_t progress = 0;
  uint64_t total = 0;
  std::string summary_json;
  lab::v1::Scheme proto_scheme = lab::v1::SCHEME_UNSPECIFIED;
};

struct ExperimentRunner::Active {
  std::string id;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Task> tasks;  // [0] is the server

  Task* Find(const std::string& task_id) {
    for (Task& t : tasks) {
      if (t.task_id == task_id) return &t;
    }
    return nullptr;
  }
};

ExperimentRunner::ExperimentRunner(RunnerOptions options, AgentHub& hub, AgentRegistry& registry,
                                   ResultsStore& store, const Clock& clock,
                                   std::shared_ptr<spdlog::logger> logger)
    : options_(options),
      hub_(hub),
      registry_(registry),
      store_(store),
      clock_(clock),
      logger_(std::move(logger)) {}

absl::Status ExperimentRunner::Run(const lab::v1::ExperimentSpec& spec, const EventSink& sink) {
  // Validate everything before touching anything.
  if (!spec.has_timesync()) {
    return absl::InvalidArgumentError("the spec names no experiment; set \"timesync\"");
  }
  const lab::v1::TimeSyncExperiment& ts = spec.timesync();
  if (ts.clients().empty()) {
    return absl::InvalidArgumentError("no clients; ask for at least one scheme, e.g. kalman");
  }
  if (ts.count() == 0) return absl::InvalidArgumentError("count must be > 0");
  if (ts.interval_ns() <= 0) return absl::InvalidArgumentError("interval must be > 0");
  for (int i = 0; i < ts.clients_size(); ++i) {
    const auto params = rpc::FromProto(ts.clients(i).scheme(), ts.clients(i).params());
    if (!params.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("client ", i + 1, ": ", params.status().message()));
    }
  }
  const std::vector<AgentSnapshot> agents = registry_.List();
  if (agents.empty()) {
    return absl::FailedPreconditionError(
        "no agents are connected; start a local lab with `labctl lab up` or run lab-agent "
        "--controller HOST:PORT on the lab's hosts");
  }
  const auto by_name = [&](const std::string& name) -> const AgentSnapshot* {
    for (const AgentSnapshot& a : agents) {
      if (a.info.name() == name) return &a;
    }
    return nullptr;
  };
  std::vector<std::string> names;
  for (const AgentSnapshot& a : agents) names.push_back(a.info.name());
  const auto unknown = [&](const std::string& name) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown agent '", name, "'; connected: ", absl::StrJoin(names, ", ")));
  };
  const AgentSnapshot* server_agent = &agents.front();
  if (!ts.server_agent().empty()) {
    server_agent = by_name(ts.server_agent());
    if (server_agent == nullptr) return unknown(ts.server_agent());
  }
  std::vector<const AgentSnapshot*> others;
  for (const AgentSnapshot& a : agents) {
    if (&a != server_agent) others.push_back(&a);
  }
  // The server's agent comes last: N clients land on N different agents whenever the lab has
  // N agents, and the server's host takes a client only when the others all have one.
  others.push_back(server_agent);

  const int64_t now = clock_.NowNs();
  auto active = std::make_shared<Active>();
  active->id = NewExperimentId(now);
  Task server;
  server.task_id = "server";
  server.agent_id = server_agent->agent_id;
  server.agent_name = server_agent->info.name();
  server.role = "server";
  active->tasks.push_back(server);
  for (int i = 0; i < ts.clients_size(); ++i) {
    const lab::v1::TimeSyncClientSpec& c = ts.clients(i);
    const AgentSnapshot* agent = others[static_cast<std::size_t>(i) % others.size()];
    if (!c.agent().empty()) {
      agent = by_name(c.agent());
      if (agent == nullptr) return unknown(c.agent());
    }
    Task t;
    const std::string scheme(
        timesync::SchemeName(static_cast<timesync::Scheme>(static_cast<int>(c.scheme()))));
    t.task_id = absl::StrFormat("client-%02d-%s", i + 1, scheme);
    t.agent_id = agent->agent_id;
    t.agent_name = agent->info.name();
    t.role = "client";
    t.scheme = scheme;
    t.proto_scheme = c.scheme();
    t.total = ts.count();
    active->tasks.push_back(t);
  }

  // Record the experiment before starting it, so even a crash leaves a trace.
  if (absl::Status s =
          store_.CreateExperiment({active->id, "timesync", ToJson(spec), "running", now, 0});
      !s.ok()) {
    return s;
  }
  absl::flat_hash_map<std::string, bool> recorded;
  for (const Task& t : active->tasks) {
    if (recorded[t.agent_name]) continue;
    recorded[t.agent_name] = true;
    const auto agent = registry_.Find(t.agent_id);
    LogIfError(store_.AddAgent({active->id, t.agent_name,
                                agent ? absl::StrJoin(agent->info.addresses(), ",") : "",
                                agent ? ToJson(agent->info) : "{}"}),
               active->id, "recording agent " + t.agent_name);
  }
  for (const Task& t : active->tasks) {
    LogIfError(store_.PutTask({active->id, t.task_id, t.agent_name, t.role, t.scheme, t.state, ""}),
               active->id, "recording task " + t.task_id);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_[active->id] = active;
  }
  logger_->info("experiment {}: server on {}, {} clients", active->id, server.agent_name,
                ts.clients_size());

  const auto event = [&](bool finished, const std::string& state) {
    lab::v1::ExperimentEvent e;
    e.set_experiment_id(active->id);
    e.set_finished(finished);
    e.set_state(state);
    if (!options_.dashboard_url.empty()) {
      e.set_dashboard_url(absl::StrCat(options_.dashboard_url, "#/experiments/", active->id));
    }
    std::lock_guard<std::mutex> lock(active->mu);
    for (const Task& t : active->tasks) {
      if (t.role != "client") continue;
      auto* c = e.add_clients();
      c->set_task_id(t.task_id);
      c->set_agent(t.agent_name);
      c->set_scheme(t.proto_scheme);
      c->set_progress(t.progress);
      c->set_total(t.total);
      c->set_detail(t.detail);
      c->set_state(t.state == "complete"  ? lab::v1::TASK_STATE_COMPLETE
                   : t.state == "failed"  ? lab::v1::TASK_STATE_FAILED
                   : t.state == "lost"    ? lab::v1::TASK_STATE_LOST
                   : t.state == "running" ? lab::v1::TASK_STATE_RUNNING
                                          : lab::v1::TASK_STATE_PENDING);
    }
    return e;
  };
  bool watching = sink(event(false, "running"));

  // The server first, and its address.
  lab::v1::ControllerMessage start;
  start.mutable_start_task()->set_task_id("server");
  start.mutable_start_task()->set_experiment_id(active->id);
  start.mutable_start_task()->mutable_time_server();
  if (absl::Status s = hub_.Send(server.agent_id, start); !s.ok()) {
    std::lock_guard<std::mutex> lock(active->mu);
    SetTaskState(*active, active->tasks[0], "lost", std::string(s.message()));
  }
  std::string endpoint;
  {
    std::unique_lock<std::mutex> lock(active->mu);
    active->cv.wait_for(lock, std::chrono::nanoseconds(options_.server_start_timeout_ns), [&] {
      return !active->tasks[0].endpoint.empty() || Terminal(active->tasks[0].state);
    });
    endpoint = active->tasks[0].endpoint;
    if (endpoint.empty()) {
      const std::string why =
          absl::StrCat("the time server did not start on ", server.agent_name,
                       active->tasks[0].detail.empty() ? "" : ": ", active->tasks[0].detail);
      for (Task& t : active->tasks) SetTaskState(*active, t, "failed", why);
    }
  }

  // Then the clients.
  if (!endpoint.empty()) {
    for (std::size_t i = 1; i < active->tasks.size(); ++i) {
      const Task& t = active->tasks[i];
      const lab::v1::TimeSyncClientSpec& c = ts.clients(static_cast<int>(i - 1));
      lab::v1::ControllerMessage m;
      auto* task = m.mutable_start_task();
      task->set_task_id(t.task_id);
      task->set_experiment_id(active->id);
      auto* client = task->mutable_time_client();
      client->set_server(endpoint);
      client->set_scheme(c.scheme());
      *client->mutable_params() = c.params();
      client->set_count(ts.count());
      client->set_interval_ns(ts.interval_ns());
      client->set_offset_ns(ts.offset_ns());
      client->set_drift_ppm(ts.drift_ppm());
      client->set_timeout_ns(2'000'000'000);
      if (absl::Status s = hub_.Send(t.agent_id, m); !s.ok()) {
        std::lock_guard<std::mutex> lock(active->mu);
        SetTaskState(*active, active->tasks[i], "lost", std::string(s.message()));
      }
    }
  }

  // Until every client is done (or overdue).
  const int64_t deadline =
      clock_.NowNs() + static_cast<int64_t>(ts.count()) * ts.interval_ns() + options_.grace_ns;
  while (true) {
    bool done;
    {
      std::unique_lock<std::mutex> lock(active->mu);
      active->cv.wait_for(lock, std::chrono::nanoseconds(options_.progress_interval_ns));
      done = std::all_of(active->tasks.begin() + 1, active->tasks.end(),
                         [](const Task& t) { return Terminal(t.state); });
      if (!done && clock_.NowNs() > deadline) {
        for (std::size_t i = 1; i < active->tasks.size(); ++i) {
          if (!Terminal(active->tasks[i].state)) {
            SetTaskState(*active, active->tasks[i], "failed", "timed out");
          }
        }
        done = true;
      }
    }
    if (done) break;
    if (watching) watching = sink(event(false, "running"));
  }

  // Stop the server; keep the summaries; finish.
  lab::v1::ControllerMessage stop;
  stop.mutable_stop_task()->set_task_id("server");
  stop.mutable_stop_task()->set_experiment_id(active->id);
  (void)hub_.Send(server.agent_id, stop);
  std::string state;
  {
    std::lock_guard<std::mutex> lock(active->mu);
    if (!Terminal(active->tasks[0].state)) SetTaskState(*active, active->tasks[0], "complete", "");
    int complete = 0;
    for (std::size_t i = 1; i < active->tasks.size(); ++i) {
      const Task& t = active->tasks[i];
      if (t.state != "complete") continue;
      ++complete;
      const auto summary = nlohmann::json::parse(t.summary_json, nullptr, false);
      SummaryRecord record{active->id, t.task_id, t.summary_json, {}, {}};
      if (summary.is_object() && summary.contains("histogram")) {
        record.edges_us = summary["histogram"].value("edges_us", std::vector<double>{});
        const auto cumulative = summary["histogram"].value("counts", std::vector<uint64_t>{});
        uint64_t previous = 0;
        for (uint64_t c : cumulative) {
          record.bucket_counts.push_back(c - previous);
          previous = c;
        }
      }
      if (absl::Status s = store_.PutSummary(record); !s.ok()) {
        logger_->error("experiment {}: cannot store the summary of {}: {}", active->id, t.task_id,
                       s.ToString());
      }
    }
    const int clients = static_cast<int>(active->tasks.size()) - 1;
    state = complete == clients ? "completed" : complete > 0 ? "partial" : "failed";
  }
  // No longer active first: samples that come after this (a client past its deadline) are
  // dropped, so what is stored when the run is final stays final.
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_.erase(active->id);
  }
  LogIfError(store_.FinishExperiment(active->id, state, clock_.NowNs()), active->id,
             "recording the end");
  logger_->info("experiment {} {}", active->id, state);
  lab::v1::ExperimentEvent last = event(true, state);
  if (auto summary = SummaryJson(active->id); summary.ok()) last.set_summary_json(*summary);
  if (watching) sink(last);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ExperimentRunner::SummaryJson(const std::string& experiment_id) const {
  auto experiment = store_.GetExperiment(experiment_id);
  if (!experiment.ok()) return experiment.status();
  auto tasks = store_.ListTasks(experiment_id);
  if (!tasks.ok()) return tasks.status();
  auto summaries = store_.GetSummaries(experiment_id);
  if (!summaries.ok()) return summaries.status();
  auto agents = store_.ListAgents(experiment_id);
  if (!agents.ok()) return agents.status();
  absl::flat_hash_map<std::string, std::string> clock_of, address_of;
  for (const AgentRecord& a : *agents) {
    address_of[a.name] = a.address;
    const auto meta = nlohmann::json::parse(a.metadata_json, nullptr, false);
    clock_of[a.name] = meta.is_object() ? meta.value("clock_id", "") : "";
  }
  std::string server_clock;
  for (const TaskRecord& t : *tasks) {
    if (t.role == "server") server_clock = clock_of[t.agent_name];
  }
  nlohmann::json clients = nlohmann::json::array();
  std::vector<TaskRecord> sorted = *tasks;
  std::sort(sorted.begin(), sorted.end(),
            [](const TaskRecord& a, const TaskRecord& b) { return a.task_id < b.task_id; });
  for (const TaskRecord& t : sorted) {
    if (t.role != "client") continue;
    nlohmann::json c = nlohmann::json::object();
    for (const SummaryRecord& s : *summaries) {
      if (s.task_id == t.task_id) c = nlohmann::json::parse(s.summary_json, nullptr, false);
    }
    if (!c.is_object()) c = nlohmann::json::object();
    c["scheme"] = t.scheme;
    c["task_id"] = t.task_id;
    c["agent"] = t.agent_name;
    c["agent_address"] = address_of[t.agent_name];
    c["state"] = t.state;
    if (!t.detail.empty()) c["detail"] = t.detail;
    // Known only when client and server read the same kernel clock.
    c["truth_known"] = !server_clock.empty() && clock_of[t.agent_name] == server_clock;
    clients.push_back(std::move(c));
  }
  return nlohmann::json{
      {"experiment_id", experiment_id}, {"state", experiment->state}, {"clients", clients}}
      .dump();
}

void ExperimentRunner::LogIfError(const absl::Status& status, const std::string& experiment_id,
                                  const std::string& what) const {
  if (!status.ok()) logger_->error("experiment {}: {}: {}", experiment_id, what, status.ToString());
}

std::shared_ptr<ExperimentRunner::Active> ExperimentRunner::FindActive(
    const std::string& experiment_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = active_.find(experiment_id);
  return it == active_.end() ? nullptr : it->second;
}

void ExperimentRunner::SetTaskState(Active& active, Task& task, const std::string& state,
                                    const std::string& detail) {
  if (Terminal(task.state) || task.state == state) return;
  task.state = state;
  if (!detail.empty()) task.detail = detail;
  if (absl::Status s = store_.SetTaskState(active.id, task.task_id, state, task.detail); !s.ok()) {
    logger_->error("experiment {}: cannot record {} as {}: {}", active.id, task.task_id, state,
                   s.ToString());
  }
  active.cv.notify_all();
}

void ExperimentRunner::OnTaskUpdate(const std::string& agent_id,
                                    const lab::v1::TaskUpdate& update) {
  auto active = FindActive(update.experiment_id());
  if (active == nullptr) return;
  std::lock_guard<std::mutex> lock(active->mu);
  Task* task = active->Find(update.task_id());
  if (task == nullptr || task->agent_id != agent_id) return;  // not this agent's task
  if (update.total() > 0) task->total = update.total();
  task->progress = std::max(task->progress, update.progress());
  switch (update.state()) {
    case lab::v1::TASK_STATE_RUNNING:
      if (task->role == "server" && task->endpoint.empty()) task->endpoint = update.detail();
      SetTaskState(*active, *task, "running", update.detail());
      break;
    case lab::v1::TASK_STATE_COMPLETE:
      task->summary_json = update.summary_json();
      SetTaskState(*active, *task, "complete", "");
      break;
    case lab::v1::TASK_STATE_STOPPED:
      SetTaskState(*active, *task, task->role == "server" ? "complete" : "failed", "stopped");
      break;
    case lab::v1::TASK_STATE_FAILED:
      SetTaskState(*active, *task, "failed", update.detail());
      break;
    default:
      break;
  }
  active->cv.notify_all();
}

void ExperimentRunner::OnSamples(const std::string& agent_id, const lab::v1::SampleBatch& batch) {
  auto active = FindActive(batch.experiment_id());
  if (active == nullptr) return;
  std::string scheme;
  {
    std::lock_guard<std::mutex> lock(active->mu);
    Task* task = active->Find(batch.task_id());
    if (task == nullptr || task->agent_id != agent_id) return;
    scheme = task->scheme;
  }
  std::vector<SampleRecord> samples;
  samples.reserve(static_cast<std::size_t>(batch.samples_size()));
  for (const lab::v1::TimeSyncSample& s : batch.samples()) {
    SampleRecord r;
    r.seq = s.seq();
    r.send_host_ns = s.send_host_ns();
    r.recv_host_ns = s.recv_host_ns();
    r.rtt_ns = s.rtt_ns();
    if (s.has_measured_offset_ns()) r.measured_offset_ns = s.measured_offset_ns();
    r.true_offset_ns = s.true_offset_ns();
    r.correction_ns = s.correction_ns();
    r.applied = s.applied();
    r.error_ns = s.error_ns();
    samples.push_back(r);
  }
  if (absl::Status s = store_.AppendSamples(batch.experiment_id(), batch.task_id(), samples);
      !s.ok()) {
    logger_->error("experiment {}: {} samples of {} not stored: {}", batch.experiment_id(),
                   samples.size(), batch.task_id(), s.ToString());
  } else if (observer_ != nullptr) {
    observer_->OnSamplesStored(scheme, samples);
  }
}

void ExperimentRunner::OnAgentLost(const std::string& agent_id, const std::string& reason) {
  std::vector<std::shared_ptr<Active>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, active] : active_) all.push_back(active);
  }
  for (auto& active : all) {
    std::lock_guard<std::mutex> lock(active->mu);
    for (Task& t : active->tasks) {
      if (t.agent_id == agent_id) {
        SetTaskState(*active, t, "lost", absl::StrCat("agent ", t.agent_name, " lost: ", reason));
      }
    }
  }
}

}  // namespace lab::controller

#include "controller/service/experiment_runner.h"

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "dataplane/stats/histogram.h"
#include "dataplane/timesync/scheme.h"
#include "dataplane/traffic/tcp_client.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "rpc/timesync_conversion.h"
#include "rpc/traffic_conversion.h"

namespace lab::controller {

namespace {

bool Terminal(const std::string& state) {
  return state == "complete" || state == "failed" || state == "lost";
}

std::string NewExperimentId(const std::string& prefix, int64_t now_ns) {
  static std::mt19937_64 rng(std::random_device{}());
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  return absl::StrCat(
      prefix, "-",
      absl::FormatTime("%Y%m%d-%H%M%S", absl::FromUnixNanos(now_ns), absl::UTCTimeZone()), "-",
      absl::StrFormat("%04x", rng() & 0xffff));
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

// What an experiment of any kind starts: one server task, then clients that learn the
// server's address. Built (and validated) from the spec before anything starts.
struct Plan {
  std::string kind;       // "timesync", "tcp", "udp"
  std::string id_prefix;  // of experiment ids
  std::string server_agent;
  lab::v1::Task server;  // the kind's server task (ids filled in later)
  struct Client {
    std::string label;  // "kalman", "tcp-rr", "udp", …: the tasks table's scheme column
    std::string agent;  // requested agent, may be empty
    lab::v1::Task task;
    lab::v1::Scheme scheme = lab::v1::SCHEME_UNSPECIFIED;
    uint64_t total = 0;
  };
  std::vector<Client> clients;
  int64_t expected_ns = 0;     // how long the clients should take
  bool one_per_agent = false;  // clients[0] runs on each agent but the server's
  std::function<void(lab::v1::Task&, const std::string&)> set_server;
};

absl::StatusOr<Plan> PlanTimeSync(const lab::v1::TimeSyncExperiment& ts) {
  if (ts.clients().empty()) {
    return absl::InvalidArgumentError("no clients; ask for at least one scheme, e.g. kalman");
  }
  if (ts.count() == 0) return absl::InvalidArgumentError("count must be > 0");
  if (ts.interval_ns() <= 0) return absl::InvalidArgumentError("interval must be > 0");
  Plan plan;
  plan.kind = "timesync";
  plan.id_prefix = "ts";
  plan.server_agent = ts.server_agent();
  plan.server.mutable_time_server();
  for (int i = 0; i < ts.clients_size(); ++i) {
    const lab::v1::TimeSyncClientSpec& c = ts.clients(i);
    const auto params = rpc::FromProto(c.scheme(), c.params());
    if (!params.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("client ", i + 1, ": ", params.status().message()));
    }
    Plan::Client client;
    client.label = std::string(timesync::SchemeName(params->scheme));
    client.agent = c.agent();
    client.scheme = c.scheme();
    client.total = ts.count();
    auto* task = client.task.mutable_time_client();
    task->set_scheme(c.scheme());
    *task->mutable_params() = c.params();
    task->set_count(ts.count());
    task->set_interval_ns(ts.interval_ns());
    task->set_offset_ns(ts.offset_ns());
    task->set_drift_ppm(ts.drift_ppm());
    task->set_timeout_ns(2'000'000'000);
    plan.clients.push_back(std::move(client));
  }
  plan.expected_ns = static_cast<int64_t>(ts.count()) * ts.interval_ns();
  plan.set_server = [](lab::v1::Task& t, const std::string& endpoint) {
    t.mutable_time_client()->set_server(endpoint);
  };
  return plan;
}

// Clients of a traffic experiment: `count` copies of `task`, spread over `agents` if given.
absl::Status AddTrafficClients(Plan& plan, uint32_t count,
                               const google::protobuf::RepeatedPtrField<std::string>& agents,
                               const std::string& label, const lab::v1::Task& task) {
  // No count and no agents: one client now, copied onto every agent but the server's once
  // the agents are known (Plan::one_per_agent).
  const uint32_t n = count > 0 ? count : std::max<uint32_t>(1, agents.size());
  plan.one_per_agent = count == 0 && agents.empty();
  if (n > 256) return absl::InvalidArgumentError(absl::StrCat("clients must be <= 256, got ", n));
  if (!agents.empty() && static_cast<uint32_t>(agents.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("give one agent per client: ", agents.size(), " agents for ", n, " clients"));
  }
  for (uint32_t i = 0; i < n; ++i) {
    Plan::Client client;
    client.label = label;
    client.agent = agents.empty() ? "" : agents[static_cast<int>(i)];
    client.task = task;
    plan.clients.push_back(std::move(client));
  }
  return absl::OkStatus();
}

absl::StatusOr<Plan> PlanTcp(const lab::v1::TcpExperiment& tcp) {
  Plan plan;
  plan.kind = "tcp";
  plan.id_prefix = "tcp";
  plan.server_agent = tcp.server_agent();
  *plan.server.mutable_tcp_server() = tcp.server();
  if (auto s = rpc::FromProto(tcp.server(), "127.0.0.1", true); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("server: ", s.status().message()));
  }
  lab::v1::Task task;
  *task.mutable_tcp_client() = tcp.client();
  task.mutable_tcp_client()->set_server("127.0.0.1:1");  // for validation; set at start
  auto options = rpc::FromProto(task.tcp_client());
  if (!options.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("client: ", options.status().message()));
  }
  if (tcp.client().duration_ns() <= 0) {
    return absl::InvalidArgumentError("client: a TCP experiment needs a duration > 0");
  }
  std::string label = absl::StrCat("tcp-", traffic::TcpClientModeName(options->mode));
  if (options->reverse) absl::StrAppend(&label, "-reverse");
  LAB_RETURN_IF_ERROR(AddTrafficClients(plan, tcp.clients(), tcp.client_agents(), label, task));
  for (auto& c : plan.clients) {
    c.total = static_cast<uint64_t>(tcp.client().duration_ns() / 1'000'000);
  }
  plan.expected_ns = tcp.client().duration_ns() + options->connect_timeout_ns;
  plan.set_server = [](lab::v1::Task& t, const std::string& endpoint) {
    t.mutable_tcp_client()->set_server(endpoint);
  };
  return plan;
}

absl::StatusOr<Plan> PlanUdp(const lab::v1::UdpExperiment& udp) {
  Plan plan;
  plan.kind = "udp";
  plan.id_prefix = "udp";
  plan.server_agent = udp.server_agent();
  *plan.server.mutable_udp_server() = udp.server();
  if (auto s = rpc::FromProto(udp.server(), "127.0.0.1", true); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("server: ", s.status().message()));
  }
  if (udp.client().duration_ns() <= 0) {
    return absl::InvalidArgumentError("client: a UDP experiment needs a duration > 0");
  }
  lab::v1::Task task;
  *task.mutable_udp_client() = udp.client();
  task.mutable_udp_client()->set_server("127.0.0.1:1");
  auto options = rpc::FromProto(task.udp_client());
  if (!options.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("client: ", options.status().message()));
  }
  if (options->one_way != (udp.server().mode() == "sink")) {
    return absl::InvalidArgumentError(
        "a sink server sends no echoes: one-way clients go with --server-mode sink, and only "
        "they");
  }
  LAB_RETURN_IF_ERROR(AddTrafficClients(plan, udp.clients(), udp.client_agents(),
                                        options->rate_pps ? "udp-paced" : "udp-simple", task));
  for (auto& c : plan.clients) {
    c.total = static_cast<uint64_t>(udp.client().duration_ns() / 1'000'000);
  }
  plan.expected_ns = udp.client().duration_ns() + options->timeout_ns;
  plan.set_server = [](lab::v1::Task& t, const std::string& endpoint) {
    t.mutable_udp_client()->set_server(endpoint);
  };
  return plan;
}

absl::StatusOr<Plan> PlanExperiment(const lab::v1::ExperimentSpec& spec) {
  switch (spec.kind_case()) {
    case lab::v1::ExperimentSpec::kTimesync:
      return PlanTimeSync(spec.timesync());
    case lab::v1::ExperimentSpec::kTcp:
      return PlanTcp(spec.tcp());
    case lab::v1::ExperimentSpec::kUdp:
      return PlanUdp(spec.udp());
    default:
      return absl::InvalidArgumentError(
          "the spec names no experiment; set one of \"timesync\", \"tcp\", \"udp\"");
  }
}

// The latency histogram of a traffic report ("latency_histogram": sparse buckets on
// lab::stats::LatencyEdgesUs) as dense per-bucket counts; false when absent or malformed.
bool DenseLatencyBuckets(const nlohmann::json& summary, std::vector<double>* edges,
                         std::vector<uint64_t>* counts) {
  if (!summary.is_object() || !summary.contains("latency_histogram")) return false;
  const auto& h = summary["latency_histogram"];
  if (!h.is_object() || h.value("edges", "") != "latency_us_v1" || !h.contains("buckets")) {
    return false;
  }
  const auto latency_edges = stats::LatencyEdgesUs();
  std::vector<uint64_t> dense(latency_edges.size() + 1, 0);
  for (const auto& b : h["buckets"]) {
    if (!b.is_array() || b.size() != 2 || !b[0].is_number_unsigned() ||
        !b[1].is_number_unsigned() || b[0].get<std::size_t>() >= dense.size()) {
      return false;
    }
    dense[b[0].get<std::size_t>()] = b[1].get<uint64_t>();
  }
  edges->assign(latency_edges.begin(), latency_edges.end());
  *counts = std::move(dense);
  return true;
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
  absl::StatusOr<Plan> planned = PlanExperiment(spec);
  if (!planned.ok()) return planned.status();
  Plan& plan = *planned;
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
  if (!plan.server_agent.empty()) {
    server_agent = by_name(plan.server_agent);
    if (server_agent == nullptr) return unknown(plan.server_agent);
  }
  std::vector<const AgentSnapshot*> others;
  for (const AgentSnapshot& a : agents) {
    if (&a != server_agent) others.push_back(&a);
  }
  // The server's agent comes last: N clients land on N different agents whenever the lab has
  // N agents, and the server's host takes a client only when the others all have one.
  others.push_back(server_agent);
  if (plan.one_per_agent)
    plan.clients.resize(std::max<std::size_t>(1, others.size() - 1), plan.clients.front());

  const int64_t now = clock_.NowNs();
  auto active = std::make_shared<Active>();
  active->id = NewExperimentId(plan.id_prefix, now);
  Task server;
  server.task_id = "server";
  server.agent_id = server_agent->agent_id;
  server.agent_name = server_agent->info.name();
  server.role = "server";
  active->tasks.push_back(server);
  for (std::size_t i = 0; i < plan.clients.size(); ++i) {
    const Plan::Client& c = plan.clients[i];
    const AgentSnapshot* agent = others[i % others.size()];
    if (!c.agent.empty()) {
      agent = by_name(c.agent);
      if (agent == nullptr) return unknown(c.agent);
    }
    Task t;
    t.task_id = absl::StrFormat("client-%02d-%s", i + 1, c.label);
    t.agent_id = agent->agent_id;
    t.agent_name = agent->info.name();
    t.role = "client";
    t.scheme = c.label;
    t.proto_scheme = c.scheme;
    t.total = c.total;
    active->tasks.push_back(t);
  }

  // Record the experiment before starting it, so even a crash leaves a trace.
  if (absl::Status s =
          store_.CreateExperiment({active->id, plan.kind, ToJson(spec), "running", now, 0});
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
  logger_->info("{} experiment {}: server on {}, {} clients", plan.kind, active->id,
                server.agent_name, plan.clients.size());

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
      c->set_label(t.scheme);
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
  *start.mutable_start_task() = plan.server;
  start.mutable_start_task()->set_task_id("server");
  start.mutable_start_task()->set_experiment_id(active->id);
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
      const std::string why = absl::StrCat(
          "the ", plan.kind == "timesync" ? "time" : plan.kind, " server did not start on ",
          server.agent_name, active->tasks[0].detail.empty() ? "" : ": ", active->tasks[0].detail);
      for (Task& t : active->tasks) SetTaskState(*active, t, "failed", why);
    }
  }

  // Then the clients.
  if (!endpoint.empty()) {
    for (std::size_t i = 1; i < active->tasks.size(); ++i) {
      const Task& t = active->tasks[i];
      lab::v1::ControllerMessage m;
      auto* task = m.mutable_start_task();
      *task = plan.clients[i - 1].task;
      task->set_task_id(t.task_id);
      task->set_experiment_id(active->id);
      plan.set_server(*task, endpoint);
      if (absl::Status s = hub_.Send(t.agent_id, m); !s.ok()) {
        std::lock_guard<std::mutex> lock(active->mu);
        SetTaskState(*active, active->tasks[i], "lost", std::string(s.message()));
      }
    }
  }

  // Until every client is done (or overdue).
  const int64_t deadline = clock_.NowNs() + plan.expected_ns + options_.grace_ns;
  while (true) {
    bool done;
    {
      std::unique_lock<std::mutex> lock(active->mu);
      active->cv.wait_for(lock, std::chrono::nanoseconds(options_.progress_interval_ns));
      done = std::all_of(active->tasks.begin() + 1, active->tasks.end(),
                         [](const Task& t) { return Terminal(t.state); });
      if (!done && clock_.NowNs() > deadline) {
        for (std::size_t i = 1; i < active->tasks.size(); ++i) {
          Task& t = active->tasks[i];
          if (Terminal(t.state)) continue;
          SetTaskState(*active, t, "failed", "timed out");
          // It may still run: stop it, so it frees its agent's task slot.
          lab::v1::ControllerMessage stop_client;
          stop_client.mutable_stop_task()->set_task_id(t.task_id);
          stop_client.mutable_stop_task()->set_experiment_id(active->id);
          (void)hub_.Send(t.agent_id, stop_client);
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
    std::unique_lock<std::mutex> lock(active->mu);
    // Traffic servers answer the stop with their counters: wait for them a moment.
    if (plan.kind != "timesync") {
      active->cv.wait_for(lock, std::chrono::seconds(2),
                          [&] { return Terminal(active->tasks[0].state); });
    }
    if (!Terminal(active->tasks[0].state)) SetTaskState(*active, active->tasks[0], "complete", "");
    int complete = 0;
    for (std::size_t i = 0; i < active->tasks.size(); ++i) {
      const Task& t = active->tasks[i];
      if (i > 0 && t.state != "complete") continue;
      if (t.summary_json.empty()) continue;  // the server's (traffic servers report counters)
      if (i > 0) ++complete;
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
      } else {
        DenseLatencyBuckets(summary, &record.edges_us, &record.bucket_counts);
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
  nlohmann::json out = {
      {"experiment_id", experiment_id}, {"state", experiment->state}, {"clients", clients}};
  // Traffic servers report their counters (connections, refusals, bytes) when stopped.
  for (const TaskRecord& t : sorted) {
    if (t.role != "server") continue;
    for (const SummaryRecord& s : *summaries) {
      if (s.task_id != t.task_id) continue;
      nlohmann::json server = nlohmann::json::parse(s.summary_json, nullptr, false);
      if (!server.is_object()) continue;
      server["agent"] = t.agent_name;
      server["state"] = t.state;
      out["server"] = std::move(server);
    }
  }
  return out.dump();
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
      if (!update.summary_json().empty()) task->summary_json = update.summary_json();
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
  if (batch.intervals_size() > 0) {
    std::vector<IntervalRecord> intervals;
    for (const lab::v1::TrafficInterval& in : batch.intervals()) {
      IntervalRecord r;
      r.seq = in.seq();
      r.start_s = in.start_s();
      r.end_s = in.end_s();
      r.bytes_sent = in.bytes_sent();
      r.bytes_received = in.bytes_received();
      r.messages_sent = in.messages_sent();
      r.messages_received = in.messages_received();
      if (in.has_latency_p50_us()) r.latency_p50_us = in.latency_p50_us();
      if (in.has_latency_p99_us()) r.latency_p99_us = in.latency_p99_us();
      if (in.has_latency_max_us()) r.latency_max_us = in.latency_max_us();
      if (in.has_jitter_us()) r.jitter_us = in.jitter_us();
      r.errors = in.errors();
      intervals.push_back(r);
    }
    if (absl::Status s = store_.AppendIntervals(batch.experiment_id(), batch.task_id(), intervals);
        !s.ok()) {
      logger_->error("experiment {}: {} intervals of {} not stored: {}", batch.experiment_id(),
                     intervals.size(), batch.task_id(), s.ToString());
    }
  }
  if (batch.samples().empty()) return;
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

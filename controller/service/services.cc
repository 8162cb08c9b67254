#include "controller/service/services.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "rpc/status_conversion.h"

namespace lab::controller {

grpc::Status AgentServiceImpl::Connect(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<lab::v1::ControllerMessage, lab::v1::AgentMessage>* stream) {
  lab::v1::AgentMessage first;
  if (!stream->Read(&first) || !first.has_hello()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first message of a session must be Hello");
  }
  auto session = hub_.Open(first.hello(), context);
  if (!session.ok()) return rpc::ToGrpcStatus(session.status());
  lab::v1::ControllerMessage welcome;
  welcome.mutable_welcome()->set_agent_id((*session)->agent_id);
  welcome.mutable_welcome()->set_heartbeat_interval_ns(1'000'000'000);
  if (!stream->Write(welcome)) {
    hub_.Close(**session, "stream closed during Hello");
    return grpc::Status::CANCELLED;
  }
  // The writer: the only thread that writes to this stream after the Welcome.
  std::thread writer([&, s = *session] {
    std::unique_lock<std::mutex> lock(s->mu);
    while (true) {
      s->cv.wait(lock, [&] { return s->closed || !s->outbox.empty(); });
      if (s->closed) return;
      lab::v1::ControllerMessage m = std::move(s->outbox.front());
      s->outbox.pop_front();
      lock.unlock();
      const bool ok = stream->Write(m);
      lock.lock();
      if (!ok) return;
    }
  });
  lab::v1::AgentMessage message;
  while (stream->Read(&message)) hub_.Receive(**session, message);
  hub_.Close(**session, context->IsCancelled() ? "session cancelled" : "connection closed");
  writer.join();
  return grpc::Status::OK;
}

grpc::Status LabControllerImpl::RunExperiment(
    grpc::ServerContext* context, const lab::v1::RunExperimentRequest* request,
    grpc::ServerWriter<lab::v1::ExperimentEvent>* writer) {
  const absl::Status status =
      runner_.Run(request->spec(), [&](const lab::v1::ExperimentEvent& event) {
        return !context->IsCancelled() && writer->Write(event);
      });
  return rpc::ToGrpcStatus(status);
}

grpc::Status LabControllerImpl::ListAgents(grpc::ServerContext*, const lab::v1::ListAgentsRequest*,
                                           lab::v1::ListAgentsResponse* response) {
  for (const AgentSnapshot& a : registry_.List()) {
    auto* status = response->add_agents();
    *status->mutable_info() = a.info;
    status->set_agent_id(a.agent_id);
    status->set_alive(true);
    status->set_last_seen_ns(a.last_seen_ns);
    status->set_running_tasks(a.running_tasks);
  }
  return grpc::Status::OK;
}

namespace {

lab::v1::ExperimentListing Listing(const ExperimentRecord& r) {
  lab::v1::ExperimentListing l;
  l.set_experiment_id(r.id);
  l.set_kind(r.kind);
  l.set_state(r.state);
  l.set_created_ns(r.created_ns);
  l.set_finished_ns(r.finished_ns);
  const auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
  if (spec.is_object()) l.set_name(spec.value("name", ""));
  return l;
}

}  // namespace

grpc::Status LabControllerImpl::ListExperiments(grpc::ServerContext*,
                                                const lab::v1::ListExperimentsRequest* request,
                                                lab::v1::ListExperimentsResponse* response) {
  if (request->limit() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "limit must be >= 0");
  }
  auto list = store_.ListExperiments(request->limit() == 0 ? 50 : request->limit());
  if (!list.ok()) return rpc::ToGrpcStatus(list.status());
  for (const ExperimentRecord& r : *list) *response->add_experiments() = Listing(r);
  return grpc::Status::OK;
}

grpc::Status LabControllerImpl::GetExperiment(grpc::ServerContext*,
                                              const lab::v1::GetExperimentRequest* request,
                                              lab::v1::GetExperimentResponse* response) {
  auto record = store_.GetExperiment(request->experiment_id());
  if (!record.ok()) return rpc::ToGrpcStatus(record.status());
  *response->mutable_experiment() = Listing(*record);
  auto summary = runner_.SummaryJson(request->experiment_id());
  if (!summary.ok()) return rpc::ToGrpcStatus(summary.status());
  response->set_summary_json(*summary);
  return grpc::Status::OK;
}

absl::StatusOr<std::string> ExportExperiment(const ResultsStore& store,
                                             const ExperimentRunner& runner,
                                             const std::string& experiment_id,
                                             const std::string& format) {
  if (format != "csv" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown export format '", format, "'; use csv or json"));
  }
  auto tasks = store.ListTasks(experiment_id);
  if (!tasks.ok()) return tasks.status();
  auto experiment = store.GetExperiment(experiment_id);
  if (!experiment.ok()) return experiment.status();
  std::vector<TaskRecord> clients;
  for (const TaskRecord& t : *tasks) {
    if (t.role == "client") clients.push_back(t);
  }
  std::sort(clients.begin(), clients.end(),
            [](const TaskRecord& a, const TaskRecord& b) { return a.task_id < b.task_id; });
  std::string out;
  nlohmann::json samples_json = nlohmann::json::object();
  const bool traffic = experiment->kind == "tcp" || experiment->kind == "udp";
  if (traffic) {
    // Traffic runs: one row per client per interval.
    const auto optional = [](const std::optional<double>& v) {
      return v ? absl::StrFormat("%.3f", *v) : std::string();
    };
    if (format == "csv") {
      out =
          "experiment_id,task_id,agent,scheme,seq,start_s,end_s,bytes_sent,bytes_received,"
          "messages_sent,messages_received,latency_p50_us,latency_p99_us,latency_max_us,"
          "jitter_us,errors\n";
    }
    for (const TaskRecord& t : clients) {
      auto intervals = store.GetIntervals(experiment_id, t.task_id);
      if (!intervals.ok()) return intervals.status();
      nlohmann::json rows = nlohmann::json::array();
      for (const IntervalRecord& r : *intervals) {
        if (format == "csv") {
          absl::StrAppend(&out, experiment_id, ",", t.task_id, ",", t.agent_name, ",", t.scheme,
                          ",", r.seq, ",", absl::StrFormat("%.6f,%.6f", r.start_s, r.end_s), ",",
                          r.bytes_sent, ",", r.bytes_received, ",", r.messages_sent, ",",
                          r.messages_received, ",", optional(r.latency_p50_us), ",",
                          optional(r.latency_p99_us), ",", optional(r.latency_max_us), ",",
                          optional(r.jitter_us), ",", r.errors, "\n");
        } else {
          const auto value = [](const std::optional<double>& v) {
            return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
          };
          rows.push_back({{"seq", r.seq},
                          {"start_s", r.start_s},
                          {"end_s", r.end_s},
                          {"bytes_sent", r.bytes_sent},
                          {"bytes_received", r.bytes_received},
                          {"messages_sent", r.messages_sent},
                          {"messages_received", r.messages_received},
                          {"latency_p50_us", value(r.latency_p50_us)},
                          {"latency_p99_us", value(r.latency_p99_us)},
                          {"latency_max_us", value(r.latency_max_us)},
                          {"jitter_us", value(r.jitter_us)},
                          {"errors", r.errors}});
        }
      }
      if (format == "json") samples_json[t.task_id] = std::move(rows);
    }
  } else if (format == "csv") {
    out =
        "experiment_id,task_id,agent,scheme,seq,send_host_ns,recv_host_ns,rtt_ns,"
        "measured_offset_ns,true_offset_ns,correction_ns,applied,error_ns\n";
  }
  for (const TaskRecord& t : traffic ? std::vector<TaskRecord>{} : clients) {
    auto samples = store.GetSamples(experiment_id, t.task_id);
    if (!samples.ok()) return samples.status();
    nlohmann::json rows = nlohmann::json::array();
    for (const SampleRecord& s : *samples) {
      if (format == "csv") {
        absl::StrAppend(&out, experiment_id, ",", t.task_id, ",", t.agent_name, ",", t.scheme, ",",
                        s.seq, ",", s.send_host_ns, ",", s.recv_host_ns, ",",
                        absl::StrFormat("%.0f", s.rtt_ns), ",",
                        s.measured_offset_ns ? absl::StrFormat("%.1f", *s.measured_offset_ns) : "",
                        ",", absl::StrFormat("%.1f", s.true_offset_ns), ",", s.correction_ns, ",",
                        s.applied ? 1 : 0, ",", absl::StrFormat("%.1f", s.error_ns), "\n");
      } else {
        rows.push_back(
            {{"seq", s.seq},
             {"send_host_ns", s.send_host_ns},
             {"recv_host_ns", s.recv_host_ns},
             {"rtt_ns", s.rtt_ns},
             {"measured_offset_ns", s.measured_offset_ns ? nlohmann::json(*s.measured_offset_ns)
                                                         : nlohmann::json(nullptr)},
             {"true_offset_ns", s.true_offset_ns},
             {"correction_ns", s.correction_ns},
             {"applied", s.applied},
             {"error_ns", s.error_ns}});
      }
    }
    if (format == "json") samples_json[t.task_id] = std::move(rows);
  }
  if (format == "csv") return out;
  auto summary = runner.SummaryJson(experiment_id);
  if (!summary.ok()) return summary.status();
  return nlohmann::json{{"experiment",
                         {{"experiment_id", experiment->id},
                          {"kind", experiment->kind},
                          {"state", experiment->state},
                          {"created_ns", experiment->created_ns},
                          {"finished_ns", experiment->finished_ns},
                          {"spec", nlohmann::json::parse(experiment->spec_json, nullptr, false)}}},
                        {"summary", nlohmann::json::parse(*summary)},
                        {traffic ? "intervals" : "samples", samples_json}}
             .dump(1) +
         "\n";
}

grpc::Status LabControllerImpl::ExportExperiment(grpc::ServerContext*,
                                                 const lab::v1::ExportExperimentRequest* request,
                                                 grpc::ServerWriter<lab::v1::ExportChunk>* writer) {
  auto data =
      controller::ExportExperiment(store_, runner_, request->experiment_id(), request->format());
  if (!data.ok()) return rpc::ToGrpcStatus(data.status());
  constexpr std::size_t kChunk = 64 * 1024;
  for (std::size_t at = 0; at < data->size(); at += kChunk) {
    lab::v1::ExportChunk chunk;
    chunk.set_data(data->substr(at, kChunk));
    if (!writer->Write(chunk)) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

}  // namespace lab::controller

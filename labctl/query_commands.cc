#include "labctl/query_commands.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "dataplane/timesync/report.h"
#include "labctl/table.h"
#include "labctl/traffic_run.h"
#include "rpc/status_conversion.h"

namespace lab::labctl {

namespace {

// "0.4s ago", "12s ago", "5m ago", "3h ago"; "-" when never.
std::string Ago(int64_t then_ns, int64_t now_ns) {
  if (then_ns <= 0) return "-";
  const double s = static_cast<double>(now_ns - then_ns) / 1e9;
  if (s < 0) return "just now";
  if (s < 10) return absl::StrFormat("%.1fs ago", s);
  if (s < 120) return absl::StrFormat("%.0fs ago", s);
  if (s < 7200) return absl::StrFormat("%.0fm ago", s / 60);
  return absl::StrFormat("%.0fh ago", s / 3600);
}

std::string LocalTime(int64_t ns) {
  if (ns <= 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixNanos(ns), absl::LocalTimeZone());
}

// Sets the deadline and watches for Ctrl-C for one call.
struct Call {
  Call(const GlobalOptions& global, Environment& env) : watch(*env.interrupt, &context) {
    rpc::SetDeadline(context, global.timeout);
  }
  grpc::ClientContext context;
  Interrupt::Watch watch;
};

}  // namespace

std::string FormatAgentsTable(const lab::v1::ListAgentsResponse& agents, int64_t now_ns) {
  std::vector<std::vector<std::string>> rows;
  for (const lab::v1::AgentStatus& a : agents.agents()) {
    rows.push_back({a.info().name(), a.agent_id(), absl::StrJoin(a.info().addresses(), ","),
                    a.info().timestamping().empty() ? "-" : a.info().timestamping(),
                    a.alive() ? "yes" : "no", absl::StrCat(a.running_tasks()),
                    Ago(a.last_seen_ns(), now_ns)});
  }
  return FormatColumns(
      {"NAME", "AGENT ID", "ADDRESSES", "TIMESTAMPING", "ALIVE", "RUNNING TASKS", "LAST SEEN"},
      rows);
}

nlohmann::json AgentsToJson(const lab::v1::ListAgentsResponse& agents) {
  nlohmann::json list = nlohmann::json::array();
  for (const lab::v1::AgentStatus& a : agents.agents()) {
    list.push_back({{"name", a.info().name()},
                    {"agent_id", a.agent_id()},
                    {"addresses", a.info().addresses()},
                    {"capabilities", a.info().capabilities()},
                    {"timestamping", a.info().timestamping()},
                    {"clock_id", a.info().clock_id()},
                    {"max_tasks", a.info().max_tasks()},
                    {"version", a.info().version()},
                    {"alive", a.alive()},
                    {"running_tasks", a.running_tasks()},
                    {"last_seen_ns", a.last_seen_ns()}});
  }
  return {{"agents", list}};
}

int ListAgents(const GlobalOptions& global, Environment& env) {
  int exit_code = kExitOk;
  std::shared_ptr<ControllerStub> stub = ConnectOrExplain(global, env, &exit_code);
  if (!stub) return exit_code;
  Call call(global, env);
  lab::v1::ListAgentsResponse response;
  const absl::Status status =
      rpc::FromGrpcStatus(stub->ListAgents(&call.context, lab::v1::ListAgentsRequest(), &response));
  if (!status.ok()) return ExplainCallFailure(status, global, env);
  if (global.json) {
    *env.out << AgentsToJson(response).dump(2) << std::endl;
  } else if (response.agents().empty()) {
    *env.out << "no agents have registered with the controller at " << global.controller
             << " (start one with lab-agent --controller " << global.controller
             << ", or a whole local lab with labctl lab up)" << std::endl;
  } else {
    *env.out << FormatAgentsTable(response, env.clock->NowNs()) << std::flush;
  }
  return kExitOk;
}

int ListResults(int limit, const GlobalOptions& global, Environment& env) {
  if (limit < 1 || limit > 10'000) {
    PrintError(env, absl::StrCat("--limit must be in [1, 10000], got ", limit));
    return kExitUsage;
  }
  int exit_code = kExitOk;
  std::shared_ptr<ControllerStub> stub = ConnectOrExplain(global, env, &exit_code);
  if (!stub) return exit_code;
  Call call(global, env);
  lab::v1::ListExperimentsRequest request;
  request.set_limit(limit);
  lab::v1::ListExperimentsResponse response;
  const absl::Status status =
      rpc::FromGrpcStatus(stub->ListExperiments(&call.context, request, &response));
  if (!status.ok()) return ExplainCallFailure(status, global, env);
  if (global.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const lab::v1::ExperimentListing& e : response.experiments()) {
      list.push_back({{"experiment_id", e.experiment_id()},
                      {"name", e.name()},
                      {"kind", e.kind()},
                      {"state", e.state()},
                      {"created_ns", e.created_ns()},
                      {"finished_ns", e.finished_ns()}});
    }
    *env.out << nlohmann::json{{"experiments", list}}.dump(2) << std::endl;
    return kExitOk;
  }
  if (response.experiments().empty()) {
    *env.out << "no experiments yet; run one with labctl run --clients raw,ewma,kalman,pid"
             << std::endl;
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const lab::v1::ExperimentListing& e : response.experiments()) {
    const std::string took =
        e.finished_ns() > 0 && e.created_ns() > 0
            ? absl::FormatDuration(absl::Trunc(absl::Nanoseconds(e.finished_ns() - e.created_ns()),
                                               absl::Milliseconds(100)))
            : "-";
    rows.push_back({e.experiment_id(), e.name().empty() ? "-" : e.name(), e.kind(), e.state(),
                    LocalTime(e.created_ns()), took});
  }
  *env.out << FormatColumns({"ID", "NAME", "KIND", "STATE", "CREATED", "TOOK"}, rows) << std::flush;
  return kExitOk;
}

int ShowResult(const std::string& experiment_id, const GlobalOptions& global, Environment& env) {
  int exit_code = kExitOk;
  std::shared_ptr<ControllerStub> stub = ConnectOrExplain(global, env, &exit_code);
  if (!stub) return exit_code;
  Call call(global, env);
  lab::v1::GetExperimentRequest request;
  request.set_experiment_id(experiment_id);
  lab::v1::GetExperimentResponse response;
  const absl::Status status =
      rpc::FromGrpcStatus(stub->GetExperiment(&call.context, request, &response));
  if (absl::IsNotFound(status)) {
    PrintError(env, absl::StrCat("no experiment ", experiment_id, "; see labctl results list"));
    return kExitFailed;
  }
  if (!status.ok()) return ExplainCallFailure(status, global, env);

  const lab::v1::ExperimentListing& e = response.experiment();
  nlohmann::json summary = nlohmann::json::object();
  if (!response.summary_json().empty()) {
    summary = nlohmann::json::parse(response.summary_json(), nullptr, /*allow_exceptions=*/false);
    if (summary.is_discarded() || !summary.is_object()) {
      PrintError(env, absl::StrCat("the controller sent a summary of ", experiment_id,
                                   " that is not a JSON object"));
      return kExitFailed;
    }
  }
  std::vector<nlohmann::json> clients;
  if (summary.contains("clients") && summary["clients"].is_array()) {
    clients.assign(summary["clients"].begin(), summary["clients"].end());
  }
  if (global.json) {
    const std::string id = e.experiment_id().empty() ? experiment_id : e.experiment_id();
    const std::pair<const char*, nlohmann::json> listing[] = {{"experiment_id", id},
                                                              {"name", e.name()},
                                                              {"kind", e.kind()},
                                                              {"state", e.state()},
                                                              {"created_ns", e.created_ns()},
                                                              {"finished_ns", e.finished_ns()},
                                                              {"clients", nlohmann::json::array()}};
    for (const auto& [key, value] : listing) {
      if (!summary.contains(key)) summary[key] = value;
    }
    *env.out << summary.dump(2) << std::endl;
    return kExitOk;
  }
  *env.out << "experiment " << experiment_id << (e.name().empty() ? "" : " (" + e.name() + ")")
           << ": " << e.kind() << ", " << e.state() << ", created " << LocalTime(e.created_ns())
           << ", finished " << LocalTime(e.finished_ns()) << "\n\n";
  if (clients.empty()) {
    *env.out << "no summary yet (state: " << e.state() << ")" << std::endl;
  } else {
    *env.out << (IsTrafficRun(clients) ? FormatTrafficTable(clients)
                                       : timesync::FormatSummaryTable(clients))
             << std::flush;
  }
  return kExitOk;
}

int ExportResult(const ExportOptions& options, const GlobalOptions& global, Environment& env) {
  if (options.format != "csv" && options.format != "json") {
    PrintError(env, absl::StrCat("--format must be csv or json, got '", options.format, "'"));
    return kExitUsage;
  }
  int exit_code = kExitOk;
  std::shared_ptr<ControllerStub> stub = ConnectOrExplain(global, env, &exit_code);
  if (!stub) return exit_code;

  const bool to_file = !options.output_path.empty() && options.output_path != "-";
  const std::string partial = options.output_path + ".partial";
  std::ofstream file;
  if (to_file) {
    file.open(partial, std::ios::binary | std::ios::trunc);
    if (!file) {
      PrintError(env, absl::StrCat("cannot write '", partial, "': ", std::strerror(errno)));
      return kExitFailed;
    }
  }
  std::ostream& sink = to_file ? file : *env.out;

  Call call(global, env);
  lab::v1::ExportExperimentRequest request;
  request.set_experiment_id(options.experiment_id);
  request.set_format(options.format);
  auto reader = stub->ExportExperiment(&call.context, request);
  lab::v1::ExportChunk chunk;
  uint64_t bytes = 0;
  while (reader->Read(&chunk)) {
    sink.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    bytes += chunk.data().size();
  }
  const absl::Status status = rpc::FromGrpcStatus(reader->Finish());
  sink.flush();
  const auto discard = [&] {
    if (!to_file) return;
    file.close();
    std::remove(partial.c_str());
  };
  if (absl::IsNotFound(status) && !env.interrupt->cancelled()) {
    discard();
    PrintError(env,
               absl::StrCat("no experiment ", options.experiment_id, "; see labctl results list"));
    return kExitFailed;
  }
  if (!status.ok()) {
    discard();
    return ExplainCallFailure(status, global, env);
  }
  if (to_file) {
    file.close();
    if (!file || std::rename(partial.c_str(), options.output_path.c_str()) != 0) {
      PrintError(env,
                 absl::StrCat("cannot write '", options.output_path, "': ", std::strerror(errno)));
      std::remove(partial.c_str());
      return kExitFailed;
    }
    *env.err << "labctl: wrote " << bytes << " bytes (" << options.format << ") to "
             << options.output_path << "\n";
  } else if (!sink) {
    PrintError(env, "cannot write the export to stdout");
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace lab::labctl

#include "labctl/run_command.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "dataplane/timesync/report.h"
#include "dataplane/timesync/scheme.h"
#include "google/protobuf/util/json_util.h"
#include "labctl/progress.h"
#include "labctl/traffic_run.h"
#include "labnet/cli_util.h"
#include "nlohmann/json.hpp"
#include "rpc/status_conversion.h"

namespace lab::labctl {

namespace {

using lab::v1::RunExperimentRequest;
using lab::v1::TimeSyncExperiment;

constexpr int64_t kHourNs = 3'600'000'000'000;
constexpr int64_t kMaxCount = 1'000'000'000;
constexpr double kMaxDriftPpm = 100'000;

// The spec file: its message, and its JSON to tell a field set to 0 from one left out.
struct SpecFile {
  std::string path;
  lab::v1::ExperimentSpec spec;
  nlohmann::json timesync = nlohmann::json::object();  // the "timesync" object, if any

  // True when the file sets timesync.<field> (protobuf JSON accepts both spellings).
  bool Sets(const char* snake, const char* camel) const {
    return timesync.is_object() && (timesync.contains(snake) || timesync.contains(camel));
  }
  absl::Status Error(absl::string_view field, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("spec file '", path, "': ", field, " ", what));
  }
};

absl::StatusOr<SpecFile> ReadSpecFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read spec file '", path, "': ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  SpecFile file;
  file.path = path;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt field is an error, not a default
  const auto status = google::protobuf::util::JsonStringToMessage(text.str(), &file.spec, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec file '", path, "' is not an ExperimentSpec in protobuf JSON: ",
                     std::string(status.message().data(), status.message().size()),
                     "; e.g. {\"timesync\": {\"clients\": [{\"scheme\": \"SCHEME_KALMAN\"}], "
                     "\"count\": 500, \"intervalNs\": 5000000}}"));
  }
  const nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("timesync")) file.timesync = j["timesync"];
  return file;
}

timesync::SchemeParams ToSchemeParams(lab::v1::Scheme scheme, const lab::v1::SchemeParams& p) {
  timesync::SchemeParams s;
  s.scheme = static_cast<timesync::Scheme>(scheme);  // the enum values are the IDCODEs
  if (p.has_ewma_alpha()) s.ewma.alpha = p.ewma_alpha();
  if (p.has_kalman_measurement_noise_us()) {
    s.kalman.measurement_noise_us = p.kalman_measurement_noise_us();
  }
  if (p.has_kalman_drift_noise_ppb()) s.kalman.drift_noise_ppb = p.kalman_drift_noise_ppb();
  if (p.has_kalman_offset_noise_ns()) s.kalman.offset_noise_ns = p.kalman_offset_noise_ns();
  if (p.has_pid_kp()) s.pid.kp = p.pid_kp();
  if (p.has_pid_ki()) s.pid.ki = p.pid_ki();
  if (p.has_pid_kd()) s.pid.kd = p.pid_kd();
  return s;
}

// Sets the parameters of `scheme` that the flags give; with `with_defaults`, the others of
// that scheme to their defaults, so the stored spec says exactly what ran.
void ApplyParamFlags(const RunFlags& f, lab::v1::Scheme scheme, bool with_defaults,
                     lab::v1::SchemeParams* p) {
  const timesync::SchemeParams d;
  const auto set = [with_defaults](const std::optional<double>& flag, double fallback,
                                   auto setter) {
    if (flag) {
      setter(*flag);
    } else if (with_defaults) {
      setter(fallback);
    }
  };
  switch (scheme) {
    case lab::v1::SCHEME_EWMA:
      set(f.alpha, d.ewma.alpha, [p](double v) { p->set_ewma_alpha(v); });
      break;
    case lab::v1::SCHEME_KALMAN:
      set(f.kalman_r, d.kalman.measurement_noise_us,
          [p](double v) { p->set_kalman_measurement_noise_us(v); });
      set(f.kalman_q_drift, d.kalman.drift_noise_ppb,
          [p](double v) { p->set_kalman_drift_noise_ppb(v); });
      set(f.kalman_q_offset, d.kalman.offset_noise_ns,
          [p](double v) { p->set_kalman_offset_noise_ns(v); });
      break;
    case lab::v1::SCHEME_PID:
      set(f.kp, d.pid.kp, [p](double v) { p->set_pid_kp(v); });
      set(f.ki, d.pid.ki, [p](double v) { p->set_pid_ki(v); });
      set(f.kd, d.pid.kd, [p](double v) { p->set_pid_kd(v); });
      break;
    default:
      break;
  }
}

// Every scheme flag given is checked, even when no client of its scheme runs.
absl::Status ValidateParamFlags(const RunFlags& f) {
  for (timesync::Scheme scheme : timesync::kAllSchemes) {
    const auto proto_scheme = static_cast<lab::v1::Scheme>(scheme);
    lab::v1::SchemeParams p;
    ApplyParamFlags(f, proto_scheme, /*with_defaults=*/false, &p);
    if (p.ByteSizeLong() == 0) continue;  // no flag of this scheme
    LAB_RETURN_IF_ERROR(ToSchemeParams(proto_scheme, p).Validate());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<lab::v1::Scheme>> ParseClients(const std::string& text) {
  std::vector<lab::v1::Scheme> out;
  for (absl::string_view name : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    auto scheme = timesync::ParseScheme(absl::StripAsciiWhitespace(name));
    if (!scheme.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--clients: ", scheme.status().message()));
    }
    out.push_back(static_cast<lab::v1::Scheme>(*scheme));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        "no scheme given; e.g. --clients kalman or --clients raw,ewma,kalman,pid");
  }
  return out;
}

// The spec file's own values, checked before any flag overrides them.
absl::Status ValidateSpecFile(const SpecFile& file) {
  const TimeSyncExperiment& t = file.spec.timesync();
  if (file.Sets("count", "count") && (t.count() < 1 || t.count() > kMaxCount)) {
    return file.Error("timesync.count",
                      absl::StrCat("must be in [1, ", kMaxCount, "], got ", t.count()));
  }
  if (file.Sets("interval_ns", "intervalNs") &&
      (t.interval_ns() <= 0 || t.interval_ns() > kHourNs)) {
    return file.Error("timesync.interval_ns",
                      absl::StrCat("must be in (0, ", kHourNs, "] ns, got ", t.interval_ns()));
  }
  if (file.Sets("offset_ns", "offsetNs") &&
      (t.offset_ns() < -24 * kHourNs || t.offset_ns() > 24 * kHourNs)) {
    return file.Error("timesync.offset_ns", absl::StrCat("must be within +-", 24 * kHourNs,
                                                         " ns (24h), got ", t.offset_ns()));
  }
  if (file.Sets("drift_ppm", "driftPpm") &&
      !(t.drift_ppm() >= -kMaxDriftPpm && t.drift_ppm() <= kMaxDriftPpm)) {
    return file.Error("timesync.drift_ppm",
                      absl::StrCat("must be in [-100000, 100000], got ", t.drift_ppm()));
  }
  for (int i = 0; i < t.clients_size(); ++i) {
    if (t.clients(i).scheme() == lab::v1::SCHEME_UNSPECIFIED) {
      return file.Error(absl::StrCat("timesync.clients[", i, "]"),
                        "has no scheme; use SCHEME_RAW, SCHEME_EWMA, SCHEME_KALMAN or SCHEME_PID");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RunExperimentRequest> BuildRunRequest(const RunFlags& flags) {
  // Flags first: their messages name the flag, as labnet's do.
  std::optional<std::vector<lab::v1::Scheme>> schemes;
  if (flags.clients) {
    LAB_ASSIGN_OR_RETURN(schemes, ParseClients(*flags.clients));
  }
  if (flags.count && (*flags.count < 1 || *flags.count > kMaxCount)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--count must be in [1, ", kMaxCount, "], got ", *flags.count));
  }
  std::optional<int64_t> interval_ns, offset_ns;
  if (flags.interval) {
    LAB_ASSIGN_OR_RETURN(interval_ns,
                         cli::ParseDurationNs("interval", *flags.interval, 0, kHourNs, true));
  }
  if (flags.offset) {
    LAB_ASSIGN_OR_RETURN(
        offset_ns, cli::ParseDurationNs("offset", *flags.offset, -24 * kHourNs, 24 * kHourNs));
  }
  if (flags.drift_ppm) {
    LAB_RETURN_IF_ERROR(
        cli::CheckRange("drift-ppm", *flags.drift_ppm, -kMaxDriftPpm, kMaxDriftPpm));
  }
  LAB_RETURN_IF_ERROR(ValidateParamFlags(flags));
  if (flags.server_agent && flags.server_agent->empty()) {
    return absl::InvalidArgumentError("--server-agent needs an agent name (see labctl agents)");
  }

  RunExperimentRequest request;
  lab::v1::ExperimentSpec& spec = *request.mutable_spec();
  std::optional<SpecFile> file;
  if (!flags.spec_file.empty()) {
    LAB_ASSIGN_OR_RETURN(file, ReadSpecFile(flags.spec_file));
    LAB_RETURN_IF_ERROR(ValidateSpecFile(*file));
    spec = file->spec;
  }
  const auto from_file = [&file](const char* snake, const char* camel) {
    return file && file->Sets(snake, camel);
  };
  TimeSyncExperiment& t = *spec.mutable_timesync();
  if (flags.name) spec.set_name(*flags.name);
  if (flags.server_agent) t.set_server_agent(*flags.server_agent);

  if (flags.count) {
    t.set_count(static_cast<uint64_t>(*flags.count));
  } else if (!from_file("count", "count")) {
    t.set_count(kDefaultCount);
  }
  if (interval_ns) {
    t.set_interval_ns(*interval_ns);
  } else if (!from_file("interval_ns", "intervalNs")) {
    t.set_interval_ns(*cli::ParseDurationNs("interval", kDefaultInterval, 0, kHourNs, true));
  }
  if (offset_ns) {
    t.set_offset_ns(*offset_ns);
  } else if (!from_file("offset_ns", "offsetNs")) {
    t.set_offset_ns(*cli::ParseDurationNs("offset", kDefaultOffset, -kHourNs, kHourNs));
  }
  if (flags.drift_ppm) {
    t.set_drift_ppm(*flags.drift_ppm);
  } else if (!from_file("drift_ppm", "driftPpm")) {
    t.set_drift_ppm(kDefaultDriftPpm);
  }

  if (!schemes && t.clients_size() == 0) {
    schemes = *ParseClients(kDefaultClients);
  }
  if (schemes) {
    t.clear_clients();
    for (lab::v1::Scheme scheme : *schemes) {
      lab::v1::TimeSyncClientSpec* client = t.add_clients();
      client->set_scheme(scheme);
      ApplyParamFlags(flags, scheme, /*with_defaults=*/true, client->mutable_params());
    }
  } else {
    for (int i = 0; i < t.clients_size(); ++i) {
      lab::v1::TimeSyncClientSpec* client = t.mutable_clients(i);
      ApplyParamFlags(flags, client->scheme(), /*with_defaults=*/false, client->mutable_params());
      const absl::Status valid = ToSchemeParams(client->scheme(), client->params()).Validate();
      if (!valid.ok()) {
        return file->Error(absl::StrCat("timesync.clients[", i, "]"), valid.message());
      }
    }
  }
  return request;
}

absl::Duration RunDeadline(const lab::v1::ExperimentSpec& spec) {
  if (spec.has_tcp())
    return absl::Nanoseconds(spec.tcp().client().duration_ns()) + absl::Seconds(60);
  if (spec.has_udp()) {
    return absl::Nanoseconds(spec.udp().client().duration_ns()) +
           absl::Nanoseconds(spec.udp().client().timeout_ns()) + absl::Seconds(60);
  }
  const TimeSyncExperiment& experiment = spec.timesync();
  const absl::Duration run =
      absl::Nanoseconds(experiment.interval_ns()) * static_cast<int64_t>(experiment.count()) +
      absl::Seconds(60);
  return std::min(run, absl::Hours(24 * 365));
}

namespace {

// Prints the finished run's summary; returns the exit code from its state.
int ReportFinished(const lab::v1::ExperimentEvent& event, const GlobalOptions& global,
                   Environment& env) {
  const std::string& id = event.experiment_id();
  nlohmann::json summary;
  if (!event.summary_json().empty()) {
    summary = nlohmann::json::parse(event.summary_json(), nullptr, /*allow_exceptions=*/false);
    if (summary.is_discarded() || !summary.is_object()) {
      PrintError(env, absl::StrCat("the controller sent a summary that is not a JSON object (",
                                   "experiment ", id, ")"));
      return kExitFailed;
    }
  } else {
    summary = {{"experiment_id", id}, {"clients", nlohmann::json::array()}};
  }
  std::vector<nlohmann::json> clients;
  if (summary.contains("clients") && summary["clients"].is_array()) {
    clients.assign(summary["clients"].begin(), summary["clients"].end());
  }

  if (global.json) {
    *env.out << summary.dump(2) << std::endl;
  } else {
    if (!clients.empty()) {
      *env.out << (IsTrafficRun(clients) ? FormatTrafficTable(clients)
                                         : timesync::FormatSummaryTable(clients));
    }
    *env.out << "\nexperiment " << id << ": " << event.state() << ". Again: labctl results show "
             << id << "; samples: labctl results export " << id << " --format csv" << std::endl;
  }

  std::vector<std::string> incomplete;
  for (const nlohmann::json& c : clients) {
    const std::string state = c.value("state", "");
    if (state == "complete") continue;
    incomplete.push_back(absl::StrCat(c.value("scheme", "?"), " on ", c.value("agent", "?"), " ",
                                      state.empty() ? "unknown" : state));
  }
  for (const lab::v1::ClientProgress& c : event.clients()) {
    if (!c.detail().empty() &&
        (c.state() == lab::v1::TASK_STATE_FAILED || c.state() == lab::v1::TASK_STATE_LOST)) {
      PrintError(env, absl::StrCat(ClientLabel(c), " on ", c.agent(), ": ",
                                   TaskStateLabel(c.state()), ": ", c.detail()));
    }
  }
  if (event.state() == "completed") return kExitOk;
  if (event.state() == "partial") {
    PrintError(env, absl::StrCat(incomplete.size(), " of ", clients.size(),
                                 " clients did not complete: ", absl::StrJoin(incomplete, ", ")));
    return kExitPartial;
  }
  std::string why = summary.is_object() && summary.contains("error") && summary["error"].is_string()
                        ? absl::StrCat(": ", summary["error"].get<std::string>())
                        : std::string();
  PrintError(env, event.state() == "failed"
                      ? absl::StrCat("experiment ", id, " failed", why)
                      : absl::StrCat("experiment ", id, " ended in an unknown state '",
                                     event.state(), "'", why));
  return kExitFailed;
}

}  // namespace

int RunExperiment(const RunExperimentRequest& request, const GlobalOptions& global,
                  Environment& env) {
  int exit_code = kExitOk;
  std::shared_ptr<ControllerStub> stub = ConnectOrExplain(global, env, &exit_code);
  if (!stub) return exit_code;

  const absl::Duration deadline = RunDeadline(request.spec());
  grpc::ClientContext context;
  rpc::SetDeadline(context, deadline);
  Interrupt::Watch watch(*env.interrupt, &context);
  std::unique_ptr<grpc::ClientReaderInterface<lab::v1::ExperimentEvent>> reader =
      stub->RunExperiment(&context, request);

  ProgressDisplay progress(*env.err, env.interactive, *env.clock);
  lab::v1::ExperimentEvent event;
  std::optional<lab::v1::ExperimentEvent> finished;
  std::string experiment_id;
  bool dashboard_shown = false;
  while (reader->Read(&event)) {
    if (!event.experiment_id().empty()) experiment_id = event.experiment_id();
    if (!dashboard_shown && !event.dashboard_url().empty()) {
      *env.err << "dashboard: " << event.dashboard_url() << "\n";
      dashboard_shown = true;
    }
    if (!event.clients().empty()) progress.Update(event);
    if (event.finished() && !finished) finished = event;
  }
  const absl::Status status = rpc::FromGrpcStatus(reader->Finish());

  if (env.interrupt->cancelled()) {
    PrintError(env,
               experiment_id.empty()
                   ? std::string("interrupted before the experiment started")
                   : absl::StrCat("interrupted; the call was cancelled (experiment ", experiment_id,
                                  "; see labctl results show ", experiment_id, ")"));
    return kExitInterrupted;
  }
  if (finished) {
    if (finished->experiment_id().empty()) finished->set_experiment_id(experiment_id);
    return ReportFinished(*finished, global, env);
  }
  if (!status.ok()) {
    const CallError error = DescribeCallError(
        status, global.controller,
        absl::StrCat("the run's deadline (its length + 60s) = ", absl::FormatDuration(deadline)));
    PrintError(env, error.message);
    return error.exit_code;
  }
  PrintError(env, experiment_id.empty()
                      ? std::string("the controller ended the run without a result")
                      : absl::StrCat("the controller ended the run without a result; see "
                                     "labctl results show ",
                                     experiment_id));
  return kExitFailed;
}

}  // namespace lab::labctl

#include "labnet/timesync_commands.h"

#include <unistd.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "dataplane/timesync/client.h"
#include "dataplane/timesync/report.h"
#include "dataplane/timesync/server.h"
#include "labnet/cli_util.h"
#include "nlohmann/json.hpp"

namespace lab::cli {

namespace {

using timesync::ClientSummary;
using timesync::Scheme;
using timesync::SchemeParams;

// Scheme parameters as flags; shared by ts-server (defaults) and the clients.
struct SchemeFlags {
  timesync::EwmaParams ewma;
  timesync::KalmanParams kalman;
  timesync::PidParams pid;

  void Add(CLI::App* cmd) {
    cmd->add_option("--alpha", ewma.alpha, "EWMA smoothing factor, (0, 1]")
        ->capture_default_str()
        ->group("Scheme parameters");
    cmd->add_option("--kalman-r", kalman.measurement_noise_us,
                    "Kalman measurement noise, std dev in us (> 0)")
        ->capture_default_str()
        ->group("Scheme parameters");
    cmd->add_option("--kalman-q-drift", kalman.drift_noise_ppb,
                    "Kalman drift wander, ppb per sqrt(s) (>= 0)")
        ->capture_default_str()
        ->group("Scheme parameters");
    cmd->add_option("--kalman-q-offset", kalman.offset_noise_ns,
                    "Kalman offset noise, ns per sqrt(s) (>= 0)")
        ->capture_default_str()
        ->group("Scheme parameters");
    cmd->add_option("--kp", pid.kp, "PID proportional gain")
        ->capture_default_str()
        ->group("Scheme parameters");
    cmd->add_option("--ki", pid.ki, "PID integral gain (drift)")
        ->capture_default_str()
        ->group("Scheme parameters");
    cmd->add_option("--kd", pid.kd, "PID derivative gain")
        ->capture_default_str()
        ->group("Scheme parameters");
  }

  absl::StatusOr<SchemeParams> For(Scheme scheme) const {
    SchemeParams p{scheme, ewma, kalman, pid};
    if (absl::Status s = p.Validate(); !s.ok()) return s;
    return p;
  }
};

// Flags of everything that runs clients (ts-client, ts-demo).
struct ClientFlags {
  std::string modes = "kalman";
  int64_t count = 100;  // signed, so that "-5" is refused rather than wrapped
  std::string interval = "10ms";
  std::string offset = "0";
  double drift_ppm = 0;
  std::string timeout = "1s";
  bool json_feedback = false;
  std::string records;
  std::string output = "table";
  double converge_threshold_us = 10;
  SchemeFlags scheme;

  void Add(CLI::App* cmd, const char* modes_flag) {
    cmd->add_option(modes_flag, modes,
                    "scheme(s), comma-separated: raw, ewma, kalman, pid (one client each, run "
                    "in parallel)")
        ->capture_default_str();
    cmd->add_option("--count", count, "probes per client (> 0)")->capture_default_str();
    cmd->add_option("--interval", interval, "time between probes, e.g. 5ms")->capture_default_str();
    cmd->add_option("--offset", offset, "offset injected into each client's clock, e.g. 25ms")
        ->capture_default_str();
    cmd->add_option("--drift-ppm", drift_ppm, "drift injected into each client's clock, ppm")
        ->capture_default_str();
    cmd->add_option("--timeout", timeout, "how long to wait for replies after the last probe")
        ->capture_default_str();
    cmd->add_flag("--json-feedback", json_feedback,
                  "ask the server for the JSON reply form ({\"scheme\":…,\"correction_us\":…})");
    cmd->add_option("--records", records,
                    "write every exchange as CSV to this file (with several schemes: "
                    "FILE-<scheme>.csv)");
    cmd->add_option("--output", output, "table or json")
        ->capture_default_str()
        ->check(CLI::IsMember({"table", "json"}));
    cmd->add_option("--converge-threshold", converge_threshold_us,
                    "|error| in us below which a client counts as converged")
        ->capture_default_str();
    scheme.Add(cmd);
  }

  // Validated client options, one per requested scheme (server address not set).
  // `modes_flag` names the flag the schemes came from, for messages.
  absl::StatusOr<std::vector<timesync::TimeSyncClientOptions>> Build(
      absl::string_view modes_flag) const {
    constexpr int64_t kHour = 3'600'000'000'000;
    if (count <= 0 || count > 1'000'000'000) {
      return absl::InvalidArgumentError(
          absl::StrCat("--count must be in [1, 1000000000], got ", count));
    }
    LAB_ASSIGN_OR_RETURN(const int64_t interval_ns,
                         ParseDurationNs("interval", interval, 0, kHour, true));
    LAB_ASSIGN_OR_RETURN(const int64_t offset_ns,
                         ParseDurationNs("offset", offset, -24 * kHour, 24 * kHour));
    LAB_ASSIGN_OR_RETURN(const int64_t timeout_ns, ParseDurationNs("timeout", timeout, 0, kHour));
    LAB_RETURN_IF_ERROR(CheckRange("drift-ppm", drift_ppm, -100'000, 100'000));
    LAB_RETURN_IF_ERROR(CheckRange("converge-threshold", converge_threshold_us, 0, 1e9, true));
    std::vector<timesync::TimeSyncClientOptions> out;
    uint32_t client_id = 1;
    for (absl::string_view name : absl::StrSplit(modes, ',', absl::SkipWhitespace())) {
      auto scheme = timesync::ParseScheme(absl::StripAsciiWhitespace(name));
      if (!scheme.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(modes_flag, ": ", scheme.status().message()));
      }
      LAB_ASSIGN_OR_RETURN(const SchemeParams params, this->scheme.For(*scheme));
      timesync::TimeSyncClientOptions o;
      o.count = static_cast<uint64_t>(count);
      o.interval_ns = interval_ns;
      o.timeout_ns = timeout_ns;
      o.core.params = params;
      o.core.client_id = client_id++;
      o.core.json_feedback = json_feedback;
      o.core.offset_ns = offset_ns;
      o.core.drift_ppm = drift_ppm;
      out.push_back(o);
    }
    if (out.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "no scheme given; e.g. ", modes_flag, " kalman or ", modes_flag, " raw,ewma,kalman,pid"));
    }
    return out;
  }

  timesync::SummaryOptions Summary() const {
    return {.converge_threshold_ns = converge_threshold_us * 1e3};
  }
};

// Runs the clients in parallel threads until done or `cancel`; prints their summaries
// (what was answered before a cancel included). Exit code 0 when every client got replies
// and nothing failed, 130 when interrupted.
int RunClients(const ClientFlags& flags,
               const std::vector<timesync::TimeSyncClientOptions>& clients,
               const std::atomic<bool>& cancel) {
  auto logger = ComponentLogger("timesync");
  std::vector<absl::StatusOr<std::unique_ptr<timesync::ClientCore>>> results(clients.size());
  {
    std::vector<std::jthread> threads;
    for (std::size_t i = 0; i < clients.size(); ++i) {
      threads.emplace_back(
          [&, i] { results[i] = timesync::RunTimeSyncClient(clients[i], logger, &cancel); });
    }
  }
  std::vector<ClientSummary> summaries;
  int exit_code = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) {
      std::cerr << "labnet: client " << timesync::SchemeName(clients[i].core.params.scheme)
                << " failed: " << results[i].status().message() << "\n";
      exit_code = 1;
      continue;
    }
    const timesync::ClientCore& core = **results[i];
    summaries.push_back(timesync::Summarize(core, flags.Summary()));
    if (core.counters().received == 0) {
      std::cerr << "labnet: no reply from " << clients[i].server.ToString()
                << "; is `labnet ts-server` running there?\n";
      exit_code = 1;
    }
    if (core.counters().invalid_params > 0) {
      std::cerr << "labnet: the server refused the "
                << timesync::SchemeName(core.options().params.scheme) << " parameters\n";
      exit_code = 1;
    }
    if (!flags.records.empty()) {
      std::string path = flags.records;
      if (clients.size() > 1) {
        const auto dot = path.rfind('.');
        const std::string suffix =
            absl::StrCat("-", timesync::SchemeName(core.options().params.scheme));
        path = dot == std::string::npos || path.find('/', dot) != std::string::npos
                   ? path + suffix
                   : path.substr(0, dot) + suffix + path.substr(dot);
      }
      if (absl::Status s = WriteFile(path, timesync::RecordsToCsv(core)); !s.ok()) {
        std::cerr << "labnet: " << s.message() << "\n";
        exit_code = 1;
      }
    }
  }
  std::vector<nlohmann::json> objects;
  for (const ClientSummary& s : summaries) objects.push_back(timesync::SummaryToJson(s));
  if (flags.output == "json") {
    if (objects.size() == 1 && clients.size() == 1) {
      std::cout << objects[0].dump(2) << std::endl;
    } else {
      std::cout << nlohmann::json{{"clients", objects}}.dump(2) << std::endl;
    }
  } else if (!objects.empty()) {
    std::cout << timesync::FormatSummaryTable(objects);
  }
  if (cancel.load()) {
    std::cerr << "labnet: interrupted; the summary covers the probes sent so far\n";
    return 130;
  }
  return exit_code;
}

nlohmann::json CountersToJson(const timesync::ServerCounters& c, std::size_t clients) {
  nlohmann::json dropped = nlohmann::json::object();
  for (std::size_t i = 1; i < timesync::kNumWireErrors; ++i) {
    const auto reason = static_cast<timesync::WireError>(i);
    if (reason == timesync::WireError::kBadJson) continue;  // only clients see JSON
    dropped[std::string(timesync::WireErrorName(reason))] = c.dropped_by_reason[i];
  }
  return {{"received", c.received},
          {"replied", c.replied},
          {"json_replies", c.json_replies},
          {"dropped", c.dropped},
          {"dropped_by_reason", dropped},
          {"invalid_params", c.invalid_params},
          {"samples_used", c.samples_used},
          {"samples_outliers", c.samples_outliers},
          {"samples_unmatched", c.samples_unmatched},
          {"samples_rejected", c.samples_rejected},
          {"kernel_timestamps", c.kernel_timestamps},
          {"user_timestamps", c.user_timestamps},
          {"clients_active", clients},
          {"clients_created", c.clients_created},
          {"clients_evicted_idle", c.clients_evicted_idle},
          {"clients_evicted_full", c.clients_evicted_full}};
}

struct ServerFlags {
  std::string bind = "127.0.0.1";
  uint16_t port = 12345;
  bool insecure = false;
  std::size_t batch = 64;
  std::size_t max_clients = 4096;
  std::string idle_timeout = "60s";
  bool no_kernel_timestamps = false;
  std::string output = "text";
  SchemeFlags scheme;

  absl::StatusOr<timesync::TimeServerOptions> Build() const {
    timesync::TimeServerOptions o;
    o.bind_address = bind;
    o.port = port;
    o.allow_non_loopback = insecure;
    o.kernel_timestamps = !no_kernel_timestamps;
    LAB_RETURN_IF_ERROR(CheckRange("batch", static_cast<double>(batch), 1, 1024));
    LAB_RETURN_IF_ERROR(CheckRange("max-clients", static_cast<double>(max_clients), 1, 1e7));
    o.batch_size = batch;
    o.core.max_clients = max_clients;
    LAB_ASSIGN_OR_RETURN(
        o.core.idle_timeout_ns,
        ParseDurationNs("idle-timeout", idle_timeout, 0, int64_t{24} * 3'600'000'000'000, true));
    for (Scheme s : timesync::kAllSchemes) LAB_RETURN_IF_ERROR(scheme.For(s).status());
    o.core.ewma = scheme.ewma;
    o.core.kalman = scheme.kalman;
    o.core.pid = scheme.pid;
    return o;
  }
};

// Creates a time server, or explains on stderr why not and gives the exit code (2 for a
// bad request such as a non-loopback address without --insecure, 1 otherwise).
absl::StatusOr<std::unique_ptr<timesync::TimeServer>> StartTimeServer(
    const timesync::TimeServerOptions& options, int* exit_code) {
  auto server = timesync::TimeServer::Create(options, ComponentLogger("timesync"));
  if (!server.ok()) {
    std::cerr << "labnet: cannot start the time server: " << server.status().message() << "\n";
    *exit_code = absl::IsInvalidArgument(server.status()) ? 2 : 1;
  }
  return server;
}

int RunServer(const ServerFlags& flags) {
  auto options = flags.Build();
  if (!options.ok()) return UsageError(options.status());
  int exit_code = 0;
  auto server = StartTimeServer(*options, &exit_code);
  if (!server.ok()) return exit_code;
  SignalWatcher signals([&] { (*server)->Stop(); });
  const net::SocketAddress& local = (*server)->local_address();
  const char* ts = net::TimestampSourceName((*server)->timestamp_source());
  if (flags.output == "json") {
    std::cout << nlohmann::json{{"event", "listening"},
                                {"address", local.HostString()},
                                {"port", local.port()},
                                {"timestamping", ts}}
                     .dump()
              << std::endl;
  } else {
    std::cout << "time server listening on udp " << local.ToString() << " (" << ts
              << " receive timestamps); Ctrl-C to stop" << std::endl;
  }
  const absl::Status status = (*server)->Run();
  if (flags.output == "json") {
    std::cout << nlohmann::json{{"event", "stopped"},
                                {"counters", CountersToJson((*server)->counters(),
                                                            (*server)->active_clients())}}
                     .dump()
              << std::endl;
  }
  if (!status.ok()) {
    std::cerr << "labnet: time server failed: " << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

void AddTimeSyncCommands(CLI::App& app, std::function<int()>* run) {
  // ts-server
  auto server_flags = std::make_shared<ServerFlags>();
  CLI::App* server = app.add_subcommand(
      "ts-server", "Run a time server: answers each probe with its scheme's clock correction");
  server->add_option("--port", server_flags->port, "UDP port (0 picks a free one)")
      ->capture_default_str();
  server->add_option("--bind", server_flags->bind, "address to listen on")->capture_default_str();
  server->add_flag("--insecure", server_flags->insecure,
                   "allow listening beyond loopback (no authentication)");
  server->add_option("--batch", server_flags->batch, "datagrams per recvmmsg/sendmmsg")
      ->capture_default_str();
  server
      ->add_option("--max-clients", server_flags->max_clients,
                   "clients with state at once (least recently heard evicted beyond)")
      ->capture_default_str();
  server
      ->add_option("--idle-timeout", server_flags->idle_timeout,
                   "forget a client not heard from for this long")
      ->capture_default_str();
  server->add_flag("--no-kernel-timestamps", server_flags->no_kernel_timestamps,
                   "stamp arrivals in user space instead of asking the kernel");
  server
      ->add_option("--output", server_flags->output,
                   "text, or json: a 'listening' line at start, counters at exit")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  server_flags->scheme.Add(server);
  server->callback(
      [run, server_flags] { *run = [server_flags] { return RunServer(*server_flags); }; });

  // ts-client
  auto client_flags = std::make_shared<ClientFlags>();
  auto server_address = std::make_shared<std::string>("127.0.0.1:12345");
  CLI::App* client = app.add_subcommand(
      "ts-client", "Run time-sync clients against a time server and summarise each scheme");
  client->add_option("--server", *server_address, "time server HOST:PORT")->capture_default_str();
  client_flags->Add(client, "--mode");
  client->callback([run, client_flags, server_address] {
    *run = [client_flags, server_address] {
      auto clients = client_flags->Build("--mode");
      if (!clients.ok()) return UsageError(clients.status());
      auto address = net::SocketAddress::ParseHostPort(*server_address);
      if (!address.ok()) return UsageError(address.status());
      for (auto& c : *clients) c.server = *address;
      std::atomic<bool> cancel{false};
      SignalWatcher signals([&] { cancel = true; });  // before any thread starts
      return RunClients(*client_flags, *clients, cancel);
    };
  });

  // ts-demo
  auto demo_flags = std::make_shared<ClientFlags>();
  demo_flags->modes = "raw,ewma,kalman,pid";
  demo_flags->count = 500;
  demo_flags->interval = "5ms";
  demo_flags->offset = "25ms";
  demo_flags->drift_ppm = 80;
  CLI::App* demo = app.add_subcommand(
      "ts-demo",
      "Local time-sync demo: a server on an ephemeral loopback port and one client per scheme");
  demo_flags->Add(demo, "--clients");
  demo->callback([run, demo_flags] {
    *run = [demo_flags] {
      auto clients = demo_flags->Build("--clients");
      if (!clients.ok()) return UsageError(clients.status());
      timesync::TimeServerOptions options;
      options.port = 0;
      int exit_code = 0;
      auto server = StartTimeServer(options, &exit_code);
      if (!server.ok()) return exit_code;
      std::atomic<bool> cancel{false};
      SignalWatcher signals([&] { cancel = true; });  // before the server thread starts
      std::jthread serving([&] {
        if (absl::Status s = (*server)->Run(); !s.ok()) {
          ComponentLogger("timesync")->error("time server failed: {}", s.ToString());
        }
      });
      for (auto& c : *clients) c.server = (*server)->local_address();
      const int code = RunClients(*demo_flags, *clients, cancel);
      (*server)->Stop();
      return code;
    };
  });
}

}  // namespace lab::cli

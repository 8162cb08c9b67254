#include "labctl/labctl.h"

#include <functional>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "labctl/local_lab.h"
#include "labctl/query_commands.h"
#include "labctl/run_command.h"
#include "labctl/traffic_run.h"
#include "labnet/cli_util.h"

namespace lab::labctl {

namespace {

constexpr char kExitCodes[] =
    "Exit codes: 0 done; 1 failed (or the controller is unreachable); 2 bad usage (nothing was\n"
    "started); 3 the run finished but some clients were lost or failed; 130 interrupted.";

constexpr char kMainFooter[] = R"(Start here (one machine, no Docker):
  labctl lab up                               # a controller and 4 agents on 127.0.0.x
  labctl run --clients raw,ewma,kalman,pid    # one time-sync client per scheme, then a table
  labctl results list                         # past runs; labctl results show ID
  labctl lab down                             # stop the local lab

Global options go before or after the command: labctl run --output json ...
--controller defaults to the local lab's (.lab/lab.json) when one is up, else 127.0.0.1:50051.
Every command has --help.
)";

constexpr char kRunFooter[] = R"(Examples:
  labctl run --clients raw,ewma,kalman,pid
  labctl run --clients kalman,pid --count 2000 --interval 2ms --kalman-r 1 --kp 0.2
  labctl run -f spec.json --count 100           # the spec file, --count overriding it
  labctl run --clients pid --output json | jq '.clients[0].error_us.rms'

The spec file (-f) is an ExperimentSpec (proto/lab/v1/controller.proto) in protobuf JSON;
flags given on the command line override it:
  {"name": "kalman vs pid",
   "timesync": {"clients": [{"scheme": "SCHEME_KALMAN", "params": {"kalmanMeasurementNoiseUs": 1}},
                            {"scheme": "SCHEME_PID", "agent": "agent-2"}],
                "count": 500, "intervalNs": 5000000, "offsetNs": 25000000, "driftPpm": 80}}

Progress goes to stderr (bars on a terminal, plain lines otherwise); stdout gets the table,
or with --output json {"experiment_id": ..., "clients": [...]}: each client the fields of
`labnet ts-client --output json` plus "agent" and "state" (complete, lost or failed).
Ctrl-C cancels the run.
)";

// Binds `--name` to `target`, set only when the flag is given.
template <typename T>
CLI::Option* AddOptional(CLI::App* cmd, const std::string& name, std::optional<T>* target,
                         const std::string& help) {
  return cmd->add_option_function<T>(
      name, [target](const T& value) { *target = value; }, help);
}

struct GlobalFlags {
  std::string controller = kDefaultController;
  bool insecure = false;
  std::string timeout = "10s";
  std::string log_level = "warn";
  std::string output = "table";
  CLI::Option* controller_option = nullptr;
};

void AddGlobalFlags(CLI::App& app, GlobalFlags* g) {
  g->controller_option =
      app.add_option("--controller", g->controller,
                     "the controller's HOST:PORT (default: the local lab's, else "
                     "127.0.0.1:50051)");
  app.add_flag("--insecure", g->insecure,
               "allow a plaintext connection to a non-loopback controller (no TLS yet)");
  app.add_option("--timeout", g->timeout,
                 "deadline of each call to the controller (not of a run), e.g. 10s")
      ->capture_default_str();
  app.add_option("--log-level", g->log_level, "trace, debug, info, warn, error, off (to stderr)")
      ->capture_default_str();
  app.add_option("--output", g->output, "table or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"table", "json"}));
}

// Turns the flags into GlobalOptions; InvalidArgument for a bad --timeout or --log-level.
absl::StatusOr<GlobalOptions> ResolveGlobal(const GlobalFlags& g, Environment& env) {
  GlobalOptions out;
  out.insecure = g.insecure;
  out.json = g.output == "json";
  auto timeout_ns =
      cli::ParseDurationNs("timeout", g.timeout, 0, int64_t{24} * 3'600'000'000'000, true);
  if (!timeout_ns.ok()) return timeout_ns.status();
  out.timeout = absl::Nanoseconds(*timeout_ns);
  auto level = ParseLogLevel(g.log_level);
  if (!level.ok()) return level.status();
  if (env.init_logging) {
    LogOptions log;
    log.dir = "";  // a CLI leaves no log files behind; stderr only
    log.level = *level;
    (void)InitLogging("labctl", log);
  }
  out.controller = g.controller;
  if (g.controller_option->count() == 0) {
    // The local lab's controller when one was started from here.
    if (auto lab = LoadLabState(LabStatePath(".lab")); lab.ok()) {
      out.controller = lab->controller_address;
      ComponentLogger("labctl")->debug("controller {} from .lab/lab.json", out.controller);
    }
  }
  return out;
}

// Usage error: message, exit 2.
int Usage(Environment& env, const absl::Status& status) {
  PrintError(env, status.message());
  return kExitUsage;
}

}  // namespace

int RunLabctl(int argc, const char* const* argv, Environment& env) {
  Interrupt never_interrupted;
  if (env.interrupt == nullptr) env.interrupt = &never_interrupted;

  CLI::App app{"labctl: run experiments on the network lab's controller and look at their results"};
  app.name("labctl");
  app.require_subcommand(1);
  app.fallthrough();
  app.footer(absl::StrCat(kMainFooter, "\n", kExitCodes));
  GlobalFlags global_flags;
  AddGlobalFlags(app, &global_flags);
  // The command chosen: run with the resolved global options.
  std::function<int(const GlobalOptions&)> command;

  // run
  RunFlags run_flags;
  CLI::App* run = app.add_subcommand(
      "run", "Run the time-sync experiment: one client per scheme, live progress, a summary");
  run->footer(absl::StrCat(kRunFooter, "\n", kExitCodes));
  AddOptional(run, "--clients", &run_flags.clients,
              "schemes, comma-separated, one client each: raw, ewma, kalman, pid (default "
              "raw,ewma,kalman,pid)");
  AddOptional(run, "--count", &run_flags.count, "probes per client (default 500)");
  AddOptional(run, "--interval", &run_flags.interval, "time between probes (default 5ms)");
  AddOptional(run, "--offset", &run_flags.offset,
              "offset injected into each client's clock (default 25ms)");
  AddOptional(run, "--drift-ppm", &run_flags.drift_ppm,
              "drift injected into each client's clock, ppm (default 80)");
  AddOptional(run, "--server-agent", &run_flags.server_agent,
              "agent to run the time server on (default: the controller chooses)");
  AddOptional(run, "--name", &run_flags.name, "a name to find the run by later");
  run->add_option("-f,--spec", run_flags.spec_file,
                  "an ExperimentSpec in protobuf JSON (flags given override it)");
  const std::string params = "Scheme parameters (labnet's flags and defaults)";
  AddOptional(run, "--alpha", &run_flags.alpha, "EWMA smoothing factor, (0, 1] (0.1)")
      ->group(params);
  AddOptional(run, "--kalman-r", &run_flags.kalman_r,
              "Kalman measurement noise, std dev in us, > 0 (2)")
      ->group(params);
  AddOptional(run, "--kalman-q-drift", &run_flags.kalman_q_drift,
              "Kalman drift wander, ppb per sqrt(s), >= 0 (10)")
      ->group(params);
  AddOptional(run, "--kalman-q-offset", &run_flags.kalman_q_offset,
              "Kalman offset noise, ns per sqrt(s), >= 0 (10)")
      ->group(params);
  AddOptional(run, "--kp", &run_flags.kp, "PID proportional gain (0.3)")->group(params);
  AddOptional(run, "--ki", &run_flags.ki, "PID integral gain, on drift (0.05)")->group(params);
  AddOptional(run, "--kd", &run_flags.kd, "PID derivative gain (0)")->group(params);
  run->callback([&] {
    if (command) return;  // `run tcp` / `run udp` chose already
    command = [&](const GlobalOptions& global) {
      auto request = BuildRunRequest(run_flags);
      if (!request.ok()) return Usage(env, request.status());
      return RunExperiment(*request, global, env);
    };
  });

  // run tcp / run udp: traffic experiments.
  run->require_subcommand(0, 1);
  // `run`'s own flags are the time-sync experiment's: refused beside `run tcp` / `run udp`.
  const auto run_flags_given = [run]() -> std::string {
    for (const CLI::Option* o : run->get_options()) {
      if (o->count() > 0 && o->get_name() != "--help") return o->get_name();
    }
    return "";
  };
  TcpRunFlags tcp_flags;
  UdpRunFlags udp_flags;
  const auto add_common = [](CLI::App* cmd, TrafficFlags* f) {
    AddOptional(cmd, "--clients", &f->clients,
                "client tasks (default: one on each agent but the server's)");
    cmd->add_option("--duration,-t", f->duration, "how long the clients run")
        ->capture_default_str();
    cmd->add_option("--interval,-i", f->interval, "a sample per client every this long")
        ->capture_default_str();
    AddOptional(cmd, "--length,-l", &f->length,
                "bytes per request / write / datagram (K, M suffixes)");
    AddOptional(cmd, "--server-agent", &f->server_agent,
                "agent to run the server on (default: the controller chooses)");
    AddOptional(cmd, "--name", &f->name, "a name to find the run by later");
  };
  CLI::App* tcp = run->add_subcommand(
      "tcp", "TCP traffic: a labnet tcp-server on one agent, tcp-clients on the others");
  tcp->footer(
      "Examples:\n  labctl run tcp --mode rr --connections 100 --threads 2 --duration 10s\n"
      "  labctl run tcp --mode bulk --duration 5s            # throughput to a sink\n"
      "  labctl run tcp --mode bulk --reverse                # throughput from a source\n");
  add_common(tcp, &tcp_flags.common);
  tcp->add_option("--mode", tcp_flags.mode, "rr (request/response) or bulk")->capture_default_str();
  tcp->add_flag("--reverse,-R", tcp_flags.reverse, "bulk: the server sends");
  tcp->add_option("--connections,-P", tcp_flags.connections, "connections per client")
      ->capture_default_str();
  tcp->add_option("--threads", tcp_flags.threads, "threads per client")->capture_default_str();
  tcp->add_option("--engine", tcp_flags.engine, "server engine: epoll or threads")
      ->capture_default_str();
  tcp->add_option("--server-threads", tcp_flags.server_threads,
                  "server event loops or workers (0: the engine's default)");
  tcp->add_option("--max-connections", tcp_flags.max_connections, "the server's cap")
      ->capture_default_str();
  tcp->callback([&] {
    const std::string misplaced = run_flags_given();
    command = [&, misplaced](const GlobalOptions& global) {
      if (!misplaced.empty()) {
        return Usage(env, absl::InvalidArgumentError(absl::StrCat(
                              misplaced,
                              " belongs to the time-sync run; give `run tcp` its own flags after "
                              "`tcp` (labctl run tcp --help)")));
      }
      auto request = BuildTcpRunRequest(tcp_flags);
      if (!request.ok()) return Usage(env, request.status());
      return RunExperiment(*request, global, env);
    };
  });
  CLI::App* udp = run->add_subcommand(
      "udp", "UDP traffic: a labnet udp-server on one agent, udp-clients on the others");
  udp->footer(
      "Examples:\n  labctl run udp --duration 5s                 # stop-and-wait round trips\n"
      "  labctl run udp --rate 50k --length 64          # paced, loss/jitter/latency\n"
      "  labctl run udp --rate 0 --one-way              # as fast as possible to a sink\n");
  add_common(udp, &udp_flags.common);
  AddOptional(udp, "--rate", &udp_flags.rate,
              "datagrams/s per client (k, M suffixes; 0: as fast as possible; default: one "
              "at a time, each waiting for its echo)");
  udp->add_flag("--one-way", udp_flags.one_way, "the server is a sink (needs --rate)");
  udp->add_option("--timeout", udp_flags.timeout, "wait for echoes after the last send")
      ->capture_default_str();
  udp->callback([&] {
    const std::string misplaced = run_flags_given();
    command = [&, misplaced](const GlobalOptions& global) {
      if (!misplaced.empty()) {
        return Usage(env, absl::InvalidArgumentError(absl::StrCat(
                              misplaced,
                              " belongs to the time-sync run; give `run udp` its own flags after "
                              "`udp` (labctl run udp --help)")));
      }
      auto request = BuildUdpRunRequest(udp_flags);
      if (!request.ok()) return Usage(env, request.status());
      return RunExperiment(*request, global, env);
    };
  });

  // agents
  CLI::App* agents = app.add_subcommand("agents", "List the agents the controller knows");
  agents->footer("Examples:\n  labctl agents\n  labctl agents --output json\n");
  agents->callback(
      [&] { command = [&](const GlobalOptions& global) { return ListAgents(global, env); }; });

  // results
  CLI::App* results = app.add_subcommand("results", "List, show and export past experiments");
  results->require_subcommand(1);
  results->footer(
      "Examples:\n  labctl results list --limit 10\n  labctl results show ID\n"
      "  labctl results export ID --format csv -o samples.csv\n");
  int limit = 50;
  CLI::App* list = results->add_subcommand("list", "The newest experiments first");
  list->add_option("--limit", limit, "how many, [1, 10000]")->capture_default_str();
  list->callback([&] {
    command = [&](const GlobalOptions& global) { return ListResults(limit, global, env); };
  });
  std::string show_id;
  CLI::App* show = results->add_subcommand("show", "One experiment's summary table (or JSON)");
  show->add_option("ID", show_id, "experiment id (see labctl results list)")->required();
  show->callback([&] {
    command = [&](const GlobalOptions& global) { return ShowResult(show_id, global, env); };
  });
  ExportOptions export_options;
  CLI::App* exp = results->add_subcommand(
      "export", "One experiment's data (every sample) as CSV or JSON, to stdout or a file");
  exp->add_option("ID", export_options.experiment_id, "experiment id")->required();
  exp->add_option("--format", export_options.format, "csv or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"csv", "json"}));
  exp->add_option("-o,--output-file", export_options.output_path,
                  "write to FILE instead of stdout (created only when the export succeeds)");
  exp->callback([&] {
    command = [&](const GlobalOptions& global) {
      return ExportResult(export_options, global, env);
    };
  });

  // lab
  CLI::App* lab_cmd = app.add_subcommand(
      "lab", "A local lab: the controller and agents as background processes on this host");
  lab_cmd->require_subcommand(1);
  lab_cmd->footer(
      "Examples:\n  labctl lab up                 # controller on 127.0.0.1:50051, agent-1..4 on "
      "127.0.0.2..5\n  labctl lab up --agents 8 --port 50151\n  labctl lab status\n"
      "  labctl lab down\n\nThe binaries are found through $LAB_CONTROLLER_BIN / $LAB_AGENT_BIN, "
      "then next to\nlabctl in the build tree (build/controller, build/agent), then $PATH.\n");
  LabUpOptions up_options;
  CLI::App* up = lab_cmd->add_subcommand(
      "up", "Start the controller and N agents; waits until every agent is alive (15s)");
  up->add_option("--agents", up_options.agents, "agents to start, [1, 250]")->capture_default_str();
  up->add_option("--port", up_options.port, "the controller's gRPC port on 127.0.0.1")
      ->capture_default_str();
  up->add_option("--http-port", up_options.http_port,
                 "its dashboard and HTTP API port on 127.0.0.1 (0: none)")
      ->capture_default_str();
  up->add_option("--state-dir", up_options.state_dir, "lab.json and results.db go here")
      ->capture_default_str();
  up->add_option("--log-dir", up_options.log_dir, "each process's log and <name>.out go here")
      ->capture_default_str();
  up->callback([&] {
    command = [&](const GlobalOptions& global) { return LabUp(up_options, global, env); };
  });
  std::string state_dir = ".lab";
  CLI::App* status = lab_cmd->add_subcommand(
      "status", "Which of the lab's processes run, and the agents the controller sees");
  status->add_option("--state-dir", state_dir, "where lab up put lab.json")->capture_default_str();
  status->callback([&] {
    command = [&](const GlobalOptions& global) { return LabStatus(state_dir, global, env); };
  });
  CLI::App* down = lab_cmd->add_subcommand(
      "down", "Stop the lab's processes (SIGTERM, SIGKILL after 5s) and forget them");
  down->add_option("--state-dir", state_dir, "where lab up put lab.json")->capture_default_str();
  down->callback([&] {
    command = [&](const GlobalOptions& global) {
      return LabDown(state_dir, absl::Seconds(5), global, env);
    };
  });

  if (argc <= 1) {
    *env.err << app.help();
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and succeeds; every other parse error is bad usage.
    const int code = app.exit(e, *env.out, *env.err);
    return code == 0 ? kExitOk : kExitUsage;
  }
  auto global = ResolveGlobal(global_flags, env);
  if (!global.ok()) return Usage(env, global.status());
  if (!command) return kExitUsage;
  const int code = command(*global);
  env.out->flush();
  return code;
}

}  // namespace lab::labctl

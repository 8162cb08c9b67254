#include "labctl/local_lab.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "labctl/query_commands.h"
#include "labctl/table.h"
#include "rpc/status_conversion.h"

namespace lab::labctl {

namespace fs = std::filesystem;

namespace {

constexpr int kStateVersion = 1;
constexpr absl::Duration kPollEvery = absl::Milliseconds(200);
constexpr absl::Duration kCallDeadline = absl::Seconds(1);

nlohmann::json ProcessToJson(const LabProcess& p) {
  return {{"name", p.name},       {"binary", p.binary},
          {"pid", p.process.pid}, {"start_time", p.process.start_time},
          {"address", p.address}, {"output", p.output}};
}

absl::StatusOr<LabProcess> ProcessFromJson(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, " is not an object"));
  LabProcess p;
  try {
    p.name = j.at("name").get<std::string>();
    p.binary = j.value("binary", "");
    p.process.pid = j.at("pid").get<pid_t>();
    p.process.start_time = j.value("start_time", uint64_t{0});
    p.address = j.value("address", "");
    p.output = j.value("output", "");
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", e.what()));
  }
  if (p.process.pid <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": pid must be > 0"));
  }
  return p;
}

// The last `lines` lines of `path`, each indented, for an error message.
std::string Tail(const std::string& path, std::size_t lines = 12) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::StrCat("  (cannot read ", path, ")");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff start = std::max<std::streamoff>(0, size - 4096);
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> all = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (start > 0 && !all.empty()) all.erase(all.begin());  // a partial first line
  if (all.empty()) return "  (no output)";
  const std::size_t from = all.size() > lines ? all.size() - lines : 0;
  std::string out;
  for (std::size_t i = from; i < all.size(); ++i) absl::StrAppend(&out, "  | ", all[i], "\n");
  if (!out.empty()) out.pop_back();
  return out;
}

std::vector<const LabProcess*> AllProcesses(const LabState& state) {
  std::vector<const LabProcess*> out = {&state.controller};
  for (const LabProcess& a : state.agents) out.push_back(&a);
  return out;
}

std::string Describe(const LabState& state) {
  std::size_t agents_running = 0;
  for (const LabProcess& a : state.agents) agents_running += IsRunning(a.process) ? 1 : 0;
  return absl::StrCat("controller ", state.controller_address, " (pid ",
                      state.controller.process.pid,
                      IsRunning(state.controller.process) ? "" : ", not running", "), ",
                      agents_running, " of ", state.agents.size(), " agents running");
}

// Stops `processes` (in parallel) and reports each on env.err or into `report`.
void StopAll(const std::vector<const LabProcess*>& processes, absl::Duration grace,
             std::vector<std::pair<const LabProcess*, StopOutcome>>* report) {
  std::vector<ProcessId> ids;
  for (const LabProcess* p : processes) ids.push_back(p->process);
  const std::vector<StopOutcome> outcomes = StopProcesses(ids, grace);
  for (std::size_t i = 0; i < processes.size(); ++i) report->push_back({processes[i], outcomes[i]});
}

const char* OutcomeName(StopOutcome o) {
  switch (o) {
    case StopOutcome::kNotRunning:
      return "not running";
    case StopOutcome::kTerminated:
      return "stopped";
    case StopOutcome::kKilled:
      return "killed";
    case StopOutcome::kFailed:
      return "failed";
  }
  return "?";
}

// Stops everything in `state`: agents first, then the controller.
std::vector<std::pair<const LabProcess*, StopOutcome>> StopLab(const LabState& state,
                                                               absl::Duration grace) {
  std::vector<std::pair<const LabProcess*, StopOutcome>> report;
  std::vector<const LabProcess*> agents;
  for (const LabProcess& a : state.agents) agents.push_back(&a);
  StopAll(agents, grace, &report);
  StopAll({&state.controller}, grace, &report);
  return report;
}

// Outcome of waiting for the lab to become ready.
struct WaitResult {
  enum Kind { kReady, kExited, kTimedOut, kInterrupted } kind = kReady;
  const LabProcess* culprit = nullptr;  // whose output explains the failure
  std::string detail;
};

// Answers "ready yet?"; when not, says why and whose output would explain it.
using ReadyCheck =
    std::function<bool(absl::Time deadline, std::string* because, const LabProcess** culprit)>;

WaitResult WaitUntilReady(const std::vector<const LabProcess*>& watched, absl::Time deadline,
                          const ReadyCheck& ready, Environment& env) {
  std::vector<ProcessId> ids;
  for (const LabProcess* p : watched) ids.push_back(p->process);
  while (true) {
    if (env.interrupt->cancelled()) return {WaitResult::kInterrupted, nullptr, "interrupted"};
    for (const LabProcess* p : watched) {
      if (!IsRunning(p->process)) {
        return {WaitResult::kExited, p, ReapIfExited(p->process.pid).value_or("exited")};
      }
    }
    WaitResult not_ready{WaitResult::kTimedOut, nullptr, ""};
    if (ready(deadline, &not_ready.detail, &not_ready.culprit)) return {};
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return not_ready;
    // Wakes early when a process exits: no fixed sleep.
    WaitForAnyExit(ids, std::min(left, kPollEvery));
  }
}

// One ListAgents to the lab's controller, within min(kCallDeadline, what is left).
absl::Status ListLabAgents(ControllerStub& stub, absl::Time deadline, Environment& env,
                           lab::v1::ListAgentsResponse* response) {
  grpc::ClientContext context;
  rpc::SetDeadline(context,
                   std::clamp(deadline - absl::Now(), absl::Milliseconds(50), kCallDeadline));
  Interrupt::Watch watch(*env.interrupt, &context);
  return rpc::FromGrpcStatus(stub.ListAgents(&context, lab::v1::ListAgentsRequest(), response));
}

// OK when nothing listens on 127.0.0.1:`port`. The trial bind sets SO_REUSEADDR (leftover
// TIME_WAIT connections do not matter) but not SO_REUSEPORT, so it also fails against a
// gRPC server, which sets SO_REUSEPORT and would otherwise silently share the port with ours.
absl::Status CheckPortFree(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "cannot create a socket to check the port");
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int rc = bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  const int err = errno;
  close(fd);
  if (rc == 0) return absl::OkStatus();
  if (err == EADDRINUSE) {
    return absl::FailedPreconditionError(absl::StrCat(
        "port ", port, " on 127.0.0.1 is in use (another controller? `labctl --controller ",
        "127.0.0.1:", port, " agents` would tell); pick another with --port / --http-port"));
  }
  return ErrnoToStatus(err, absl::StrCat("cannot check port ", port));
}

}  // namespace

nlohmann::json LabStateToJson(const LabState& state) {
  nlohmann::json agents = nlohmann::json::array();
  for (const LabProcess& a : state.agents) agents.push_back(ProcessToJson(a));
  return {{"version", kStateVersion},
          {"controller_address", state.controller_address},
          {"dashboard_url", state.dashboard_url},
          {"controller", ProcessToJson(state.controller)},
          {"agents", agents},
          {"state_dir", state.state_dir},
          {"log_dir", state.log_dir},
          {"started_ns", state.started_ns}};
}

absl::StatusOr<LabState> LabStateFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("the lab state is not a JSON object");
  if (j.value("version", 0) != kStateVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported lab state version ",
                     j.contains("version") ? j["version"].dump() : std::string("(none)")));
  }
  LabState state;
  try {
    state.controller_address = j.at("controller_address").get<std::string>();
    state.dashboard_url = j.value("dashboard_url", "");
    state.state_dir = j.value("state_dir", "");
    state.log_dir = j.value("log_dir", "");
    state.started_ns = j.value("started_ns", int64_t{0});
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("lab state: ", e.what()));
  }
  if (!j.contains("controller")) return absl::InvalidArgumentError("lab state: no controller");
  auto controller = ProcessFromJson(j["controller"], "lab state: controller");
  if (!controller.ok()) return controller.status();
  state.controller = *std::move(controller);
  if (!j.contains("agents") || !j["agents"].is_array()) {
    return absl::InvalidArgumentError("lab state: agents is not a list");
  }
  for (std::size_t i = 0; i < j["agents"].size(); ++i) {
    auto agent = ProcessFromJson(j["agents"][i], absl::StrCat("lab state: agents[", i, "]"));
    if (!agent.ok()) return agent.status();
    state.agents.push_back(*std::move(agent));
  }
  return state;
}

std::string LabStatePath(const std::string& state_dir) { return state_dir + "/lab.json"; }

absl::Status SaveLabState(const std::string& path, const LabState& state) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << LabStateToJson(state).dump(2) << "\n";
    out.close();
    if (!out) return ErrnoToStatus(errno ? errno : EIO, absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return ErrnoToStatus(err, absl::StrCat("cannot replace ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<LabState> LoadLabState(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no ", path));
    return ErrnoToStatus(errno ? errno : EIO, absl::StrCat("cannot read ", path));
  }
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not JSON"));
  }
  auto state = LabStateFromJson(j);
  if (!state.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", state.status().message()));
  }
  return state;
}

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

absl::StatusOr<std::string> FindBinary(
    const LabBinary& binary, const Environment& env,
    const std::function<bool(const std::string&)>& is_executable) {
  const auto getenv = [&env](const char* name) -> std::optional<std::string> {
    return env.getenv ? env.getenv(name) : std::nullopt;
  };
  if (std::optional<std::string> path = getenv(binary.env_var); path && !path->empty()) {
    if (is_executable(*path)) return *path;
    return absl::NotFoundError(
        absl::StrCat(binary.env_var, "=", *path, " is not an executable file; fix or unset it"));
  }
  std::vector<std::string> tried = {absl::StrCat("$", binary.env_var, " (unset)")};
  std::vector<std::string> candidates;
  if (!env.self_exe.empty()) {
    const fs::path dir = fs::path(env.self_exe).parent_path();
    candidates.push_back((dir.parent_path() / binary.build_subdir / binary.name).string());
    candidates.push_back((dir / binary.name).string());
  }
  for (const std::string& c : candidates) {
    if (is_executable(c)) return c;
    tried.push_back(c);
  }
  if (std::optional<std::string> path = getenv("PATH"); path) {
    for (absl::string_view dir : absl::StrSplit(*path, ':', absl::SkipEmpty())) {
      const std::string c = absl::StrCat(dir, "/", binary.name);
      if (is_executable(c)) return c;
    }
  }
  tried.push_back("$PATH");
  return absl::NotFoundError(
      absl::StrCat("cannot find ", binary.name, "; looked in ", absl::StrJoin(tried, ", "),
                   ". Build it (ninja -C build lab-controller lab-agent) or set ", binary.env_var));
}

int LabUp(const LabUpOptions& options, const GlobalOptions& global, Environment& env) {
  auto logger = ComponentLogger("labctl");
  if (options.agents < 1 || options.agents > 250) {
    PrintError(env, absl::StrCat("--agents must be in [1, 250], got ", options.agents));
    return kExitUsage;
  }
  if (options.port < 1 || options.port > 65535) {
    PrintError(env, absl::StrCat("--port must be in [1, 65535], got ", options.port));
    return kExitUsage;
  }
  if (options.http_port < 0 || options.http_port > 65535 || options.http_port == options.port) {
    PrintError(env, absl::StrCat("--http-port must be in [0, 65535] (0: no dashboard) and differ "
                                 "from --port, got ",
                                 options.http_port));
    return kExitUsage;
  }
  std::error_code ec;
  const std::string state_dir = fs::absolute(options.state_dir, ec).lexically_normal().string();
  const std::string log_dir = fs::absolute(options.log_dir, ec).lexically_normal().string();
  const std::string state_path = LabStatePath(state_dir);

  // Already up?
  if (auto existing = LoadLabState(state_path); existing.ok()) {
    bool any_running = false;
    for (const LabProcess* p : AllProcesses(*existing)) any_running |= IsRunning(p->process);
    if (any_running) {
      if (global.json) {
        *env.out << nlohmann::json{{"already_up", true}, {"lab", LabStateToJson(*existing)}}.dump(2)
                 << std::endl;
      } else {
        *env.out << "a local lab is already up in " << state_dir << ": " << Describe(*existing)
                 << "\nlabctl lab status for details, labctl lab down to stop it" << std::endl;
      }
      return kExitOk;
    }
    logger->info("removing the stale {} (none of its processes runs)", state_path);
    std::remove(state_path.c_str());
  } else if (!absl::IsNotFound(existing.status())) {
    PrintError(
        env, absl::StrCat(existing.status().message(), "; if no lab is running, remove that file"));
    return kExitFailed;
  }

  for (const int port : {options.port, options.http_port}) {
    if (port == 0) continue;
    if (absl::Status s = CheckPortFree(port); !s.ok()) {
      PrintError(env, s.message());
      return kExitFailed;
    }
  }
  auto controller_bin = FindBinary(kControllerBinary, env);
  auto agent_bin = FindBinary(kAgentBinary, env);
  for (const auto* found : {&controller_bin, &agent_bin}) {
    if (!found->ok()) {
      PrintError(env, found->status().message());
      return kExitFailed;
    }
  }
  for (const std::string& dir : {state_dir, log_dir}) {
    fs::create_directories(dir, ec);
    if (ec) {
      PrintError(env, absl::StrCat("cannot create ", dir, ": ", ec.message()));
      return kExitFailed;
    }
  }

  LabState state;
  state.controller_address = absl::StrCat("127.0.0.1:", options.port);
  if (options.http_port != 0) {
    state.dashboard_url = absl::StrCat("http://127.0.0.1:", options.http_port, "/");
  }
  state.state_dir = state_dir;
  state.log_dir = log_dir;
  state.started_ns = env.clock->NowNs();
  const absl::Time deadline = absl::Now() + options.ready_timeout;

  // Fails the start: stops what runs, removes lab.json, explains.
  const auto fail = [&](const WaitResult& why) {
    StopLab(state, options.stop_grace);
    std::remove(state_path.c_str());
    if (why.kind == WaitResult::kInterrupted) {
      PrintError(env, "interrupted; stopped what had been started");
      return kExitInterrupted;
    }
    std::string message =
        why.kind == WaitResult::kExited
            ? absl::StrCat(why.culprit->name, " exited (", why.detail, ") before the lab was ready")
            : absl::StrCat("the lab was not ready within ",
                           absl::FormatDuration(options.ready_timeout), ": ", why.detail);
    if (why.culprit != nullptr) {
      absl::StrAppend(&message, "\nthe end of ", why.culprit->name, "'s output (",
                      why.culprit->output, "):\n", Tail(why.culprit->output));
    }
    absl::StrAppend(&message, "\nstopped what had been started; nothing is left running");
    PrintError(env, message);
    return kExitFailed;
  };
  const auto spawn = [&](LabProcess* p, const std::vector<std::string>& argv) -> absl::Status {
    p->binary = argv[0];
    p->output = absl::StrCat(log_dir, "/", p->name, ".out");
    auto id = SpawnDetached(argv, p->output);
    if (!id.ok()) return id.status();
    p->process = *id;
    logger->info("started {} (pid {}): {}", p->name, id->pid, absl::StrJoin(argv, " "));
    return SaveLabState(state_path, state);  // recorded at once, so `down` can always stop it
  };
  const auto spawn_failed = [&](const absl::Status& status) {
    StopLab(state, options.stop_grace);
    std::remove(state_path.c_str());
    PrintError(env, status.message());
    return kExitFailed;
  };

  // The controller first; agents once it answers, so none of them starts against nothing.
  state.controller.name = "lab-controller";
  state.controller.address = state.controller_address;
  if (absl::Status s = spawn(
          &state.controller,
          {*controller_bin, "--listen", state.controller_address, "--http",
           options.http_port == 0 ? std::string() : absl::StrCat("127.0.0.1:", options.http_port),
           "--db", state_dir + "/results.db", "--log-dir", log_dir, "--output", "json"});
      !s.ok()) {
    return spawn_failed(s);
  }
  GlobalOptions lab_global = global;
  lab_global.controller = state.controller_address;
  int exit_code = kExitOk;
  std::shared_ptr<ControllerStub> stub = ConnectOrExplain(lab_global, env, &exit_code);
  if (!stub) {
    StopLab(state, options.stop_grace);
    std::remove(state_path.c_str());
    return exit_code;
  }
  const WaitResult controller_ready = WaitUntilReady(
      {&state.controller}, deadline,
      [&](absl::Time d, std::string* because, const LabProcess** culprit) {
        lab::v1::ListAgentsResponse response;
        const absl::Status s = ListLabAgents(*stub, d, env, &response);
        if (s.ok()) return true;
        *because = absl::StrCat("the controller did not answer at ", state.controller_address, " (",
                                s.message(), ")");
        *culprit = &state.controller;
        return false;
      },
      env);
  if (controller_ready.kind != WaitResult::kReady) return fail(controller_ready);

  state.agents.resize(static_cast<std::size_t>(options.agents));
  for (int k = 1; k <= options.agents; ++k) {
    LabProcess& agent = state.agents[static_cast<std::size_t>(k - 1)];
    agent.name = absl::StrCat("agent-", k);
    agent.address = absl::StrCat("127.0.0.", k + 1);
    if (absl::Status s =
            spawn(&agent, {*agent_bin, "--controller", state.controller_address, "--name",
                           agent.name, "--address", agent.address, "--log-dir", log_dir});
        !s.ok()) {
      state.agents.resize(static_cast<std::size_t>(k - 1));
      return spawn_failed(s);
    }
  }
  const WaitResult agents_ready = WaitUntilReady(
      AllProcesses(state), deadline,
      [&](absl::Time d, std::string* because, const LabProcess** culprit) {
        lab::v1::ListAgentsResponse response;
        const absl::Status s = ListLabAgents(*stub, d, env, &response);
        if (!s.ok()) {
          *because = absl::StrCat("the controller stopped answering (", s.message(), ")");
          *culprit = &state.controller;
          return false;
        }
        std::set<std::string> alive;
        for (const lab::v1::AgentStatus& a : response.agents()) {
          if (a.alive()) alive.insert(a.info().name());
        }
        std::vector<std::string> missing;
        for (const LabProcess& a : state.agents) {
          if (alive.count(a.name) == 0) {
            if (missing.empty()) *culprit = &a;
            missing.push_back(a.name);
          }
        }
        if (missing.empty()) return true;
        *because = absl::StrCat(state.agents.size() - missing.size(), " of ", state.agents.size(),
                                " agents alive (missing: ", absl::StrJoin(missing, ", "), ")");
        return false;
      },
      env);
  if (agents_ready.kind != WaitResult::kReady) return fail(agents_ready);

  if (global.json) {
    *env.out << nlohmann::json{{"already_up", false}, {"lab", LabStateToJson(state)}}.dump(2)
             << std::endl;
    return kExitOk;
  }
  const bool default_place = options.port == 50051 && options.state_dir == ".lab";
  *env.out << "local lab up: controller " << state.controller_address << " (pid "
           << state.controller.process.pid << "), " << state.agents.size() << " agents alive ("
           << state.agents.front().name << " on " << state.agents.front().address;
  if (state.agents.size() > 1) {
    *env.out << " … " << state.agents.back().name << " on " << state.agents.back().address;
  }
  *env.out << ")\n";
  if (!state.dashboard_url.empty()) *env.out << "dashboard: " << state.dashboard_url << "\n";
  *env.out << "state " << state_path << ", results " << state_dir << "/results.db, logs " << log_dir
           << "/\nnext: labctl "
           << (default_place ? "" : absl::StrCat("--controller ", state.controller_address, " "))
           << "run --clients raw,ewma,kalman,pid; stop with: labctl lab down"
           << (options.state_dir == ".lab" ? "" : absl::StrCat(" --state-dir ", options.state_dir))
           << std::endl;
  return kExitOk;
}

int LabStatus(const std::string& state_dir, const GlobalOptions& global, Environment& env) {
  const std::string path = LabStatePath(state_dir);
  auto state = LoadLabState(path);
  if (absl::IsNotFound(state.status())) {
    if (global.json) {
      *env.out << nlohmann::json{{"up", false}, {"state_dir", state_dir}}.dump(2) << std::endl;
    } else {
      *env.out << "no local lab in " << state_dir << " (start one with labctl lab up)" << std::endl;
    }
    return kExitFailed;
  }
  if (!state.ok()) {
    PrintError(env, state.status().message());
    return kExitFailed;
  }
  bool healthy = true;
  std::vector<std::vector<std::string>> rows;
  nlohmann::json processes = nlohmann::json::array();
  for (const LabProcess* p : AllProcesses(*state)) {
    const bool running = IsRunning(p->process);
    healthy = healthy && running;
    rows.push_back({p->name, absl::StrCat(p->process.pid), running ? "running" : "not running",
                    p->address, p->output});
    nlohmann::json j = ProcessToJson(*p);
    j["running"] = running;
    processes.push_back(j);
  }

  GlobalOptions lab_global = global;
  lab_global.controller = state->controller_address;
  std::optional<lab::v1::ListAgentsResponse> agents;
  std::string agents_error;
  if (IsRunning(state->controller.process)) {
    int exit_code = kExitOk;
    if (std::shared_ptr<ControllerStub> stub = ConnectOrExplain(lab_global, env, &exit_code)) {
      lab::v1::ListAgentsResponse response;
      const absl::Status s = ListLabAgents(
          *stub, absl::Now() + std::min(global.timeout, absl::Seconds(5)), env, &response);
      if (s.ok()) {
        agents = response;
      } else {
        agents_error = DescribeCallError(s, state->controller_address, "1s").message;
      }
    } else {
      agents_error = "cannot connect";
    }
  } else {
    agents_error = "the controller is not running";
  }
  if (agents) {
    for (const LabProcess& a : state->agents) {
      const bool alive = std::any_of(
          agents->agents().begin(), agents->agents().end(),
          [&a](const lab::v1::AgentStatus& s) { return s.alive() && s.info().name() == a.name; });
      healthy = healthy && alive;
    }
  } else {
    healthy = false;
  }

  if (global.json) {
    nlohmann::json j = {{"up", true},
                        {"healthy", healthy},
                        {"controller_address", state->controller_address},
                        {"dashboard_url", state->dashboard_url},
                        {"state_dir", state->state_dir},
                        {"log_dir", state->log_dir},
                        {"started_ns", state->started_ns},
                        {"processes", processes}};
    if (agents) {
      j["agents"] = AgentsToJson(*agents)["agents"];
    } else {
      j["error"] = agents_error;
    }
    *env.out << j.dump(2) << std::endl;
  } else {
    *env.out << "local lab in " << state->state_dir << " (logs in " << state->log_dir << ")\n"
             << (state->dashboard_url.empty()
                     ? std::string()
                     : absl::StrCat("dashboard: ", state->dashboard_url, "\n"))
             << FormatColumns({"PROCESS", "PID", "STATE", "ADDRESS", "OUTPUT"}, rows) << "\n";
    if (agents) {
      *env.out << "agents known to the controller at " << state->controller_address << ":\n"
               << (agents->agents().empty() ? std::string("(none)\n")
                                            : FormatAgentsTable(*agents, env.clock->NowNs()));
    } else {
      *env.out << "agents: unknown: " << agents_error << "\n";
    }
    *env.out << (healthy ? ""
                         : "\nthe lab is not healthy; restart it with labctl lab down && "
                           "labctl lab up\n")
             << std::flush;
  }
  return healthy ? kExitOk : kExitFailed;
}

int LabDown(const std::string& state_dir, absl::Duration grace, const GlobalOptions& global,
            Environment& env) {
  const std::string path = LabStatePath(state_dir);
  auto state = LoadLabState(path);
  if (absl::IsNotFound(state.status())) {
    if (global.json) {
      *env.out << nlohmann::json{{"stopped", nlohmann::json::array()}}.dump(2) << std::endl;
    } else {
      *env.out << "no local lab in " << state_dir << "; nothing to stop" << std::endl;
    }
    return kExitOk;
  }
  if (!state.ok()) {
    PrintError(env,
               absl::StrCat(state.status().message(), "; if no lab is running, remove that file"));
    return kExitFailed;
  }
  const auto report = StopLab(*state, grace);
  bool failed = false;
  nlohmann::json stopped = nlohmann::json::array();
  for (const auto& [p, outcome] : report) {
    failed = failed || outcome == StopOutcome::kFailed;
    stopped.push_back(
        {{"name", p->name}, {"pid", p->process.pid}, {"outcome", OutcomeName(outcome)}});
    if (global.json) continue;
    switch (outcome) {
      case StopOutcome::kNotRunning:
        *env.out << p->name << " (pid " << p->process.pid << ") was not running\n";
        break;
      case StopOutcome::kTerminated:
        *env.out << "stopped " << p->name << " (pid " << p->process.pid << ")\n";
        break;
      case StopOutcome::kKilled:
        *env.out << "killed " << p->name << " (pid " << p->process.pid << "): still running "
                 << absl::FormatDuration(grace) << " after SIGTERM\n";
        break;
      case StopOutcome::kFailed:
        *env.out << "could not stop " << p->name << " (pid " << p->process.pid << ")\n";
        break;
    }
  }
  if (global.json) *env.out << nlohmann::json{{"stopped", stopped}}.dump(2) << "\n";
  env.out->flush();
  if (failed) {
    PrintError(env, absl::StrCat("some processes could not be stopped; ", path, " is kept"));
    return kExitFailed;
  }
  std::remove(path.c_str());
  return kExitOk;
}

}  // namespace lab::labctl

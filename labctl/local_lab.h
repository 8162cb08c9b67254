// `labctl lab up|status|down`: a local lab, the controller and N agents as background
// processes on this host (agents on 127.0.0.2, .3, …), recorded in STATE_DIR/lab.json.
#ifndef LABCTL_LOCAL_LAB_H_
#define LABCTL_LOCAL_LAB_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "labctl/command_context.h"
#include "labctl/process.h"
#include "nlohmann/json.hpp"

namespace lab::labctl {

// One process of the lab.
struct LabProcess {
  std::string name;    // "lab-controller", "agent-1", …
  std::string binary;  // absolute path it was started from
  ProcessId process;
  std::string address;  // the controller's HOST:PORT, or the agent's lab address
  std::string output;   // file receiving its stdout and stderr
};

// What lab.json records.
struct LabState {
  std::string controller_address;  // "127.0.0.1:PORT"
  std::string dashboard_url;       // "http://127.0.0.1:PORT/"; empty: no dashboard
  LabProcess controller;
  std::vector<LabProcess> agents;
  std::string state_dir;   // absolute
  std::string log_dir;     // absolute
  int64_t started_ns = 0;  // wall clock, ns since the epoch
};

nlohmann::json LabStateToJson(const LabState& state);
// InvalidArgument naming the first missing or mistyped field.
absl::StatusOr<LabState> LabStateFromJson(const nlohmann::json& j);
// STATE_DIR/lab.json.
std::string LabStatePath(const std::string& state_dir);
// Writes `path` atomically (a temporary file renamed over it).
absl::Status SaveLabState(const std::string& path, const LabState& state);
// NotFound when `path` does not exist; InvalidArgument when it is not a lab state.
absl::StatusOr<LabState> LoadLabState(const std::string& path);

// A binary of the lab and where a build tree puts it.
struct LabBinary {
  const char* name;          // "lab-controller"
  const char* env_var;       // "LAB_CONTROLLER_BIN"
  const char* build_subdir;  // "controller": build/controller/lab-controller
};
inline constexpr LabBinary kControllerBinary{"lab-controller", "LAB_CONTROLLER_BIN", "controller"};
inline constexpr LabBinary kAgentBinary{"lab-agent", "LAB_AGENT_BIN", "agent"};

// True for a regular file the caller may execute.
bool IsExecutableFile(const std::string& path);

// Finds `binary`, in order: $ENV_VAR (when set and non-empty it must be executable);
// DIR/../BUILD_SUBDIR/NAME and DIR/NAME where DIR holds labctl (env.self_exe); each $PATH
// directory. NotFound lists where it looked and how to fix it.
absl::StatusOr<std::string> FindBinary(
    const LabBinary& binary, const Environment& env,
    const std::function<bool(const std::string&)>& is_executable = IsExecutableFile);

struct LabUpOptions {
  int agents = 4;        // [1, 250]
  int port = 50051;      // the controller's gRPC port on 127.0.0.1
  int http_port = 8080;  // its dashboard and HTTP API on 127.0.0.1; 0: none
  std::string state_dir = ".lab";
  std::string log_dir = "logs";
  absl::Duration ready_timeout = absl::Seconds(15);  // until every agent is alive
  absl::Duration stop_grace = absl::Seconds(5);      // SIGTERM to SIGKILL
};

// Starts the lab unless one is up already (then says so, exit 0). Waits until the controller
// answers and all agents are alive by ListAgents; on failure (a process exits, the deadline
// passes) stops what it started, removes lab.json, prints the reason and the end of the
// failing process's output, and returns 1 (130 when interrupted, 2 for bad options).
int LabUp(const LabUpOptions& options, const GlobalOptions& global, Environment& env);

// Which of the lab's processes run, and the controller's view of the agents. Exit 0 when
// everything runs and every agent is alive; 1 otherwise (including no lab).
int LabStatus(const std::string& state_dir, const GlobalOptions& global, Environment& env);

// Stops the lab's processes (agents, then the controller: SIGTERM, SIGKILL after `grace`)
// and removes lab.json; says what it stopped. No lab: a message and exit 0.
int LabDown(const std::string& state_dir, absl::Duration grace, const GlobalOptions& global,
            Environment& env);

}  // namespace lab::labctl

#endif  // LABCTL_LOCAL_LAB_H_

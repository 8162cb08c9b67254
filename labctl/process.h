// The local lab's processes: started detached, recognised across pid reuse, stopped with
// SIGTERM then SIGKILL. Linux only (/proc, pidfd). Waits use poll() on pidfds (or a short
// poll() timeout where pidfds are missing), never a bare sleep.
#ifndef LABCTL_PROCESS_H_
#define LABCTL_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lab::labctl {

// A process as recorded in lab.json: its pid and its start time (clock ticks after boot,
// /proc/PID/stat field 22), so a pid reused by another program is not mistaken for it.
// start_time 0: unknown, the pid alone is trusted.
struct ProcessId {
  pid_t pid = 0;
  uint64_t start_time = 0;
};

// Starts argv[0] (a path) with `argv` in a new session (setsid, so a terminal's Ctrl-C or
// hang-up does not reach it), stdin from /dev/null, stdout and stderr to `output_path`
// (created or truncated), with an empty signal mask and default SIGINT/SIGTERM/SIGHUP/SIGPIPE
// dispositions whatever the caller has. It is the caller's child until the caller exits.
absl::StatusOr<ProcessId> SpawnDetached(const std::vector<std::string>& argv,
                                        const std::string& output_path);

// True while `process` runs: it exists, is not a zombie and has the recorded start time.
bool IsRunning(const ProcessId& process);

// If `pid` is the caller's child and has exited, reaps it and says how it ended ("exit code
// 1", "killed by signal 9"); nullopt while it runs or when it is not a child.
std::optional<std::string> ReapIfExited(pid_t pid);

// Waits up to `timeout` until one of `processes` stops running; returns its index, or
// nullopt if all still run. Returns at once when one has already stopped.
std::optional<std::size_t> WaitForAnyExit(std::span<const ProcessId> processes,
                                          absl::Duration timeout);

enum class StopOutcome {
  kNotRunning,  // already gone
  kTerminated,  // exited after SIGTERM within the grace period
  kKilled,      // needed SIGKILL
  kFailed,      // could not be signalled (EPERM) or survived SIGKILL for 2 s
};
// Sends SIGTERM to every running process, waits up to `grace` for all of them, then SIGKILLs
// the rest. Reaps those that are the caller's children. One outcome per process, in order.
std::vector<StopOutcome> StopProcesses(std::span<const ProcessId> processes, absl::Duration grace);

}  // namespace lab::labctl

#endif  // LABCTL_PROCESS_H_

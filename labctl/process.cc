#include "labctl/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errno_status.h"

extern char** environ;

namespace lab::labctl {

namespace {

struct ProcStat {
  char state = '?';
  uint64_t start_time = 0;
};

// /proc/PID/stat's state (field 3) and start time (field 22); nullopt when there is no such
// process. The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
std::optional<ProcStat> ReadStat(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text;
  if (!in || !std::getline(in, text)) return std::nullopt;
  const auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 > text.size()) return std::nullopt;
  const std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(text).substr(close + 2), ' ');
  ProcStat stat;
  if (fields.size() < 20 || fields[0].empty()) return std::nullopt;
  stat.state = fields[0][0];
  if (!absl::SimpleAtoi(fields[19], &stat.start_time)) return std::nullopt;
  return stat;
}

// An owned pidfd (-1 where the kernel lacks pidfd_open).
class Pidfd {
 public:
  explicit Pidfd(pid_t pid) : fd_(static_cast<int>(syscall(SYS_pidfd_open, pid, 0))) {}
  ~Pidfd() {
    if (fd_ >= 0) close(fd_);
  }
  Pidfd(Pidfd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Pidfd(const Pidfd&) = delete;
  Pidfd& operator=(const Pidfd&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Signals `process` if it is still the recorded one. The pidfd pins the process, so the
// identity check and the signal cannot straddle a pid reuse. False with errno on failure.
bool SendSignal(const ProcessId& process, int sig) {
  Pidfd pidfd(process.pid);
  if (!IsRunning(process)) {
    errno = ESRCH;
    return false;
  }
  if (pidfd.fd() >= 0) {
    return syscall(SYS_pidfd_send_signal, pidfd.fd(), sig, nullptr, 0) == 0;
  }
  return kill(process.pid, sig) == 0;
}

std::vector<ProcessId> StillRunning(std::span<const ProcessId> processes) {
  std::vector<ProcessId> out;
  for (const ProcessId& p : processes) {
    if (IsRunning(p)) out.push_back(p);
  }
  return out;
}

// Waits until none of `processes` runs or `deadline` passes; true when none runs.
bool WaitForAllExit(std::span<const ProcessId> processes, absl::Time deadline) {
  while (true) {
    const std::vector<ProcessId> running = StillRunning(processes);
    if (running.empty()) return true;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    WaitForAnyExit(running, left);
  }
}

}  // namespace

absl::StatusOr<ProcessId> SpawnDetached(const std::vector<std::string>& argv,
                                        const std::string& output_path) {
  if (argv.empty()) return absl::InvalidArgumentError("no program to start");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, output_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t mask;
  sigemptyset(&mask);
  posix_spawnattr_setsigmask(&attr, &mask);  // labctl blocks SIGINT/SIGTERM for its watcher
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> args_copy = argv;
  std::vector<char*> args;
  for (std::string& a : args_copy) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return ErrnoToStatus(rc,
                         absl::StrCat("cannot start ", argv[0], " (output to ", output_path, ")"));
  }
  ProcessId id{.pid = pid};
  if (auto stat = ReadStat(pid)) id.start_time = stat->start_time;
  return id;
}

bool IsRunning(const ProcessId& process) {
  const std::optional<ProcStat> stat = ReadStat(process.pid);
  if (!stat || stat->state == 'Z' || stat->state == 'X') return false;
  return process.start_time == 0 || stat->start_time == process.start_time;
}

std::optional<std::string> ReapIfExited(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) != pid) return std::nullopt;
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)),
                        ")");
  }
  return "ended";
}

std::optional<std::size_t> WaitForAnyExit(std::span<const ProcessId> processes,
                                          absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<Pidfd> pidfds;
  std::vector<pollfd> fds;
  bool all_pidfds = true;
  for (const ProcessId& p : processes) {
    pidfds.emplace_back(p.pid);
    fds.push_back({pidfds.back().fd(), POLLIN, 0});
    all_pidfds = all_pidfds && pidfds.back().fd() >= 0;
  }
  while (true) {
    for (std::size_t i = 0; i < processes.size(); ++i) {
      if (!IsRunning(processes[i])) return i;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return std::nullopt;
    // With pidfds poll() wakes when one exits; without, re-check every 20 ms.
    const absl::Duration wait = all_pidfds ? left : std::min(left, absl::Milliseconds(20));
    const int ms =
        static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1))));
    if (all_pidfds) {
      poll(fds.data(), fds.size(), ms);
    } else {
      poll(nullptr, 0, ms);
    }
  }
}

std::vector<StopOutcome> StopProcesses(std::span<const ProcessId> processes, absl::Duration grace) {
  std::vector<StopOutcome> outcomes(processes.size(), StopOutcome::kNotRunning);
  std::vector<ProcessId> signalled;
  for (std::size_t i = 0; i < processes.size(); ++i) {
    if (!IsRunning(processes[i])) continue;
    if (SendSignal(processes[i], SIGTERM)) {
      outcomes[i] = StopOutcome::kTerminated;
      signalled.push_back(processes[i]);
    } else if (errno != ESRCH) {
      outcomes[i] = StopOutcome::kFailed;
    }
  }
  if (!WaitForAllExit(signalled, absl::Now() + grace)) {
    std::vector<ProcessId> killed;
    for (std::size_t i = 0; i < processes.size(); ++i) {
      if (outcomes[i] == StopOutcome::kTerminated && IsRunning(processes[i]) &&
          SendSignal(processes[i], SIGKILL)) {
        outcomes[i] = StopOutcome::kKilled;
        killed.push_back(processes[i]);
      }
    }
    WaitForAllExit(killed, absl::Now() + absl::Seconds(2));
    for (std::size_t i = 0; i < processes.size(); ++i) {
      if (outcomes[i] == StopOutcome::kKilled && IsRunning(processes[i])) {
        outcomes[i] = StopOutcome::kFailed;
      }
    }
  }
  for (const ProcessId& p : processes) ReapIfExited(p.pid);
  return outcomes;
}

}  // namespace lab::labctl

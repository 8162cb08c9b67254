// labctl: the user's command line for the lab's controller.
//
//   labctl lab up                             # a local lab: controller + 4 agents
//   labctl run --clients raw,ewma,kalman,pid  # live progress, then a summary table
//   labctl results list | show ID | export ID --format csv
//   labctl lab down
//
// Exit codes: 0 done, 1 failed, 2 bad usage, 3 run finished with clients lost or failed,
// 130 interrupted. All the logic is in labctl_lib (labctl/labctl.h).
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "common/logging.h"
#include "labctl/labctl.h"
#include "labnet/cli_util.h"

int main(int argc, char** argv) {
  lab::labctl::Interrupt interrupt;
  std::atomic<int> signals_seen{0};
  // Before any thread (gRPC's) starts, so every thread inherits the blocked signals. The
  // first Ctrl-C cancels the call in flight; a second one exits at once.
  lab::cli::SignalWatcher signals([&] {
    if (signals_seen.fetch_add(1) > 0) std::_Exit(130);
    interrupt.Cancel();
  });

  lab::labctl::Environment env;
  env.out = &std::cout;
  env.err = &std::cerr;
  env.interactive = isatty(STDOUT_FILENO) == 1 && isatty(STDERR_FILENO) == 1;
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    return value == nullptr ? std::nullopt : std::optional<std::string>(value);
  };
  std::error_code ec;
  env.self_exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  env.interrupt = &interrupt;
  env.init_logging = true;

  const int code = lab::labctl::RunLabctl(argc, argv, env);
  lab::FlushLogs();
  return code;
}

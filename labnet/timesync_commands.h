// labnet's time-sync subcommands: ts-server, ts-client and ts-demo (server and clients in
// one process on an ephemeral loopback port).
#ifndef LABNET_TIMESYNC_COMMANDS_H_
#define LABNET_TIMESYNC_COMMANDS_H_

#include <functional>

#include "CLI/CLI.hpp"

namespace lab::cli {

// Adds the subcommands to `app`. Each, when selected, sets `*run` to a function returning
// the process exit code (0 success, 1 the run failed, 2 bad usage).
void AddTimeSyncCommands(CLI::App& app, std::function<int()>* run);

}  // namespace lab::cli

#endif  // LABNET_TIMESYNC_COMMANDS_H_

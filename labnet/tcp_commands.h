// labnet's TCP traffic subcommands: tcp-server and tcp-client.
#ifndef LABNET_TCP_COMMANDS_H_
#define LABNET_TCP_COMMANDS_H_

#include <functional>

#include "CLI/CLI.hpp"

namespace lab::cli {

// Adds the subcommands to `app`. Each, when selected, sets `*run` to a function returning
// the process exit code (0 success, 1 the run failed, 2 bad usage, 130 interrupted).
void AddTcpCommands(CLI::App& app, std::function<int()>* run);

}  // namespace lab::cli

#endif  // LABNET_TCP_COMMANDS_H_

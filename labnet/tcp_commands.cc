#include "labnet/tcp_commands.h"

namespace lab::cli {

void AddTcpCommands(CLI::App&, std::function<int()>*) {}

}  // namespace lab::cli

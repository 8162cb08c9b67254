#include "labnet/udp_commands.h"

namespace lab::cli {

void AddUdpCommands(CLI::App&, std::function<int()>*) {}

}  // namespace lab::cli

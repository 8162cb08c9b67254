// lab-agent: runs the lab's data-plane tasks on this host for a controller.
//
//   lab-agent --controller 127.0.0.1:50051 --name agent-1 --address 127.0.0.2
#include <unistd.h>

#include <iostream>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "agent/agent.h"
#include "common/logging.h"
#include "dataplane/net/socket_address.h"
#include "dataplane/net/tcp_socket.h"
#include "labnet/cli_util.h"

int main(int argc, char** argv) {
  CLI::App app{
      "lab-agent: runs data-plane tasks (time servers and clients, TCP and UDP traffic) for a "
      "controller"};
  // Traffic tasks hold thousands of connections: take the whole open-file limit.
  lab::net::RaiseOpenFileLimit();
  lab::agent::AgentOptions options;
  std::string name;
  lab::cli::LogFlags log;
  app.add_option("--controller", options.controller, "controller HOST:PORT")->capture_default_str();
  app.add_option("--name", name, "this agent's name in the lab (default: the host name)");
  app.add_option("--address", options.lab_address,
                 "this agent's lab address (its servers bind it); auto: this host's first "
                 "non-loopback IPv4 address (containers)")
      ->capture_default_str();
  app.add_option("--max-tasks", options.max_tasks, "tasks at once")->capture_default_str();
  app.add_flag("--insecure", options.transport.insecure,
               "allow plaintext gRPC and servers beyond loopback");
  log.Add(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    name = host;
  }
  if (options.lab_address == "auto") {
    auto address = lab::net::FirstNonLoopbackIpv4();
    if (!address.ok()) {
      std::cerr << "lab-agent: --address auto: " << address.status().message() << "\n";
      return 2;
    }
    options.lab_address = *address;
  }
  if (!log.Apply("lab-agent-" + name)) return 2;
  options.info.set_name(name);
  options.info.set_version("0.1.0");
  lab::agent::Agent agent(options, lab::ComponentLogger("agent"));
  lab::cli::SignalWatcher signals([&] { agent.Stop(); });
  const absl::Status status = agent.Run();
  lab::FlushLogs();
  if (!status.ok()) {
    std::cerr << "lab-agent: " << status.message() << "\n";
    return absl::IsInvalidArgument(status) ? 2 : 1;
  }
  return 0;
}

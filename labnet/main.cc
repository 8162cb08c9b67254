// labnet: the lab's data plane on this host, with no controller.
//
//   labnet ts-server --port 12345
//   labnet ts-client --server 127.0.0.1:12345 --mode kalman --count 500 --interval 5ms
//                    --offset 25ms --drift-ppm 80 --output json
//   labnet ts-demo   # server + RAW/EWMA/Kalman/PID clients in one process
//   labnet tcp-server --port 5201 --mode echo|sink|source --engine epoll|threads
//   labnet tcp-client --server 127.0.0.1:5201 --mode rr|bulk --connections 100 --threads 2
//   labnet udp-server --port 5202 [--mode echo|sink]
//   labnet udp-client --server 127.0.0.1:5202 [--rate 100k] --length 64 --output json
//
// Exit codes: 0 success, 1 the run failed (no server, socket error), 2 bad usage,
// 130 interrupted (servers: stopped by a signal, which is their normal end: 0).
#include <functional>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "common/logging.h"
#include "labnet/cli_util.h"
#include "labnet/tcp_commands.h"
#include "labnet/timesync_commands.h"
#include "labnet/udp_commands.h"

int main(int argc, char** argv) {
  CLI::App app{"labnet: the network lab's data plane on this host (no controller needed)"};
  app.require_subcommand(1);
  lab::cli::LogFlags log;
  log.Add(app);
  app.fallthrough();

  std::function<int()> run;
  lab::cli::AddTimeSyncCommands(app, &run);
  lab::cli::AddTcpCommands(app, &run);
  lab::cli::AddUdpCommands(app, &run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and succeeds; every other parse error is bad usage: exit code 2.
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  if (!log.Apply("labnet")) return 2;
  const int code = run ? run() : 2;
  lab::FlushLogs();
  return code;
}

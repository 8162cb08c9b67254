#include "labnet/tcp_commands.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "dataplane/net/tcp_socket.h"
#include "dataplane/traffic/tcp_client.h"
#include "dataplane/traffic/tcp_server.h"
#include "labnet/cli_util.h"
#include "nlohmann/json.hpp"

namespace lab::cli {

namespace {

constexpr int64_t kDay = 86'400'000'000'000;

struct ServerFlags {
  std::string bind = "127.0.0.1";
  int port = 5201;
  std::string port_range;
  std::string mode = "echo";
  std::string engine = "epoll";
  int threads = 0;
  int max_connections = 10000;
  bool insecure = false;
  std::string duration = "0";
  std::string output = "text";

  absl::StatusOr<traffic::TcpServerOptions> Build() const {
    traffic::TcpServerOptions o;
    LAB_ASSIGN_OR_RETURN(o.mode, traffic::ParseTcpMode(mode));
    LAB_ASSIGN_OR_RETURN(o.engine, traffic::ParseTcpEngine(engine));
    if (port < 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("--port must be in [0, 65535], got ", port));
    }
    uint16_t first = static_cast<uint16_t>(port);
    if (!port_range.empty()) {
      LAB_ASSIGN_OR_RETURN(const auto range, ParsePortRange("port-range", port_range));
      first = range.first;
      o.port_last = range.second;
    }
    auto address = net::SocketAddress::Resolve(bind, first);
    if (!address.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--bind: ", address.status().message()));
    }
    o.listen = *address;
    o.threads = threads;
    o.max_connections = max_connections;
    o.allow_non_loopback = insecure;
    if (absl::Status s = o.Validate(); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("tcp-server: ", s.message()));
    }
    return o;
  }
};

int RunServer(const ServerFlags& flags) {
  auto options = flags.Build();
  if (!options.ok()) return UsageError(options.status());
  auto duration_ns = ParseDurationNs("duration", flags.duration, 0, kDay);
  if (!duration_ns.ok()) return UsageError(duration_ns.status());
  net::RaiseOpenFileLimit();
  // Signals are blocked before any thread starts, so every thread inherits the mask.
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  SignalWatcher signals([&] {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  });
  auto server = traffic::TcpServer::Start(*options, ComponentLogger("traffic"));
  if (!server.ok()) {
    std::cerr << "labnet: tcp-server: " << server.status().message() << "\n";
    return absl::IsInvalidArgument(server.status()) ? 2 : 1;
  }
  const net::SocketAddress& local = (*server)->local_address();
  const char* mode = traffic::TcpModeName(options->mode);
  const char* engine = traffic::TcpEngineName(options->engine);
  if (flags.output == "json") {
    std::cout << nlohmann::json{{"event", "listening"},
                                {"protocol", "tcp"},
                                {"address", local.HostString()},
                                {"port", local.port()},
                                {"mode", mode},
                                {"engine", engine},
                                {"max_connections", options->max_connections}}
                     .dump()
              << std::endl;
  } else {
    std::cout << "tcp server (" << mode << ", " << engine << " engine) listening on "
              << local.ToString() << ", at most " << options->max_connections
              << " connections; Ctrl-C to stop" << std::endl;
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    if (*duration_ns > 0) {
      cv.wait_for(lock, std::chrono::nanoseconds(*duration_ns), [&] { return stop; });
    } else {
      cv.wait(lock, [&] { return stop; });
    }
  }
  (*server)->Stop();
  const traffic::TcpServerCounters c = (*server)->counters();
  if (flags.output == "json") {
    std::cout << nlohmann::json{{"event", "stopped"},
                                {"counters", traffic::TcpServerCountersToJson(c)}}
                     .dump()
              << std::endl;
  } else {
    std::cout << "tcp server stopped: " << c.accepted << " connections (peak " << c.peak_active
              << ", refused " << c.refused << ", resets " << c.resets << ", errors " << c.errors
              << "), received " << FormatByteCount(static_cast<double>(c.bytes_received))
              << ", sent " << FormatByteCount(static_cast<double>(c.bytes_sent)) << std::endl;
  }
  return 0;
}

struct ClientFlags {
  std::string server;
  std::string mode = "rr";
  int connections = 1;
  int threads = 1;
  std::string duration = "10s";
  bool duration_given = false;  // --duration on the command line
  int64_t requests = 0;
  std::string length;
  bool reverse = false;
  std::string connect_timeout = "5s";
  std::string interval = "1s";
  std::string output = "text";

  absl::StatusOr<traffic::TcpClientOptions> Build() const {
    traffic::TcpClientOptions o;
    auto address = net::SocketAddress::ParseHostPort(server);
    if (!address.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--server: ", address.status().message()));
    }
    o.server = *address;
    LAB_ASSIGN_OR_RETURN(o.mode, traffic::ParseTcpClientMode(mode));
    o.connections = connections;
    o.threads = threads;
    LAB_ASSIGN_OR_RETURN(o.duration_ns, ParseDurationNs("duration", duration, 0, kDay));
    if (requests < 0) {
      return absl::InvalidArgumentError(absl::StrCat("--requests must be >= 0, got ", requests));
    }
    o.requests = static_cast<uint64_t>(requests);
    if (requests > 0 && !duration_given) o.duration_ns = 0;  // --requests alone: no time limit
    if (!length.empty()) {
      LAB_ASSIGN_OR_RETURN(
          o.length, ParseBytes("length", length, 1,
                               o.mode == traffic::TcpClientMode::kBulk ? (16u << 20) : 64 * 1024));
    }
    o.reverse = reverse;
    LAB_ASSIGN_OR_RETURN(o.connect_timeout_ns,
                         ParseDurationNs("connect-timeout", connect_timeout, 0, kDay, true));
    LAB_ASSIGN_OR_RETURN(o.interval_ns, ParseDurationNs("interval", interval, 0, kDay));
    if (absl::Status s = o.Validate(); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("tcp-client: ", s.message()));
    }
    return o;
  }
};

void PrintIntervalText(const traffic::IntervalSample& s, bool rr) {
  std::string line =
      absl::StrFormat("[%6.2f-%6.2f s] %12s %16s", s.start_s, s.end_s,
                      FormatByteCount(static_cast<double>(s.bytes_sent + s.bytes_received)),
                      FormatBitRate(s.bits_per_second()));
  if (rr) {
    absl::StrAppendFormat(&line, " %10.0f req/s  p50 %s us  p99 %s us", s.messages_per_second(),
                          FormatMicros(s.latency_p50_us), FormatMicros(s.latency_p99_us));
  }
  if (s.errors > 0) absl::StrAppend(&line, "  errors ", s.errors);
  std::cout << line << std::endl;
}

void PrintReportText(const traffic::TcpClientReport& r) {
  const bool rr = r.mode == traffic::TcpClientMode::kRequestResponse;
  std::cout << "- - - - - - - - - - - - - - - - - - - - - - - - -\n";
  std::cout << absl::StrFormat("%s to %s: %d/%d connections over %d threads, %.2f s%s\n",
                               traffic::TcpClientModeName(r.mode), r.server,
                               r.connections_established, r.connections_requested, r.threads,
                               r.seconds, r.interrupted ? " (interrupted)" : "");
  std::cout << absl::StrFormat(
      "  sent %s, received %s, %s\n", FormatByteCount(static_cast<double>(r.bytes_sent)),
      FormatByteCount(static_cast<double>(r.bytes_received)), FormatBitRate(r.bits_per_second()));
  if (rr) {
    std::cout << absl::StrFormat(
        "  %llu requests, %.0f req/s; latency us p50 %s p99 %s p999 %s max %s\n",
        static_cast<unsigned long long>(r.requests), r.requests_per_second(),
        FormatMicros(r.latency_us.Quantile(0.5)), FormatMicros(r.latency_us.Quantile(0.99)),
        FormatMicros(r.latency_us.Quantile(0.999)), FormatMicros(r.latency_us.max()));
  }
  if (r.errors() > 0) {
    std::cout << absl::StrFormat(
        "  errors: %llu connect, %llu resets, %llu closed by the server; first: %s\n",
        static_cast<unsigned long long>(r.connect_errors),
        static_cast<unsigned long long>(r.resets),
        static_cast<unsigned long long>(r.closed_by_server), r.first_error);
  }
  std::cout << std::flush;
}

int RunClient(const ClientFlags& flags) {
  auto options = flags.Build();
  if (!options.ok()) return UsageError(options.status());
  const uint64_t limit = net::RaiseOpenFileLimit();
  if (static_cast<uint64_t>(options->connections) + 64 > limit) {
    return UsageError(
        absl::InvalidArgumentError(absl::StrCat("--connections ", options->connections,
                                                " exceeds this process's open-file "
                                                "limit (",
                                                limit, "); raise it with ulimit -n")));
  }
  std::atomic<bool> cancel{false};
  SignalWatcher signals([&] { cancel = true; });
  const bool json = flags.output == "json";
  const bool rr = options->mode == traffic::TcpClientMode::kRequestResponse;
  if (!json) {
    std::cout << "connecting to " << options->server.ToString() << ", " << options->connections
              << " connection(s), " << traffic::TcpClientModeName(options->mode)
              << (options->reverse ? " reverse" : "") << std::endl;
  }
  auto report = traffic::RunTcpClient(
      *options, &cancel,
      json ? traffic::IntervalCallback{} : [rr](const auto& s) { PrintIntervalText(s, rr); });
  if (!report.ok()) {
    std::cerr << "labnet: tcp-client: " << report.status().message() << "\n";
    return 1;
  }
  if (json) {
    std::cout << traffic::TcpClientReportToJson(*report).dump(2) << std::endl;
  } else {
    PrintReportText(*report);
  }
  return report->interrupted ? 130 : 0;
}

}  // namespace

void AddTcpCommands(CLI::App& app, std::function<int()>* run) {
  auto server_flags = std::make_shared<ServerFlags>();
  CLI::App* server = app.add_subcommand(
      "tcp-server", "Run a TCP traffic server: echo, sink (discard) or source (send)");
  server->add_option("--bind", server_flags->bind, "address to listen on")->capture_default_str();
  server->add_option("--port", server_flags->port, "TCP port (0 picks a free one)")
      ->capture_default_str();
  server->add_option("--port-range", server_flags->port_range,
                     "FIRST-LAST: listen on the first free port of the range");
  server->add_option("--mode", server_flags->mode, "echo, sink or source")
      ->capture_default_str()
      ->check(CLI::IsMember({"echo", "sink", "source"}));
  server
      ->add_option("--engine", server_flags->engine,
                   "epoll (event loops) or threads (a bounded worker pool)")
      ->capture_default_str()
      ->check(CLI::IsMember({"epoll", "threads"}));
  server
      ->add_option("--threads", server_flags->threads,
                   "event loops (epoll, default 1) or workers (threads, default 256; also its cap)")
      ->capture_default_str();
  server
      ->add_option("--max-connections", server_flags->max_connections,
                   "open connections at most; beyond, new ones are closed at once")
      ->capture_default_str();
  server->add_flag("--insecure", server_flags->insecure,
                   "allow listening beyond loopback (no authentication)");
  server->add_option("--duration", server_flags->duration, "stop after this long (0: on Ctrl-C)")
      ->capture_default_str();
  server
      ->add_option("--output", server_flags->output,
                   "text, or json: a 'listening' line at start, counters at exit")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  server->callback(
      [run, server_flags] { *run = [server_flags] { return RunServer(*server_flags); }; });

  auto client_flags = std::make_shared<ClientFlags>();
  CLI::App* client = app.add_subcommand(
      "tcp-client", "Measure a TCP server: request/response rate and latency, or bulk throughput");
  client->add_option("--server", client_flags->server, "HOST:PORT of a labnet tcp-server")
      ->required();
  client
      ->add_option("--mode", client_flags->mode,
                   "rr (request/response against an echo server) or bulk (to a sink; "
                   "--reverse: from a source)")
      ->capture_default_str()
      ->check(CLI::IsMember({"rr", "bulk"}));
  client->add_option("--connections,-P", client_flags->connections, "connections in parallel")
      ->capture_default_str();
  client
      ->add_option("--threads", client_flags->threads,
                   "threads the connections are spread over (<= connections)")
      ->capture_default_str();
  CLI::Option* duration =
      client->add_option("--duration,-t", client_flags->duration, "how long to run")
          ->capture_default_str();
  client->add_option("--requests", client_flags->requests,
                     "rr: stop after this many requests in all (alone: no time limit)");
  client->add_option("--length,-l", client_flags->length,
                     "rr: request size (default 64); bulk: write size (default 128K)");
  client->add_flag("--reverse,-R", client_flags->reverse,
                   "bulk: receive from a source server instead of sending");
  client
      ->add_option("--connect-timeout", client_flags->connect_timeout,
                   "how long each connect may take")
      ->capture_default_str();
  client
      ->add_option("--interval,-i", client_flags->interval,
                   "report every this long (0: only the end)")
      ->capture_default_str();
  client->add_option("--output", client_flags->output, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  client->callback([run, client_flags, duration] {
    client_flags->duration_given = duration->count() > 0;
    *run = [client_flags] { return RunClient(*client_flags); };
  });
}

}  // namespace lab::cli

#include "labnet/udp_commands.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "dataplane/traffic/udp_client.h"
#include "dataplane/traffic/udp_flow.h"
#include "dataplane/traffic/udp_server.h"
#include "labnet/cli_util.h"
#include "nlohmann/json.hpp"

namespace lab::cli {

namespace {

constexpr int64_t kHourNs = 3'600'000'000'000;

// ---------------------------------------------------------------------------------------------
// udp-server

struct ServerFlags {
  std::string bind = "127.0.0.1";
  uint16_t port = 5202;
  std::string port_range;
  std::string mode = "echo";
  bool insecure = false;
  std::string duration = "0";
  std::size_t batch = 64;
  std::string output = "text";

  absl::StatusOr<traffic::UdpServerOptions> Build() const {
    traffic::UdpServerOptions o;
    LAB_ASSIGN_OR_RETURN(o.mode, traffic::ParseUdpServerMode(mode));
    auto address = net::SocketAddress::Resolve(bind, port);
    if (!address.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--bind '", bind, "': ", address.status().message()));
    }
    o.listen = *address;
    if (!port_range.empty()) {
      LAB_ASSIGN_OR_RETURN(const auto range, ParsePortRange("port-range", port_range));
      o.port_range = traffic::UdpPortRange{range.first, range.second};
    }
    o.allow_non_loopback = insecure;
    LAB_RETURN_IF_ERROR(CheckRange("batch", static_cast<double>(batch), 1, 1024));
    o.batch_size = batch;
    return o;
  }
};

void PrintServerText(const traffic::UdpTrafficServer& server) {
  const traffic::UdpServerCounters c = server.counters();
  uint64_t malformed = 0;
  for (uint64_t m : c.malformed) malformed += m;
  std::cout << "udp server stopped: received " << c.received << " datagrams ("
            << FormatByteCount(static_cast<double>(c.bytes_received)) << "), echoed " << c.echoed
            << ", send errors " << c.send_errors << ", malformed " << malformed << ", truncated "
            << c.truncated << "\n";
  if (server.mode() == traffic::UdpServerMode::kSink) {
    for (const traffic::UdpFlowStats& f : server.flows()) {
      std::cout << absl::StrFormat(
          "  flow %u from %s: received %u, lost %u, out of order %u, duplicates %u, jitter "
          "%.3f ms\n",
          f.flow_id, f.peer.ToString(), f.received, f.lost_packets, f.out_of_order, f.duplicates,
          f.jitter_ms);
    }
  }
  std::cout << std::flush;
}

int RunServer(const ServerFlags& flags) {
  auto options = flags.Build();
  if (!options.ok()) return UsageError(options.status());
  auto duration_ns = ParseDurationNs("duration", flags.duration, 0, 24 * 365 * kHourNs);
  if (!duration_ns.ok()) return UsageError(duration_ns.status());

  std::mutex mu;
  std::condition_variable cv;
  bool signalled = false;
  SignalWatcher signals([&] {  // before the server's thread starts
    std::lock_guard<std::mutex> lock(mu);
    signalled = true;
    cv.notify_all();
  });
  auto server = traffic::UdpTrafficServer::Start(*options);
  if (!server.ok()) {
    std::cerr << "labnet: cannot start the UDP server: " << server.status().message() << "\n";
    return absl::IsInvalidArgument(server.status()) ? 2 : 1;
  }
  const net::SocketAddress& local = (*server)->local_address();
  const std::string mode(traffic::UdpServerModeName((*server)->mode()));
  if (flags.output == "json") {
    std::cout << nlohmann::json{{"event", "listening"},
                                {"address", local.HostString()},
                                {"port", local.port()},
                                {"mode", mode}}
                     .dump()
              << std::endl;
  } else {
    std::cout << "udp server (" << mode << ") listening on " << local.ToString()
              << "; Ctrl-C to stop" << std::endl;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(*duration_ns);
  {
    std::unique_lock<std::mutex> lock(mu);
    while (!signalled && (*server)->status().ok()) {
      if (*duration_ns > 0 && std::chrono::steady_clock::now() >= deadline) break;
      cv.wait_for(lock, std::chrono::milliseconds(200));
    }
  }
  (*server)->Stop();
  if (flags.output == "json") {
    nlohmann::json stopped = {{"event", "stopped"}};
    stopped.update(traffic::UdpServerStatsToJson(**server));
    std::cout << stopped.dump() << std::endl;
  } else {
    PrintServerText(**server);
  }
  if (absl::Status s = (*server)->status(); !s.ok()) {
    std::cerr << "labnet: UDP server failed: " << s.message() << "\n";
    return 1;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// udp-client

struct ClientFlags {
  std::string server;
  std::string length = "64";
  std::string rate;
  std::string bitrate;
  int64_t count = 0;
  std::string duration = "10s";
  bool duration_given = false;
  std::string timeout = "1s";
  bool one_way = false;
  std::string interval = "1s";
  int64_t batch = 64;
  std::string output = "text";

  absl::StatusOr<traffic::UdpClientOptions> Build() const {
    traffic::UdpClientOptions o;
    LAB_ASSIGN_OR_RETURN(o.server, net::SocketAddress::ParseHostPort(server));
    LAB_ASSIGN_OR_RETURN(const uint64_t bytes, ParseBytes("length", length, traffic::kUdpHeaderSize,
                                                          traffic::kUdpMaxDatagramSize));
    o.length = static_cast<std::size_t>(bytes);
    if (!rate.empty()) {
      LAB_ASSIGN_OR_RETURN(const double pps, ParseRate("rate", rate));
      LAB_RETURN_IF_ERROR(CheckRange("rate", pps, 0, 1e9));
      o.rate_pps = pps;
    }
    if (!bitrate.empty()) {
      LAB_ASSIGN_OR_RETURN(const double bps, ParseRate("bitrate", bitrate));
      LAB_RETURN_IF_ERROR(CheckRange("bitrate", bps, 0, 1e12));
      o.rate_pps = bps / (static_cast<double>(o.length) * 8.0);
    }
    if (count < 0 || count > int64_t{1} << 53) {
      return absl::InvalidArgumentError(
          absl::StrCat("--count must be in [0, 9007199254740992], got ", count));
    }
    o.count = static_cast<uint64_t>(count);
    LAB_ASSIGN_OR_RETURN(o.duration_ns,
                         ParseDurationNs("duration", duration, 0, 24 * 365 * kHourNs));
    // --count alone runs until the count is sent (like iperf3's -n over -t).
    if (o.count > 0 && !duration_given) o.duration_ns = 0;
    LAB_ASSIGN_OR_RETURN(o.timeout_ns, ParseDurationNs("timeout", timeout, 0, kHourNs));
    LAB_ASSIGN_OR_RETURN(o.interval_ns, ParseDurationNs("interval", interval, 0, kHourNs));
    LAB_RETURN_IF_ERROR(CheckRange("batch", static_cast<double>(batch), 1, 1024));
    o.batch_size = static_cast<std::size_t>(batch);
    o.one_way = one_way;
    if (o.one_way && !o.rate_pps) {
      return absl::InvalidArgumentError(
          "--one-way needs --rate or --bitrate (--rate 0: as fast as possible)");
    }
    return o;
  }
};

void PrintInterval(const traffic::IntervalSample& s, bool one_way) {
  std::string line = absl::StrFormat(
      "[%6.2f-%6.2f s]  sent %u (%s, %s)", s.start_s, s.end_s, s.messages_sent,
      FormatByteCount(static_cast<double>(s.bytes_sent)),
      FormatBitRate(s.seconds() > 0 ? static_cast<double>(s.bytes_sent) * 8.0 / s.seconds() : 0));
  if (!one_way) {
    absl::StrAppend(&line, "  echoed ", s.messages_received, "  rtt p50 ",
                    FormatMicros(s.latency_p50_us), " us p99 ", FormatMicros(s.latency_p99_us),
                    " us  jitter ", FormatMicros(s.jitter_us), " us");
  }
  if (s.errors > 0) absl::StrAppend(&line, "  errors ", s.errors);
  std::cout << line << std::endl;
}

void PrintClientText(const traffic::UdpClientReport& r) {
  std::cout << absl::StrFormat("udp client -> %s: %s mode, %u-byte datagrams", r.server.ToString(),
                               r.mode, r.length);
  if (r.rate_pps) {
    std::cout << (*r.rate_pps > 0 ? absl::StrFormat(", %.6g pps target", *r.rate_pps)
                                  : std::string(", as fast as possible"));
  }
  if (r.one_way) std::cout << ", one way";
  std::cout << "\n";
  std::cout << absl::StrFormat("sent     %u datagrams (%s) in %.3f s: %s, %.6g pps\n", r.sent,
                               FormatByteCount(static_cast<double>(r.bytes_sent)), r.seconds,
                               FormatBitRate(r.bits_per_second), r.packets_per_second);
  if (!r.one_way) {
    std::cout << absl::StrFormat(
        "received %u echoes (%.6g pps); lost %u (%.3f %%), out of order %u, duplicates %u\n",
        r.received, r.received_packets_per_second, r.lost_packets, r.lost_percent, r.out_of_order,
        r.duplicates);
    const stats::Histogram& h = r.latency_us;
    if (h.count() > 0) {
      std::cout << "rtt us   p50 " << FormatMicros(h.Quantile(0.5)) << "  p99 "
                << FormatMicros(h.Quantile(0.99)) << "  p99.9 " << FormatMicros(h.Quantile(0.999))
                << "  min " << FormatMicros(h.min()) << "  max " << FormatMicros(h.max())
                << "  mean " << FormatMicros(h.mean()) << "\n";
    }
    std::cout << absl::StrFormat("jitter   %.3f ms\n", r.jitter_ms);
  } else {
    std::cout << "(one way: the server reports what arrived)\n";
  }
  if (r.errors > 0 || r.skipped_slots > 0) {
    std::cout << "errors   " << r.errors << " (send " << r.send_errors << ", malformed echoes "
              << r.errors - r.send_errors << "); skipped slots " << r.skipped_slots << "\n";
  }
  std::cout << std::flush;
}

int RunClient(const ClientFlags& flags) {
  auto options = flags.Build();
  if (!options.ok()) return UsageError(options.status());
  std::atomic<bool> cancel{false};
  SignalWatcher signals([&] { cancel = true; });  // before any thread starts
  const bool text = flags.output == "text";
  traffic::IntervalCallback on_interval;
  if (text) {
    on_interval = [one_way = options->one_way](const traffic::IntervalSample& s) {
      PrintInterval(s, one_way);
    };
  }
  auto report = traffic::RunUdpClient(*options, RealtimeClock::Get(), &cancel, on_interval);
  if (!report.ok()) {
    std::cerr << "labnet: udp-client failed: " << report.status().message() << "\n";
    return absl::IsInvalidArgument(report.status()) ? 2 : 1;
  }
  if (text) {
    PrintClientText(*report);
  } else {
    std::cout << traffic::UdpClientReportToJson(*report).dump(2) << std::endl;
  }
  if (report->interrupted) {
    std::cerr << "labnet: interrupted; the report covers the datagrams sent so far\n";
    return 130;
  }
  if (!options->one_way && report->sent > 0 && report->received == 0) {
    std::cerr << "labnet: no echo from " << options->server.ToString()
              << "; is `labnet udp-server --mode echo` running there?\n";
    return 1;
  }
  return 0;
}

}  // namespace

void AddUdpCommands(CLI::App& app, std::function<int()>* run) {
  auto server_flags = std::make_shared<ServerFlags>();
  CLI::App* server = app.add_subcommand(
      "udp-server", "Run a UDP traffic server: echo datagrams back, or sink and account them");
  server->add_option("--bind", server_flags->bind, "address to listen on")->capture_default_str();
  CLI::Option* port =
      server->add_option("--port", server_flags->port, "UDP port (0 picks a free one)")
          ->capture_default_str();
  CLI::Option* range = server->add_option("--port-range", server_flags->port_range,
                                          "FIRST-LAST: listen on the first free port of these");
  port->excludes(range);
  server->add_option("--mode", server_flags->mode, "echo (send every datagram back) or sink")
      ->capture_default_str()
      ->check(CLI::IsMember({"echo", "sink"}));
  server->add_flag("--insecure", server_flags->insecure,
                   "allow listening beyond loopback (no authentication)");
  server
      ->add_option("--duration", server_flags->duration,
                   "stop after this long, e.g. 30s (0: run until SIGINT/SIGTERM)")
      ->capture_default_str();
  server->add_option("--batch", server_flags->batch, "datagrams per recvmmsg/sendmmsg")
      ->capture_default_str();
  server
      ->add_option("--output", server_flags->output,
                   "text, or json: a 'listening' line at start, a 'stopped' line at exit")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  server->callback(
      [run, server_flags] { *run = [server_flags] { return RunServer(*server_flags); }; });

  auto client_flags = std::make_shared<ClientFlags>();
  CLI::App* client = app.add_subcommand(
      "udp-client", "Send UDP traffic to a udp-server and report loss, latency and jitter");
  client->add_option("--server", client_flags->server, "udp-server HOST:PORT")->required();
  client
      ->add_option("--length", client_flags->length,
                   "bytes per datagram, header included: 28 to 65507 (K = 1024)")
      ->capture_default_str();
  CLI::Option* rate = client->add_option(
      "--rate", client_flags->rate,
      "datagrams per second, e.g. 100k (0: as fast as possible; unset: one at a time, each "
      "waiting for its echo)");
  CLI::Option* bitrate =
      client->add_option("--bitrate", client_flags->bitrate,
                         "bits per second of datagrams, e.g. 100M (like iperf3 -b)");
  rate->excludes(bitrate);
  client->add_option("--count", client_flags->count, "datagrams to send (0: no limit)")
      ->capture_default_str();
  CLI::Option* duration =
      client->add_option("--duration", client_flags->duration, "how long to send (0: no limit)")
          ->capture_default_str();
  client
      ->add_option("--timeout", client_flags->timeout,
                   "how long to wait for echoes (each, one at a time; after the last send, with "
                   "a rate)")
      ->capture_default_str();
  client->add_flag("--one-way", client_flags->one_way,
                   "the server is a sink: send only, expect no echoes (needs a rate)");
  client->add_option("--interval", client_flags->interval, "report interval (0: off)")
      ->capture_default_str();
  client->add_option("--batch", client_flags->batch, "datagrams per sendmmsg/recvmmsg")
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

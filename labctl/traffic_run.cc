#include "labctl/traffic_run.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "labnet/cli_util.h"

namespace lab::labctl {

namespace {

constexpr int64_t kDayNs = 86'400'000'000'000;

absl::Status ApplyCommon(const TrafficFlags& f, lab::v1::ExperimentSpec& spec, int64_t* duration_ns,
                         int64_t* interval_ns, uint32_t* clients, std::string* server_agent) {
  LAB_ASSIGN_OR_RETURN(*duration_ns, cli::ParseDurationNs("duration", f.duration, 0, kDayNs, true));
  LAB_ASSIGN_OR_RETURN(*interval_ns,
                       cli::ParseDurationNs("interval", f.interval, 10'000'000, kDayNs));
  if (f.clients && (*f.clients < 1 || *f.clients > 256)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--clients must be in [1, 256], got ", *f.clients));
  }
  *clients = f.clients ? static_cast<uint32_t>(*f.clients) : 0;
  if (f.server_agent) {
    if (f.server_agent->empty()) {
      return absl::InvalidArgumentError("--server-agent needs an agent name (see labctl agents)");
    }
    *server_agent = *f.server_agent;
  }
  if (f.name) spec.set_name(*f.name);
  return absl::OkStatus();
}

std::string Number(const nlohmann::json& j, const char* key, const char* format = "%.1f") {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return "-";
  return absl::StrFormat(format, j[key].get<double>());
}

}  // namespace

absl::StatusOr<lab::v1::RunExperimentRequest> BuildTcpRunRequest(const TcpRunFlags& f) {
  lab::v1::RunExperimentRequest request;
  lab::v1::TcpExperiment& tcp = *request.mutable_spec()->mutable_tcp();
  int64_t duration_ns = 0, interval_ns = 0;
  uint32_t clients = 0;
  std::string server_agent;
  LAB_RETURN_IF_ERROR(ApplyCommon(f.common, *request.mutable_spec(), &duration_ns, &interval_ns,
                                  &clients, &server_agent));
  if (f.mode != "rr" && f.mode != "bulk") {
    return absl::InvalidArgumentError(
        absl::StrCat("--mode must be rr (request/response) or bulk, got '", f.mode, "'"));
  }
  if (f.reverse && f.mode != "bulk") {
    return absl::InvalidArgumentError("--reverse applies to --mode bulk only");
  }
  if (f.connections < 1 || f.connections > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--connections must be in [1, 100000], got ", f.connections));
  }
  if (f.threads < 1 || f.threads > f.connections) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads must be in [1, --connections], got ", f.threads));
  }
  if (f.engine != "epoll" && f.engine != "threads") {
    return absl::InvalidArgumentError(
        absl::StrCat("--engine must be epoll or threads, got '", f.engine, "'"));
  }
  if (f.max_connections < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-connections must be >= 1, got ", f.max_connections));
  }
  lab::v1::TcpServerTask& server = *tcp.mutable_server();
  server.set_mode(f.mode == "rr" ? "echo" : f.reverse ? "source" : "sink");
  server.set_engine(f.engine);
  server.set_threads(static_cast<uint32_t>(std::max(0, f.server_threads)));
  server.set_max_connections(static_cast<uint32_t>(f.max_connections));
  lab::v1::TcpClientTask& client = *tcp.mutable_client();
  client.set_mode(f.mode);
  client.set_reverse(f.reverse);
  client.set_connections(static_cast<uint32_t>(f.connections));
  client.set_threads(static_cast<uint32_t>(f.threads));
  client.set_duration_ns(duration_ns);
  client.set_interval_ns(interval_ns);
  if (f.common.length) {
    LAB_ASSIGN_OR_RETURN(
        const uint64_t length,
        cli::ParseBytes("length", *f.common.length, 1, f.mode == "rr" ? 64 * 1024 : 16u << 20));
    client.set_length(length);
  }
  tcp.set_clients(clients);
  tcp.set_server_agent(server_agent);
  return request;
}

absl::StatusOr<lab::v1::RunExperimentRequest> BuildUdpRunRequest(const UdpRunFlags& f) {
  lab::v1::RunExperimentRequest request;
  lab::v1::UdpExperiment& udp = *request.mutable_spec()->mutable_udp();
  int64_t duration_ns = 0, interval_ns = 0;
  uint32_t clients = 0;
  std::string server_agent;
  LAB_RETURN_IF_ERROR(ApplyCommon(f.common, *request.mutable_spec(), &duration_ns, &interval_ns,
                                  &clients, &server_agent));
  lab::v1::UdpClientTask& client = *udp.mutable_client();
  if (f.rate) {
    LAB_ASSIGN_OR_RETURN(const double rate, cli::ParseRate("rate", *f.rate));
    if (rate > 1e9) {
      return absl::InvalidArgumentError(absl::StrCat("--rate must be at most 1G, got ", *f.rate));
    }
    client.set_rate_pps(rate);
  } else if (f.one_way) {
    return absl::InvalidArgumentError(
        "--one-way needs --rate: without echoes there is nothing to wait for between sends");
  }
  if (f.common.length) {
    LAB_ASSIGN_OR_RETURN(const uint64_t length,
                         cli::ParseBytes("length", *f.common.length, 28, 65507));
    client.set_length(length);
  }
  LAB_ASSIGN_OR_RETURN(const int64_t timeout_ns,
                       cli::ParseDurationNs("timeout", f.timeout, 0, kDayNs, true));
  client.set_timeout_ns(timeout_ns);
  client.set_duration_ns(duration_ns);
  client.set_interval_ns(interval_ns);
  client.set_one_way(f.one_way);
  udp.mutable_server()->set_mode(f.one_way ? "sink" : "echo");
  udp.set_clients(clients);
  udp.set_server_agent(server_agent);
  return request;
}

bool IsTrafficRun(const std::vector<nlohmann::json>& clients) {
  for (const nlohmann::json& c : clients) {
    const std::string scheme = c.value("scheme", "");
    if (absl::StartsWith(scheme, "tcp") || absl::StartsWith(scheme, "udp")) return true;
  }
  return false;
}

std::string FormatTrafficTable(const std::vector<nlohmann::json>& clients) {
  std::string out =
      absl::StrFormat("%-22s %-12s %-9s %16s %12s %10s %10s %10s %10s\n", "client", "agent",
                      "state", "throughput", "rate", "p50 us", "p99 us", "p999 us", "errors");
  for (const nlohmann::json& c : clients) {
    const bool udp = absl::StartsWith(c.value("scheme", ""), "udp");
    const nlohmann::json latency =
        c.contains("latency_us") ? c["latency_us"] : nlohmann::json::object();
    std::string rate = "-";
    std::string errors = "-";
    if (udp) {
      if (c.contains("packets_per_second")) rate = Number(c, "packets_per_second", "%.0f pkt/s");
      if (c.contains("lost_percent") && c["lost_percent"].is_number()) {
        errors = absl::StrFormat("%.2f%% lost", c["lost_percent"].get<double>());
      } else if (c.contains("errors")) {
        errors = Number(c, "errors", "%.0f");
      }
    } else {
      if (c.contains("requests_per_second") && c.value("mode", "") == "rr") {
        rate = Number(c, "requests_per_second", "%.0f req/s");
      }
      if (c.contains("errors")) errors = Number(c, "errors", "%.0f");
    }
    const std::string throughput = c.contains("bits_per_second") && c["bits_per_second"].is_number()
                                       ? cli::FormatBitRate(c["bits_per_second"].get<double>())
                                       : "-";
    out += absl::StrFormat("%-22s %-12s %-9s %16s %12s %10s %10s %10s %10s\n",
                           c.value("task_id", "?"), c.value("agent", "?"), c.value("state", "?"),
                           throughput, rate, Number(latency, "p50"), Number(latency, "p99"),
                           Number(latency, "p999"), errors);
  }
  return out;
}

}  // namespace lab::labctl

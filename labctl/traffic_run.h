// `labctl run tcp` and `labctl run udp`: TCP and UDP traffic experiments (a server on one
// agent, clients on the others), and the summary table of their clients.
#ifndef LABCTL_TRAFFIC_RUN_H_
#define LABCTL_TRAFFIC_RUN_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lab/v1/controller.pb.h"
#include "nlohmann/json.hpp"

namespace lab::labctl {

// Flags shared by both commands; an empty optional was not given.
struct TrafficFlags {
  std::optional<int> clients;  // client tasks (default: one per agent but the server's)
  std::string duration = "10s";
  std::string interval = "1s";  // per-interval samples
  std::optional<std::string> length;
  std::optional<std::string> server_agent;
  std::optional<std::string> name;
};

struct TcpRunFlags {
  TrafficFlags common;
  std::string mode = "rr";  // rr | bulk
  bool reverse = false;
  int connections = 1;  // per client
  int threads = 1;      // per client
  std::string engine = "epoll";
  int server_threads = 0;
  int max_connections = 10000;
};

struct UdpRunFlags {
  TrafficFlags common;
  std::optional<std::string> rate;  // packets/s with k/M/G; unset: stop-and-wait
  bool one_way = false;             // the server is a sink
  std::string timeout = "1s";
};

// The requests, validated: InvalidArgument names the flag.
absl::StatusOr<lab::v1::RunExperimentRequest> BuildTcpRunRequest(const TcpRunFlags& flags);
absl::StatusOr<lab::v1::RunExperimentRequest> BuildUdpRunRequest(const UdpRunFlags& flags);

// True when the summary's clients are traffic clients (their scheme is tcp-… or udp-…).
bool IsTrafficRun(const std::vector<nlohmann::json>& clients);
// One row per client: agent, state, throughput, rate, latency p50/p99/p999, errors or loss.
std::string FormatTrafficTable(const std::vector<nlohmann::json>& clients);

}  // namespace lab::labctl

#endif  // LABCTL_TRAFFIC_RUN_H_

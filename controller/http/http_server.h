// The controller's HTTP side: the static dashboard (web/), the JSON API under /api/v1/, a
// Server-Sent Events stream per running experiment, and /metrics (docs/http-api.md).
//
// Everything is read from the ResultsStore (the live stream polls it), so the HTTP side shows
// exactly what is stored and keeps working across controller restarts. Each open event stream
// holds one of the server's threads for its lifetime (DashboardOptions::threads bounds them).
#ifndef CONTROLLER_HTTP_HTTP_SERVER_H_
#define CONTROLLER_HTTP_HTTP_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "controller/http/metrics.h"
#include "controller/registry/agent_registry.h"
#include "controller/service/experiment_runner.h"
#include "controller/store/results_store.h"
#include "spdlog/logger.h"

namespace lab::controller {

struct DashboardOptions {
  std::string host = "127.0.0.1";  // an IP address or "localhost"
  int port = 8080;                 // 0: any free port
  // Allow a host beyond loopback (plain HTTP, no TLS). Without it, requests must also name a
  // loopback host in their Host header (403 otherwise): a web page elsewhere cannot read the
  // API through DNS rebinding.
  bool insecure = false;
  // The folder with index.html (web/); empty or missing: only the API, and / explains why.
  std::string web_root;
  int64_t poll_interval_ns = 250'000'000;          // the live stream's store polls
  int64_t keepalive_interval_ns = 15'000'000'000;  // comment lines on a quiet stream
  int threads = 32;                                // requests and open streams at once
  // Open event streams at most (each holds a thread); beyond, /events answers 503. Keep it
  // below `threads`, so that plain requests always find one.
  int max_streams = 24;
  std::size_t default_max_points = 5000;  // per task, when the query gives none
};

// The web root to use when none is given: $LAB_WEB_ROOT, else the first of
// <dir of this executable>/../../web (a build tree), <dir>/../share/lab/web (an install) and
// ./web that holds an index.html; "" when none does.
std::string DefaultWebRoot();

class DashboardServer {
 public:
  // The references must outlive the server.
  DashboardServer(DashboardOptions options, const ResultsStore& store,
                  const ExperimentRunner& runner, const AgentRegistry& registry,
                  ControllerMetrics& metrics, std::shared_ptr<spdlog::logger> logger);
  ~DashboardServer();  // Stop()
  DashboardServer(const DashboardServer&) = delete;
  DashboardServer& operator=(const DashboardServer&) = delete;

  // Binds and starts serving on a thread of its own; returns the bound port.
  // InvalidArgument for a host beyond loopback without `insecure` (the message names the
  // flag); Unavailable when the port cannot be bound (in use).
  absl::StatusOr<int> Start();
  // Ends open event streams and stops serving; idempotent.
  void Stop();
  // "http://HOST:PORT/" once started.
  std::string BaseUrl() const;
  // The bound port once started, else 0.
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lab::controller

#endif  // CONTROLLER_HTTP_HTTP_SERVER_H_

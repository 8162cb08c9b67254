// lab-controller: the registry of agents, the experiment runner, the results store, and the
// dashboard with its HTTP API.
//
//   lab-controller --listen 127.0.0.1:50051 --http 127.0.0.1:8080 --db .lab/results.db
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "common/clock.h"
#include "common/logging.h"
#include "controller/http/http_server.h"
#include "controller/http/metrics.h"
#include "controller/registry/agent_registry.h"
#include "controller/service/agent_hub.h"
#include "controller/service/experiment_runner.h"
#include "controller/service/services.h"
#include "controller/store/results_store.h"
#include "grpcpp/server_builder.h"
#include "labnet/cli_util.h"
#include "nlohmann/json.hpp"
#include "rpc/credentials.h"

int main(int argc, char** argv) {
  CLI::App app{"lab-controller: runs experiments across the lab's agents and keeps the results"};
  std::string listen = "127.0.0.1:50051";
  std::string db = ".lab/results.db";
  std::string output = "text";
  std::string http = "127.0.0.1:8080";
  std::string web_root = lab::controller::DefaultWebRoot();
  lab::rpc::TransportOptions transport;
  lab::cli::LogFlags log;
  app.add_option("--listen", listen, "gRPC HOST:PORT for agents and labctl (port 0: any)")
      ->capture_default_str();
  app.add_option("--http", http, "dashboard and API HOST:PORT (port 0: any; '': no HTTP)")
      ->capture_default_str();
  app.add_option("--web-root", web_root, "the dashboard's files (the repository's web/)")
      ->capture_default_str();
  std::string dashboard_url;
  app.add_option("--dashboard-url", dashboard_url,
                 "the dashboard's address as users open it, when not http://HOST:PORT/ of --http "
                 "(behind a published port or a proxy)");
  app.add_flag("--insecure", transport.insecure,
               "allow plaintext gRPC and HTTP beyond loopback (trusted networks only)");
  app.add_option("--db", db, "SQLite results file (created with its directory)")
      ->capture_default_str();
  app.add_option("--output", output, "text, or json: a 'listening' line when ready")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  log.Add(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!log.Apply("lab-controller")) return 2;
  auto logger = lab::ComponentLogger("controller");
  // Signals first: every thread started later (gRPC's included) inherits the blocked mask.
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  grpc::Server* running_server = nullptr;  // guarded by mu
  lab::cli::SignalWatcher signals([&] {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
    cv.notify_all();
    if (running_server != nullptr) {
      running_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    }
  });
  auto credentials = lab::rpc::ServerCredentialsFor(listen, transport);
  if (!credentials.ok()) {
    std::cerr << "lab-controller: " << credentials.status().message() << "\n";
    return 2;
  }
  if (const auto dir = std::filesystem::path(db).parent_path(); !dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
  }
  auto store = lab::controller::ResultsStore::Open(db);
  if (!store.ok()) {
    std::cerr << "lab-controller: " << store.status().message() << "\n";
    return 1;
  }
  const lab::Clock& clock = lab::RealtimeClock::Get();
  if (auto interrupted = (*store)->MarkUnfinishedInterrupted(clock.NowNs());
      interrupted.ok() && *interrupted > 0) {
    logger->warn("{} experiment(s) were running when the controller stopped: marked interrupted",
                 *interrupted);
  }
  lab::controller::AgentRegistry registry({}, clock);
  lab::controller::AgentHub hub(registry, logger);
  lab::controller::ExperimentRunner runner({}, hub, registry, **store, clock, logger);
  hub.SetListener(&runner);
  lab::controller::ControllerMetrics metrics;
  runner.SetSampleObserver(&metrics);
  std::unique_ptr<lab::controller::DashboardServer> dashboard;
  if (!http.empty()) {
    const std::size_t colon = http.rfind(':');
    int http_port = -1;
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(http.substr(colon + 1), &http_port) || http_port < 0 ||
        http_port > 65535) {
      std::cerr << "lab-controller: --http must be HOST:PORT (e.g. 127.0.0.1:8080), got '" << http
                << "'\n";
      return 2;
    }
    lab::controller::DashboardOptions options;
    options.host = http.substr(0, colon);
    options.port = http_port;
    options.insecure = transport.insecure;
    options.web_root = web_root;
    dashboard = std::make_unique<lab::controller::DashboardServer>(options, **store, runner,
                                                                   registry, metrics, logger);
    if (auto started = dashboard->Start(); !started.ok()) {
      std::cerr << "lab-controller: " << started.status().message() << "\n";
      return absl::IsInvalidArgument(started.status()) ? 2 : 1;
    }
    if (dashboard_url.empty()) dashboard_url = dashboard->BaseUrl();
    if (dashboard_url.back() != '/') dashboard_url += '/';
    runner.SetDashboardUrl(dashboard_url);
  }
  lab::controller::AgentServiceImpl agent_service(hub);
  lab::controller::LabControllerImpl lab_service(registry, runner, **store);

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, *credentials, &port);
  builder.RegisterService(&agent_service);
  builder.RegisterService(&lab_service);
  // Agents ping every 2 s; accept that, and ping them too, so a vanished agent is noticed.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 2000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 2000);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "lab-controller: cannot listen on " << listen
              << " (in use? try another --listen port)\n";
    return 1;
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  if (output == "json") {
    nlohmann::json line{{"event", "listening"}, {"address", host}, {"port", port}};
    if (dashboard != nullptr) {
      line["http_port"] = dashboard->port();
      line["dashboard"] = dashboard_url;
    }
    std::cout << line.dump() << std::endl;
  } else {
    std::cout << "lab-controller listening on " << host << ":" << port << " (results in " << db
              << ")" << std::endl;
    if (dashboard != nullptr) std::cout << "dashboard: " << dashboard_url << std::endl;
  }
  logger->info("listening on {}:{}, results in {}", host, port, db);

  {
    std::lock_guard<std::mutex> lock(mu);
    running_server = server.get();
    if (stopping) server->Shutdown();
  }
  std::thread reaper([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (!cv.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping; })) {
      lock.unlock();
      hub.Reap();
      lock.lock();
    }
  });
  server->Wait();
  reaper.join();
  if (dashboard != nullptr) dashboard->Stop();
  logger->info("stopped");
  lab::FlushLogs();
  return 0;
}

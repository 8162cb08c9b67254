// The control plane as a user runs it: lab-controller and lab-agent as real processes on
// loopback (port 0), driven through the LabController gRPC API.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "controller/store/results_store.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "lab/v1/controller.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "rpc/credentials.h"
#include "tests/support/subprocess.h"

namespace lab {
namespace {

using namespace std::chrono_literals;
using testing::Subprocess;

class ControlPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("lab-control-plane-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    agents_.clear();
    controller_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartController() {
    controller_ = std::make_unique<Subprocess>(std::vector<std::string>{
        LAB_CONTROLLER_BINARY, "--listen",
        port_ ? "127.0.0.1:" + std::to_string(port_) : std::string("127.0.0.1:0"), "--http",
        "127.0.0.1:0", "--db", (dir_ / "results.db").string(), "--log-dir", "", "--log-level",
        "warn", "--output", "json"});
    ASSERT_TRUE(controller_->started());
    const auto line = controller_->ReadLine(20s);
    ASSERT_TRUE(line.has_value()) << "lab-controller printed no 'listening' line";
    port_ = nlohmann::json::parse(*line)["port"].get<int>();
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
    stub_ = lab::v1::LabController::NewStub(channel_);
  }

  void StartAgent(int k) {
    agents_.push_back(std::make_unique<Subprocess>(std::vector<std::string>{
        LAB_AGENT_BINARY, "--controller", "127.0.0.1:" + std::to_string(port_), "--name",
        "agent-" + std::to_string(k), "--address", "127.0.0." + std::to_string(k + 1), "--log-dir",
        "", "--log-level", "warn"}));
    ASSERT_TRUE(agents_.back()->started());
  }

  // Waits (RPCs with deadlines, no sleeps) until `n` agents are registered.
  void WaitForAgents(std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      grpc::ClientContext context;
      rpc::SetDeadline(context, absl::Seconds(2));
      context.set_wait_for_ready(true);
      lab::v1::ListAgentsResponse response;
      if (stub_->ListAgents(&context, {}, &response).ok() &&
          static_cast<std::size_t>(response.agents_size()) == n) {
        return;
      }
      // Block until the channel changes state or 100 ms pass: a wait with a deadline.
      channel_->WaitForStateChange(channel_->GetState(false),
                                   std::chrono::system_clock::now() + 100ms);
    }
    FAIL() << "fewer than " << n << " agents registered within 20 s";
  }

  static lab::v1::RunExperimentRequest FourSchemes(uint64_t count, int64_t interval_ns) {
    lab::v1::RunExperimentRequest request;
    auto* ts = request.mutable_spec()->mutable_timesync();
    for (auto scheme :
         {lab::v1::SCHEME_RAW, lab::v1::SCHEME_EWMA, lab::v1::SCHEME_KALMAN, lab::v1::SCHEME_PID}) {
      ts->add_clients()->set_scheme(scheme);
    }
    ts->set_count(count);
    ts->set_interval_ns(interval_ns);
    ts->set_offset_ns(25'000'000);
    ts->set_drift_ppm(80);
    return request;
  }

  std::filesystem::path dir_;
  int port_ = 0;
  std::unique_ptr<Subprocess> controller_;
  std::vector<std::unique_ptr<Subprocess>> agents_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<lab::v1::LabController::Stub> stub_;
};

TEST_F(ControlPlaneTest, FourSchemeRunAcrossThreeAgentsAccountsForEveryProbe) {
  ASSERT_NO_FATAL_FAILURE(StartController());
  for (int k = 1; k <= 3; ++k) ASSERT_NO_FATAL_FAILURE(StartAgent(k));
  ASSERT_NO_FATAL_FAILURE(WaitForAgents(3));

  grpc::ClientContext context;
  rpc::SetDeadline(context, absl::Seconds(60));
  auto reader = stub_->RunExperiment(&context, FourSchemes(200, 5'000'000));
  lab::v1::ExperimentEvent event, last;
  int events = 0;
  while (reader->Read(&event)) {
    ++events;
    last = event;
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_TRUE(last.finished());
  EXPECT_GT(events, 2);  // started, progress, finished
  EXPECT_EQ(last.state(), "completed");
  const auto summary = nlohmann::json::parse(last.summary_json());
  ASSERT_EQ(summary["clients"].size(), 4u);
  std::set<std::string> agents;
  for (const auto& c : summary["clients"]) {
    SCOPED_TRACE(c.dump().substr(0, 200));
    EXPECT_EQ(c["state"], "complete");
    EXPECT_EQ(c["sent"], 200);
    EXPECT_EQ(c["received"].get<int>() + c["lost"].get<int>(), 200);
    EXPECT_EQ(c["lost"], 0);
    EXPECT_TRUE(c["truth_known"].get<bool>());  // all agents on this kernel
    EXPECT_FALSE(c["agent_address"].get<std::string>().empty());
    agents.insert(c["agent"].get<std::string>());
  }
  // The four clients go round the two agents without the server, then the server's: each of
  // the three agents runs at least one.
  EXPECT_EQ(agents.size(), 3u);

  // The stored samples account for every answered probe.
  grpc::ClientContext export_context;
  rpc::SetDeadline(export_context, absl::Seconds(10));
  lab::v1::ExportExperimentRequest export_request;
  export_request.set_experiment_id(last.experiment_id());
  export_request.set_format("csv");
  auto chunks = stub_->ExportExperiment(&export_context, export_request);
  std::string csv;
  lab::v1::ExportChunk chunk;
  while (chunks->Read(&chunk)) csv += chunk.data();
  ASSERT_TRUE(chunks->Finish().ok());
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 4 * 200);  // header + samples
}

TEST_F(ControlPlaneTest, AgentKilledMidRunMarksOnlyItsClientsLostWithinFiveSeconds) {
  ASSERT_NO_FATAL_FAILURE(StartController());
  for (int k = 1; k <= 3; ++k) ASSERT_NO_FATAL_FAILURE(StartAgent(k));
  ASSERT_NO_FATAL_FAILURE(WaitForAgents(3));
  // The server goes to agent-1 (first by name); the clients go round agent-2, agent-3,
  // agent-1: agent-2 runs the first and the fourth.
  grpc::ClientContext context;
  rpc::SetDeadline(context, absl::Seconds(90));
  auto reader = stub_->RunExperiment(&context, FourSchemes(2000, 5'000'000));
  lab::v1::ExperimentEvent event, last;
  std::optional<std::chrono::steady_clock::time_point> killed_at;
  std::optional<std::chrono::steady_clock::duration> noticed_after;
  while (reader->Read(&event)) {
    last = event;
    if (!killed_at) {
      const bool started = std::any_of(event.clients().begin(), event.clients().end(),
                                       [](const auto& c) { return c.progress() >= 100; });
      if (started) {
        agents_[1]->Signal(SIGKILL);  // agent-2
        killed_at = std::chrono::steady_clock::now();
      }
    } else if (!noticed_after) {
      int lost = 0;
      for (const auto& c : event.clients()) lost += c.state() == lab::v1::TASK_STATE_LOST;
      if (lost == 2) noticed_after = std::chrono::steady_clock::now() - *killed_at;
    }
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_TRUE(killed_at.has_value()) << "no client made progress";
  ASSERT_TRUE(noticed_after.has_value()) << "the killed agent's clients were never marked lost";
  EXPECT_LT(*noticed_after, 5s);
  EXPECT_EQ(last.state(), "partial");
  const auto summary = nlohmann::json::parse(last.summary_json());
  EXPECT_EQ(summary["state"], "partial");  // stored as such, not left "running"
  for (const auto& c : summary["clients"]) {
    SCOPED_TRACE(c["task_id"].get<std::string>());
    if (c["agent"] == "agent-2") {
      EXPECT_EQ(c["state"], "lost");
      EXPECT_NE(c["detail"].get<std::string>().find("agent-2"), std::string::npos);
    } else {
      EXPECT_EQ(c["state"], "complete");
      EXPECT_EQ(c["sent"], 2000);
      EXPECT_EQ(c["lost"], 0);
    }
  }
}

TEST_F(ControlPlaneTest, FinishedRunSurvivesAControllerRestartAndExportsIdentically) {
  ASSERT_NO_FATAL_FAILURE(StartController());
  ASSERT_NO_FATAL_FAILURE(StartAgent(1));
  ASSERT_NO_FATAL_FAILURE(WaitForAgents(1));
  std::string id;
  {
    grpc::ClientContext context;
    rpc::SetDeadline(context, absl::Seconds(60));
    auto reader = stub_->RunExperiment(&context, FourSchemes(50, 2'000'000));
    lab::v1::ExperimentEvent event;
    while (reader->Read(&event)) id = event.experiment_id();
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(event.state(), "completed");  // one agent runs the server and all clients
  }
  const auto fetch = [&](const std::string& format) {
    grpc::ClientContext context;
    rpc::SetDeadline(context, absl::Seconds(10));
    lab::v1::ExportExperimentRequest request;
    request.set_experiment_id(id);
    request.set_format(format);
    auto reader = stub_->ExportExperiment(&context, request);
    std::string data;
    lab::v1::ExportChunk chunk;
    while (reader->Read(&chunk)) data += chunk.data();
    EXPECT_TRUE(reader->Finish().ok());
    return data;
  };
  const std::string csv = fetch("csv"), json = fetch("json");
  ASSERT_FALSE(json.empty());

  controller_->Signal(SIGTERM);
  ASSERT_EQ(controller_->Wait(20s), 0);
  ASSERT_NO_FATAL_FAILURE(StartController());  // same port, same database

  grpc::ClientContext context;
  rpc::SetDeadline(context, absl::Seconds(10));
  context.set_wait_for_ready(true);
  lab::v1::ListExperimentsResponse list;
  ASSERT_TRUE(stub_->ListExperiments(&context, {}, &list).ok());
  ASSERT_EQ(list.experiments_size(), 1);
  EXPECT_EQ(list.experiments(0).experiment_id(), id);
  EXPECT_EQ(list.experiments(0).state(), "completed");
  EXPECT_EQ(fetch("csv"), csv);
  EXPECT_EQ(fetch("json"), json);
}

TEST_F(ControlPlaneTest, AgentStopsItsTasksWhenTheControllerDiesAndReconnectsToItsReturn) {
  ASSERT_NO_FATAL_FAILURE(StartController());
  ASSERT_NO_FATAL_FAILURE(StartAgent(1));
  ASSERT_NO_FATAL_FAILURE(WaitForAgents(1));
  std::promise<void> progressing;
  std::thread run([&, stub = stub_.get()] {
    grpc::ClientContext context;
    rpc::SetDeadline(context, absl::Seconds(120));
    auto reader = stub->RunExperiment(&context, FourSchemes(100'000, 1'000'000));
    lab::v1::ExperimentEvent event;
    bool told = false;
    while (reader->Read(&event)) {
      const bool moving = std::any_of(event.clients().begin(), event.clients().end(),
                                      [](const auto& c) { return c.progress() > 10; });
      if (moving && !told) {
        progressing.set_value();
        told = true;
      }
    }
    reader->Finish();  // broken by the controller's death
    if (!told) progressing.set_value();
  });
  ASSERT_EQ(progressing.get_future().wait_for(30s), std::future_status::ready);
  controller_->Signal(SIGKILL);
  controller_->Wait(10s);
  run.join();
  // The agent notices, stops its tasks, and says so (warning level).
  bool stopped = false;
  while (auto line = agents_[0]->ReadErrLine(15s)) {
    if (line->find("tasks stopped") != std::string::npos) {
      stopped = true;
      break;
    }
  }
  EXPECT_TRUE(stopped) << "the agent did not report stopping its tasks";
  // A controller back on the same port gets the agent back by itself.
  ASSERT_NO_FATAL_FAILURE(StartController());
  ASSERT_NO_FATAL_FAILURE(WaitForAgents(1));
}

TEST_F(ControlPlaneTest, BadRequestsStartNothingAndSayWhy) {
  ASSERT_NO_FATAL_FAILURE(StartController());
  const auto run = [&](const lab::v1::RunExperimentRequest& request) {
    grpc::ClientContext context;
    rpc::SetDeadline(context, absl::Seconds(10));
    auto reader = stub_->RunExperiment(&context, request);
    lab::v1::ExperimentEvent event;
    while (reader->Read(&event)) {
    }
    return reader->Finish();
  };
  const grpc::Status no_agents = run(FourSchemes(10, 1'000'000));
  EXPECT_EQ(no_agents.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(no_agents.error_message().find("labctl lab up"), std::string::npos);

  ASSERT_NO_FATAL_FAILURE(StartAgent(1));
  ASSERT_NO_FATAL_FAILURE(WaitForAgents(1));
  auto unknown_scheme = FourSchemes(10, 1'000'000);
  unknown_scheme.mutable_spec()->mutable_timesync()->mutable_clients(2)->set_scheme(
      lab::v1::SCHEME_UNSPECIFIED);
  auto zero_count = FourSchemes(0, 1'000'000);
  auto unknown_agent = FourSchemes(10, 1'000'000);
  unknown_agent.mutable_spec()->mutable_timesync()->set_server_agent("agent-9");
  auto bad_alpha = FourSchemes(10, 1'000'000);
  bad_alpha.mutable_spec()
      ->mutable_timesync()
      ->mutable_clients(1)
      ->mutable_params()
      ->set_ewma_alpha(3);
  for (const auto& [request, message] :
       std::vector<std::pair<lab::v1::RunExperimentRequest, std::string>>{
           {unknown_scheme, "client 3: scheme missing or unknown"},
           {zero_count, "count must be > 0"},
           {unknown_agent, "unknown agent 'agent-9'; connected: agent-1"},
           {bad_alpha, "client 2: EWMA alpha must be in (0, 1]"}}) {
    const grpc::Status status = run(request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << message;
    EXPECT_NE(status.error_message().find(message), std::string::npos) << status.error_message();
  }
  grpc::ClientContext context;
  rpc::SetDeadline(context, absl::Seconds(10));
  lab::v1::ListExperimentsResponse list;
  ASSERT_TRUE(stub_->ListExperiments(&context, {}, &list).ok());
  EXPECT_EQ(list.experiments_size(), 0);  // nothing was started
}

// Runs `request` to its end and returns the last event.
lab::v1::ExperimentEvent RunToEnd(lab::v1::LabController::Stub& stub,
                                  const lab::v1::RunExperimentRequest& request) {
  grpc::ClientContext context;
  rpc::SetDeadline(context, absl::Seconds(60));
  auto reader = stub.RunExperiment(&context, request);
  lab::v1::ExperimentEvent event, last;
  while (reader->Read(&event)) last = event;
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  return last;
}

// A TCP experiment: the server on one agent, a client on each of the two others, one sample
// per interval stored, and each client's report kept with its mergeable latency histogram.
TEST_F(ControlPlaneTest, TcpRunPlacesClientsOnTheOtherAgentsAndStoresIntervals) {
  ASSERT_NO_FATAL_FAILURE(StartController());
  for (int k = 1; k <= 3; ++k) ASSERT_NO_FATAL_FAILURE(StartAgent(k));
  ASSERT_NO_FATAL_FAILURE(WaitForAgents(3));
  lab::v1::RunExperimentRequest request;
  auto* tcp = request.mutable_spec()->mutable_tcp();
  tcp->mutable_server()->set_mode("echo");
  tcp->mutable_client()->set_mode("rr");
  tcp->mutable_client()->set_connections(4);
  tcp->mutable_client()->set_threads(2);
  tcp->mutable_client()->set_duration_ns(1'000'000'000);
  tcp->mutable_client()->set_interval_ns(200'000'000);
  const lab::v1::ExperimentEvent last = RunToEnd(*stub_, request);
  ASSERT_TRUE(last.finished());
  EXPECT_EQ(last.state(), "completed") << last.summary_json();
  const auto summary = nlohmann::json::parse(last.summary_json());
  ASSERT_EQ(summary["clients"].size(), 2u);
  std::set<std::string> agents;
  auto store = controller::ResultsStore::Open((dir_ / "results.db").string());
  ASSERT_TRUE(store.ok()) << store.status();
  for (const auto& c : summary["clients"]) {
    SCOPED_TRACE(c.dump().substr(0, 300));
    EXPECT_EQ(c["state"], "complete");
    EXPECT_EQ(c["scheme"], "tcp-rr");
    EXPECT_GT(c["requests"].get<double>(), 100);
    EXPECT_EQ(c["errors"], 0);
    EXPECT_EQ(c["connections"]["established"], 4);
    EXPECT_TRUE(c["latency_us"]["p99"].is_number());
    agents.insert(c["agent"].get<std::string>());
    const auto intervals =
        (*store)->GetIntervals(last.experiment_id(), c["task_id"].get<std::string>());
    ASSERT_TRUE(intervals.ok()) << intervals.status();
    ASSERT_GE(intervals->size(), 4u);
    uint64_t requests = 0;
    for (const auto& i : *intervals) requests += i.messages_received;
    EXPECT_EQ(requests, c["requests"].get<uint64_t>());  // the intervals add up to the report
  }
  EXPECT_EQ(agents.size(), 2u);
  // The server's counters, reported when it was stopped: both clients' connections.
  EXPECT_EQ(summary["server"]["accepted"], 8) << summary.dump().substr(0, 400);
  EXPECT_EQ(summary["server"]["refused"], 0);
  // The export has one row per client per stored interval.
  grpc::ClientContext export_context;
  rpc::SetDeadline(export_context, absl::Seconds(10));
  lab::v1::ExportExperimentRequest export_request;
  export_request.set_experiment_id(last.experiment_id());
  export_request.set_format("csv");
  auto chunks = stub_->ExportExperiment(&export_context, export_request);
  std::string csv;
  lab::v1::ExportChunk chunk;
  while (chunks->Read(&chunk)) csv += chunk.data();
  ASSERT_TRUE(chunks->Finish().ok());
  std::size_t rows = 0;
  for (const auto& c : summary["clients"]) {
    rows += (*store)->GetIntervals(last.experiment_id(), c["task_id"].get<std::string>())->size();
  }
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "experiment_id,task_id,agent,scheme,seq,start_s,end_s,bytes_sent,bytes_received,"
            "messages_sent,messages_received,latency_p50_us,latency_p99_us,latency_max_us,"
            "jitter_us,errors");
  EXPECT_EQ(static_cast<std::size_t>(std::count(csv.begin(), csv.end(), '\n')), 1 + rows);
  // The latency histograms are stored mergeable (one bucket per LatencyEdgesUs edge + 1).
  const auto summaries = (*store)->GetSummaries(last.experiment_id());
  ASSERT_TRUE(summaries.ok());
  int with_histogram = 0;
  for (const auto& s : *summaries) {
    if (!s.bucket_counts.empty()) {
      ++with_histogram;
      EXPECT_EQ(s.bucket_counts.size(), s.edges_us.size() + 1);
    }
  }
  EXPECT_EQ(with_histogram, 2);
}

TEST_F(ControlPlaneTest, UdpRunWithLabctlReportsLossAndLatencyPerClient) {
  ASSERT_NO_FATAL_FAILURE(StartController());
  for (int k = 1; k <= 2; ++k) ASSERT_NO_FATAL_FAILURE(StartAgent(k));
  ASSERT_NO_FATAL_FAILURE(WaitForAgents(2));
  Subprocess labctl({LABCTL_BINARY, "--controller", "127.0.0.1:" + std::to_string(port_),
                     "--output", "json", "run", "udp", "--rate", "2000", "--duration", "1s",
                     "--interval", "250ms", "--length", "100"});
  ASSERT_EQ(labctl.Wait(60s), 0) << labctl.stderr_text();
  const auto summary = nlohmann::json::parse(labctl.stdout_text());
  ASSERT_EQ(summary["clients"].size(), 1u);
  const auto& c = summary["clients"][0];
  EXPECT_EQ(c["state"], "complete");
  EXPECT_EQ(c["scheme"], "udp-paced");
  EXPECT_EQ(c["length"], 100);
  EXPECT_NEAR(c["sent"].get<double>(), 2000, 400);
  EXPECT_EQ(c["received"].get<uint64_t>() + c["lost_packets"].get<uint64_t>(),
            c["sent"].get<uint64_t>());
  EXPECT_TRUE(c["jitter_ms"].is_number());
  EXPECT_TRUE(c["latency_us"]["p50"].is_number());
}

TEST_F(ControlPlaneTest, BadTrafficSpecsStartNothingAndSayWhy) {
  ASSERT_NO_FATAL_FAILURE(StartController());
  ASSERT_NO_FATAL_FAILURE(StartAgent(1));
  ASSERT_NO_FATAL_FAILURE(WaitForAgents(1));
  lab::v1::RunExperimentRequest request;
  auto* tcp = request.mutable_spec()->mutable_tcp();
  tcp->mutable_client()->set_mode("stream");
  tcp->mutable_client()->set_duration_ns(1'000'000'000);
  grpc::ClientContext context;
  rpc::SetDeadline(context, absl::Seconds(10));
  auto reader = stub_->RunExperiment(&context, request);
  lab::v1::ExperimentEvent event;
  EXPECT_FALSE(reader->Read(&event));
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("stream"), std::string::npos) << status.error_message();
  // Nothing was recorded.
  grpc::ClientContext list_context;
  rpc::SetDeadline(list_context, absl::Seconds(10));
  lab::v1::ListExperimentsResponse list;
  ASSERT_TRUE(stub_->ListExperiments(&list_context, {}, &list).ok());
  EXPECT_EQ(list.experiments_size(), 0);
}

}  // namespace
}  // namespace lab

// Both controller services in-process: a gRPC server with no port, an in-process channel.
#include "controller/service/services.h"

#include <memory>
#include <string>

#include "common/logging.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "rpc/credentials.h"

namespace lab::controller {
namespace {

class ServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *ResultsStore::Open(":memory:");
    runner_ = std::make_unique<ExperimentRunner>(RunnerOptions{}, hub_, registry_, *store_, clock_,
                                                 NullLogger());
    hub_.SetListener(runner_.get());
    agent_service_ = std::make_unique<AgentServiceImpl>(hub_);
    lab_service_ = std::make_unique<LabControllerImpl>(registry_, *runner_, *store_);
    grpc::ServerBuilder builder;
    builder.RegisterService(agent_service_.get());
    builder.RegisterService(lab_service_.get());
    server_ = builder.BuildAndStart();
    auto channel = server_->InProcessChannel(grpc::ChannelArguments());
    agents_ = lab::v1::AgentService::NewStub(channel);
    lab_ = lab::v1::LabController::NewStub(channel);
  }
  void TearDown() override { server_->Shutdown(); }

  static lab::v1::AgentMessage Hello(const std::string& name) {
    lab::v1::AgentMessage m;
    m.mutable_hello()->set_name(name);
    m.mutable_hello()->set_timestamping("kernel");
    return m;
  }

  SimulatedClock clock_{1'700'000'000'000'000'000};
  AgentRegistry registry_{{}, clock_};
  AgentHub hub_{registry_, NullLogger()};
  std::unique_ptr<ResultsStore> store_;
  std::unique_ptr<ExperimentRunner> runner_;
  std::unique_ptr<AgentServiceImpl> agent_service_;
  std::unique_ptr<LabControllerImpl> lab_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<lab::v1::AgentService::Stub> agents_;
  std::unique_ptr<lab::v1::LabController::Stub> lab_;
};

TEST_F(ServicesTest, AgentSessionRegistersReceivesTasksAndUnregistersWhenClosed) {
  grpc::ClientContext context;
  auto stream = agents_->Connect(&context);
  ASSERT_TRUE(stream->Write(Hello("agent-1")));
  lab::v1::ControllerMessage welcome;
  ASSERT_TRUE(stream->Read(&welcome));
  ASSERT_TRUE(welcome.has_welcome());
  const std::string id = welcome.welcome().agent_id();
  EXPECT_EQ(id.rfind("agent-1#", 0), 0u);

  // Listed by the LabController service.
  grpc::ClientContext list_context;
  rpc::SetDeadline(list_context, absl::Seconds(5));
  lab::v1::ListAgentsResponse agents;
  ASSERT_TRUE(lab_->ListAgents(&list_context, {}, &agents).ok());
  ASSERT_EQ(agents.agents_size(), 1);
  EXPECT_EQ(agents.agents(0).info().timestamping(), "kernel");

  // A task queued for the agent arrives on its stream.
  lab::v1::ControllerMessage stop;
  stop.mutable_stop_task()->set_task_id("t1");
  ASSERT_TRUE(hub_.Send(id, stop).ok());
  lab::v1::ControllerMessage received;
  ASSERT_TRUE(stream->Read(&received));
  EXPECT_EQ(received.stop_task().task_id(), "t1");

  // A second session with the same name is refused while the first lives.
  grpc::ClientContext twin_context;
  auto twin = agents_->Connect(&twin_context);
  ASSERT_TRUE(twin->Write(Hello("agent-1")));
  lab::v1::ControllerMessage nothing;
  EXPECT_FALSE(twin->Read(&nothing));
  const grpc::Status twin_status = twin->Finish();
  EXPECT_EQ(twin_status.error_code(), grpc::StatusCode::ALREADY_EXISTS);

  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_TRUE(registry_.List().empty());
  EXPECT_EQ(hub_.Send(id, stop).code(), absl::StatusCode::kNotFound);
}

TEST_F(ServicesTest, SessionMustStartWithHello) {
  grpc::ClientContext context;
  auto stream = agents_->Connect(&context);
  lab::v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_running_tasks(0);
  ASSERT_TRUE(stream->Write(heartbeat));
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("Hello"), std::string::npos);
}

TEST_F(ServicesTest, UnknownExperimentIsNotFoundAndBadExportFormatIsInvalid) {
  grpc::ClientContext context;
  rpc::SetDeadline(context, absl::Seconds(5));
  lab::v1::GetExperimentRequest get;
  get.set_experiment_id("ts-nope");
  lab::v1::GetExperimentResponse response;
  const grpc::Status missing = lab_->GetExperiment(&context, get, &response);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(missing.error_message().find("ts-nope"), std::string::npos);

  ASSERT_TRUE(store_->CreateExperiment({"ts-1", "timesync", "{}", "running", 1, 0}).ok());
  grpc::ClientContext export_context;
  rpc::SetDeadline(export_context, absl::Seconds(5));
  lab::v1::ExportExperimentRequest request;
  request.set_experiment_id("ts-1");
  request.set_format("xml");
  auto reader = lab_->ExportExperiment(&export_context, request);
  lab::v1::ExportChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  const grpc::Status bad = reader->Finish();
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("csv or json"), std::string::npos);
}

TEST_F(ServicesTest, RunWithNoAgentsFailsBeforeStartingAnything) {
  grpc::ClientContext context;
  rpc::SetDeadline(context, absl::Seconds(5));
  lab::v1::RunExperimentRequest request;
  auto* ts = request.mutable_spec()->mutable_timesync();
  ts->add_clients()->set_scheme(lab::v1::SCHEME_KALMAN);
  ts->set_count(10);
  ts->set_interval_ns(1'000'000);
  auto reader = lab_->RunExperiment(&context, request);
  lab::v1::ExperimentEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(store_->ListExperiments(10)->empty());
}

}  // namespace
}  // namespace lab::controller

// The labctl binary against a real gRPC server on loopback (port 0) that plays the
// controller: the streaming run end to end, Ctrl-C reaching the server as a cancelled call,
// and an export's bytes through a real stream.
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "lab/v1/controller.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/support/subprocess.h"

namespace lab {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::Subprocess;

const nlohmann::json kSummary = {{"experiment_id", "exp-42"},
                                 {"clients",
                                  {{{"scheme", "kalman"},
                                    {"agent", "agent-1"},
                                    {"state", "complete"},
                                    {"sent", 3},
                                    {"received", 3},
                                    {"lost", 0}}}}};

// Streams one progress event, then either the result or (spec name "hang") nothing until
// the client cancels.
class FakeController final : public lab::v1::LabController::Service {
 public:
  grpc::Status RunExperiment(grpc::ServerContext* context,
                             const lab::v1::RunExperimentRequest* request,
                             grpc::ServerWriter<lab::v1::ExperimentEvent>* writer) override {
    lab::v1::ExperimentEvent event;
    event.set_experiment_id("exp-42");
    event.set_state("running");
    lab::v1::ClientProgress* c = event.add_clients();
    c->set_task_id("t1");
    c->set_scheme(lab::v1::SCHEME_KALMAN);
    c->set_agent("agent-1");
    c->set_state(lab::v1::TASK_STATE_RUNNING);
    c->set_progress(1);
    c->set_total(request->spec().timesync().count());
    writer->Write(event);
    if (request->spec().name() == "hang") {
      std::unique_lock<std::mutex> lock(mu_);
      started_ = true;
      cv_.notify_all();
      // Nothing signals the cv when the call is cancelled: re-check IsCancelled every 10 ms.
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      while (!context->IsCancelled() && std::chrono::steady_clock::now() < deadline) {
        cv_.wait_for(lock, 10ms);
      }
      cancelled_ = context->IsCancelled();
      cv_.notify_all();
      return grpc::Status::CANCELLED;
    }
    event.clear_clients();
    event.set_finished(true);
    event.set_state("completed");
    event.set_summary_json(kSummary.dump());
    writer->Write(event);
    return grpc::Status::OK;
  }

  grpc::Status ExportExperiment(grpc::ServerContext*, const lab::v1::ExportExperimentRequest*,
                                grpc::ServerWriter<lab::v1::ExportChunk>* writer) override {
    for (const std::string& part : {std::string("seq,error_ns\n"), std::string("1,\0\n", 4)}) {
      lab::v1::ExportChunk chunk;
      chunk.set_data(part);
      writer->Write(chunk);
    }
    return grpc::Status::OK;
  }

  bool WaitStarted(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return started_; });
  }
  bool WaitCancelled(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return cancelled_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  bool cancelled_ = false;
};

class LabctlE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 1s);
  }
  std::vector<std::string> Labctl(std::vector<std::string> args) const {
    args.insert(args.begin(),
                {LABCTL_BINARY, "--controller", "127.0.0.1:" + std::to_string(port_)});
    return args;
  }

  FakeController service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(LabctlE2eTest, RunPrintsTheSummaryJsonAndProgressOnStderr) {
  Subprocess p(Labctl({"run", "--clients", "kalman", "--count", "3", "--output", "json"}));
  ASSERT_EQ(p.Wait(60s), 0) << p.stderr_text();
  EXPECT_EQ(nlohmann::json::parse(p.stdout_text()), kSummary);
  EXPECT_THAT(p.stderr_text(), HasSubstr("kalman on agent-1: running, 1/3 probes"));
}

TEST_F(LabctlE2eTest, CtrlCCancelsTheRunOnTheControllerAndExits130) {
  Subprocess p(Labctl({"run", "--clients", "kalman", "--name", "hang"}));
  ASSERT_TRUE(service_.WaitStarted(30s)) << "labctl never called RunExperiment";
  p.Signal(SIGINT);
  EXPECT_EQ(p.Wait(30s), 130) << p.stderr_text();
  EXPECT_THAT(p.stderr_text(), HasSubstr("interrupted"));
  EXPECT_TRUE(service_.WaitCancelled(10s)) << "the server never saw the call cancelled";
}

TEST_F(LabctlE2eTest, ExportStreamsTheBytesUnchanged) {
  Subprocess p(Labctl({"results", "export", "exp-42", "--format", "csv"}));
  ASSERT_EQ(p.Wait(60s), 0) << p.stderr_text();
  EXPECT_EQ(p.stdout_text(), std::string("seq,error_ns\n1,\0\n", 17));
}

}  // namespace
}  // namespace lab

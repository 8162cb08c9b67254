// `labctl agents` and `labctl results list|show|export` against the mock controller.
#include "labctl/query_commands.h"

#include <string>

#include "nlohmann/json.hpp"
#include "tests/labctl/labctl_fixture.h"

namespace lab::labctl {
namespace {

using ::testing::_;
using ::testing::DoAll;
using ::testing::HasSubstr;
using ::testing::Return;
using ::testing::SetArgPointee;

lab::v1::ListAgentsResponse TwoAgents(int64_t now_ns) {
  lab::v1::ListAgentsResponse r;
  lab::v1::AgentStatus* a = r.add_agents();
  a->mutable_info()->set_name("agent-1");
  a->mutable_info()->add_addresses("127.0.0.2");
  a->mutable_info()->set_timestamping("kernel");
  a->set_agent_id("a-1");
  a->set_alive(true);
  a->set_running_tasks(2);
  a->set_last_seen_ns(now_ns - 1'500'000'000);
  lab::v1::AgentStatus* b = r.add_agents();
  b->mutable_info()->set_name("agent-2");
  b->set_agent_id("a-2");
  b->set_alive(false);
  b->set_last_seen_ns(now_ns - 300'000'000'000);
  return r;
}

using QueryCommandsTest = LabctlTest;

TEST_F(QueryCommandsTest, AgentsTableShowsEveryColumn) {
  EXPECT_CALL(*stub_, ListAgents(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(TwoAgents(clock_.NowNs())), Return(grpc::Status::OK)));
  ASSERT_EQ(Run({"agents"}), 0) << err();
  const std::string text = out();
  for (const char* s :
       {"NAME", "AGENT ID", "ADDRESSES", "TIMESTAMPING", "ALIVE", "RUNNING TASKS", "LAST SEEN",
        "agent-1", "a-1", "127.0.0.2", "kernel", "yes", "1.5s ago", "agent-2", "no", "5m ago"}) {
    EXPECT_THAT(text, HasSubstr(s)) << s;
  }
}

TEST_F(QueryCommandsTest, AgentsJson) {
  EXPECT_CALL(*stub_, ListAgents(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(TwoAgents(clock_.NowNs())), Return(grpc::Status::OK)));
  ASSERT_EQ(Run({"agents", "--output", "json"}), 0) << err();
  const nlohmann::json j = nlohmann::json::parse(out());
  ASSERT_EQ(j["agents"].size(), 2u);
  EXPECT_EQ(j["agents"][0]["name"], "agent-1");
  EXPECT_EQ(j["agents"][0]["alive"], true);
  EXPECT_EQ(j["agents"][0]["addresses"][0], "127.0.0.2");
  EXPECT_EQ(j["agents"][1]["alive"], false);
}

TEST_F(QueryCommandsTest, UnaryCallsHaveTheTimeoutAsDeadline) {
  EXPECT_CALL(*stub_, ListAgents(_, _, _))
      .WillOnce([](grpc::ClientContext* context, const lab::v1::ListAgentsRequest&,
                   lab::v1::ListAgentsResponse*) {
        const auto left = context->deadline() - std::chrono::system_clock::now();
        EXPECT_GT(left, std::chrono::milliseconds(2500));
        EXPECT_LE(left, std::chrono::seconds(3));
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded");
      });
  EXPECT_EQ(Run({"--timeout", "3s", "agents"}), 1);
  EXPECT_THAT(err(), HasSubstr("did not answer in time (--timeout 3s)"));
}

TEST_F(QueryCommandsTest, ResultsListSendsTheLimit) {
  lab::v1::ListExperimentsResponse response;
  lab::v1::ExperimentListing* e = response.add_experiments();
  e->set_experiment_id("exp-7");
  e->set_kind("timesync");
  e->set_state("completed");
  e->set_created_ns(clock_.NowNs());
  e->set_finished_ns(clock_.NowNs() + 3'000'000'000);
  EXPECT_CALL(*stub_, ListExperiments(_, _, _))
      .WillOnce([&](grpc::ClientContext*, const lab::v1::ListExperimentsRequest& request,
                    lab::v1::ListExperimentsResponse* out) {
        EXPECT_EQ(request.limit(), 5);
        *out = response;
        return grpc::Status::OK;
      });
  ASSERT_EQ(Run({"results", "list", "--limit", "5"}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("exp-7"));
  EXPECT_THAT(out(), HasSubstr("completed"));
  EXPECT_THAT(out(), HasSubstr("3s"));
}

TEST_F(QueryCommandsTest, ResultsListRefusesABadLimitWithoutACall) {
  EXPECT_EQ(Run({"results", "list", "--limit", "0"}), 2);
  EXPECT_THAT(err(), HasSubstr("--limit must be in [1, 10000], got 0"));
}

TEST_F(QueryCommandsTest, ResultsShowNotFoundPointsAtTheList) {
  EXPECT_CALL(*stub_, GetExperiment(_, _, _))
      .WillOnce(Return(grpc::Status(grpc::StatusCode::NOT_FOUND, "no such experiment")));
  EXPECT_EQ(Run({"results", "show", "abc"}), 1);
  EXPECT_EQ(err(), "labctl: no experiment abc; see labctl results list\n");
}

lab::v1::GetExperimentResponse StoredRun() {
  lab::v1::GetExperimentResponse r;
  r.mutable_experiment()->set_experiment_id("exp-1");
  r.mutable_experiment()->set_kind("timesync");
  r.mutable_experiment()->set_state("completed");
  r.set_summary_json(nlohmann::json{{"experiment_id", "exp-1"},
                                    {"clients",
                                     {{{"scheme", "kalman"},
                                       {"agent", "agent-2"},
                                       {"state", "complete"},
                                       {"sent", 500},
                                       {"received", 500}}}}}
                         .dump());
  return r;
}

TEST_F(QueryCommandsTest, ResultsShowPrintsTheRunTable) {
  EXPECT_CALL(*stub_, GetExperiment(_, _, _))
      .WillOnce([](grpc::ClientContext*, const lab::v1::GetExperimentRequest& request,
                   lab::v1::GetExperimentResponse* out) {
        EXPECT_EQ(request.experiment_id(), "exp-1");
        *out = StoredRun();
        return grpc::Status::OK;
      });
  ASSERT_EQ(Run({"results", "show", "exp-1"}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("KALMAN"));
  EXPECT_THAT(out(), HasSubstr("500 / 500"));
  EXPECT_THAT(out(), HasSubstr("agent-2"));
}

TEST_F(QueryCommandsTest, ResultsShowJsonIsTheSummaryWithTheListing) {
  EXPECT_CALL(*stub_, GetExperiment(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(StoredRun()), Return(grpc::Status::OK)));
  ASSERT_EQ(Run({"--output", "json", "results", "show", "exp-1"}), 0) << err();
  const nlohmann::json j = nlohmann::json::parse(out());
  EXPECT_EQ(j["experiment_id"], "exp-1");
  EXPECT_EQ(j["state"], "completed");
  EXPECT_EQ(j["clients"][0]["agent"], "agent-2");
}

std::vector<lab::v1::ExportChunk> Chunks(const std::vector<std::string>& parts) {
  std::vector<lab::v1::ExportChunk> out;
  for (const std::string& p : parts) {
    out.emplace_back();
    out.back().set_data(p);
  }
  return out;
}

const std::vector<std::string> kParts = {"seq,error_ns\n1,", std::string("2\0\xff", 3), "\n2,-3\n"};

TEST_F(QueryCommandsTest, ExportWritesExactlyTheStreamedBytesToStdout) {
  EXPECT_CALL(*stub_, ExportExperimentRaw(_, _))
      .WillOnce([](grpc::ClientContext*, const lab::v1::ExportExperimentRequest& request) {
        EXPECT_EQ(request.experiment_id(), "exp-1");
        EXPECT_EQ(request.format(), "csv");
        return MockStream(Chunks(kParts));
      });
  ASSERT_EQ(Run({"results", "export", "exp-1", "--format", "csv"}), 0) << err();
  EXPECT_EQ(out(), kParts[0] + kParts[1] + kParts[2]);
}

TEST_F(QueryCommandsTest, ExportToAFileWritesItOnlyWhenComplete) {
  TempDir dir;
  const std::string path = dir.path() + "/run.json";
  EXPECT_CALL(*stub_, ExportExperimentRaw(_, _))
      .WillOnce([](grpc::ClientContext*, const lab::v1::ExportExperimentRequest& request) {
        EXPECT_EQ(request.format(), "json");
        return MockStream(Chunks(kParts));
      });
  ASSERT_EQ(Run({"results", "export", "exp-1", "--format", "json", "-o", path}), 0) << err();
  EXPECT_EQ(ReadFile(path), kParts[0] + kParts[1] + kParts[2]);
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  EXPECT_EQ(out(), "");
}

TEST_F(QueryCommandsTest, ExportOfAnUnknownExperimentLeavesNoFile) {
  TempDir dir;
  const std::string path = dir.path() + "/run.csv";
  EXPECT_CALL(*stub_, ExportExperimentRaw(_, _))
      .WillOnce([](grpc::ClientContext*, const lab::v1::ExportExperimentRequest&) {
        return MockStream<lab::v1::ExportChunk>(
            {}, grpc::Status(grpc::StatusCode::NOT_FOUND, "no such experiment"));
      });
  EXPECT_EQ(Run({"results", "export", "nope", "-o", path}), 1);
  EXPECT_EQ(err(), "labctl: no experiment nope; see labctl results list\n");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
}

TEST_F(QueryCommandsTest, ExportRefusesAnUnknownFormatWithoutACall) {
  EXPECT_EQ(Run({"results", "export", "exp-1", "--format", "xml"}), 2);
  EXPECT_EQ(connects_, 0);
}

}  // namespace
}  // namespace lab::labctl

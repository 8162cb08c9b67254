// `labctl run`: the request built from flags and spec files, local validation (exit 2, no
// call), the progress/summary loop against a mock stream, exit codes and messages.
#include "labctl/run_command.h"

#include <chrono>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/labctl/labctl_fixture.h"

namespace lab::labctl {
namespace {

using lab::v1::ExperimentEvent;
using lab::v1::RunExperimentRequest;
using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kMs = 1'000'000;

class RunCommandTest : public LabctlTest {
 protected:
  // Expects one RunExperiment call answered with `events` then `status`; keeps the request
  // and the deadline it was given.
  void ExpectRun(std::vector<ExperimentEvent> events, grpc::Status status = grpc::Status::OK) {
    EXPECT_CALL(*stub_, RunExperimentRaw(_, _))
        .WillOnce([this, events, status](grpc::ClientContext* context,
                                         const RunExperimentRequest& request) {
          request_ = request;
          deadline_left_ = context->deadline() - std::chrono::system_clock::now();
          return MockStream(events, status);
        });
  }

  static ExperimentEvent Progress(const std::string& task, lab::v1::Scheme scheme,
                                  const std::string& agent, lab::v1::TaskState state, uint64_t done,
                                  uint64_t total) {
    ExperimentEvent e;
    e.set_experiment_id("exp-1");
    e.set_state("running");
    lab::v1::ClientProgress* c = e.add_clients();
    c->set_task_id(task);
    c->set_scheme(scheme);
    c->set_agent(agent);
    c->set_state(state);
    c->set_progress(done);
    c->set_total(total);
    return e;
  }

  static nlohmann::json Client(const std::string& scheme, const std::string& agent,
                               const std::string& state) {
    return {{"scheme", scheme},
            {"agent", agent},
            {"state", state},
            {"sent", 100},
            {"received", state == "complete" ? 100 : 40},
            {"lost", state == "complete" ? 0 : 60},
            {"timestamping", "kernel"},
            {"converged", true},
            {"converged_after_ms", 5.2},
            {"rtt_us", {{"p50", 40.0}, {"p99", 90.0}}},
            {"error_us", {{"mean", 0.1}, {"rms", 0.4}, {"abs_p99", 1.1}}}};
  }

  static ExperimentEvent Finished(const std::string& state, const nlohmann::json& clients) {
    ExperimentEvent e;
    e.set_experiment_id("exp-1");
    e.set_finished(true);
    e.set_state(state);
    e.set_summary_json(nlohmann::json{{"experiment_id", "exp-1"}, {"clients", clients}}.dump());
    return e;
  }

  RunExperimentRequest request_;
  std::chrono::system_clock::duration deadline_left_{};
};

TEST_F(RunCommandTest, FlagsBecomeOneClientPerSchemeWithDurationsInNanoseconds) {
  ExpectRun({Finished("completed", nlohmann::json::array())});
  ASSERT_EQ(Run({"run",
                 "--clients",
                 "raw, EWMA,kalman,pid",
                 "--count",
                 "100",
                 "--interval",
                 "2ms",
                 "--offset",
                 "-10ms",
                 "--drift-ppm",
                 "-50",
                 "--alpha",
                 "0.3",
                 "--kalman-r",
                 "1.5",
                 "--kalman-q-drift",
                 "20",
                 "--kalman-q-offset",
                 "0",
                 "--kp",
                 "0.2",
                 "--ki",
                 "0.01",
                 "--kd",
                 "0.05",
                 "--server-agent",
                 "agent-1",
                 "--name",
                 "trial"}),
            0)
      << err();
  const lab::v1::TimeSyncExperiment& t = request_.spec().timesync();
  EXPECT_EQ(request_.spec().name(), "trial");
  EXPECT_EQ(t.count(), 100u);
  EXPECT_EQ(t.interval_ns(), 2 * kMs);
  EXPECT_EQ(t.offset_ns(), -10 * kMs);
  EXPECT_EQ(t.drift_ppm(), -50);
  EXPECT_EQ(t.server_agent(), "agent-1");
  ASSERT_EQ(t.clients_size(), 4);
  EXPECT_EQ(t.clients(0).scheme(), lab::v1::SCHEME_RAW);
  EXPECT_EQ(t.clients(0).params().ByteSizeLong(), 0u);  // RAW has no parameters
  EXPECT_EQ(t.clients(1).scheme(), lab::v1::SCHEME_EWMA);
  EXPECT_EQ(t.clients(1).params().ewma_alpha(), 0.3);
  EXPECT_FALSE(t.clients(1).params().has_pid_kp());  // only the scheme's own parameters
  EXPECT_EQ(t.clients(2).scheme(), lab::v1::SCHEME_KALMAN);
  EXPECT_EQ(t.clients(2).params().kalman_measurement_noise_us(), 1.5);
  EXPECT_EQ(t.clients(2).params().kalman_drift_noise_ppb(), 20);
  ASSERT_TRUE(t.clients(2).params().has_kalman_offset_noise_ns());
  EXPECT_EQ(t.clients(2).params().kalman_offset_noise_ns(), 0);
  EXPECT_EQ(t.clients(3).scheme(), lab::v1::SCHEME_PID);
  EXPECT_EQ(t.clients(3).params().pid_kp(), 0.2);
  EXPECT_EQ(t.clients(3).params().pid_ki(), 0.01);
  EXPECT_EQ(t.clients(3).params().pid_kd(), 0.05);
  for (const auto& c : t.clients()) EXPECT_TRUE(c.agent().empty());
}

TEST_F(RunCommandTest, RunDeadlineCoversCountTimesIntervalPlusAMinute) {
  ExpectRun({Finished("completed", nlohmann::json::array())});
  ASSERT_EQ(Run({"run", "--clients", "kalman", "--count", "1000", "--interval", "100ms"}), 0);
  // 1000 x 100 ms + 60 s = 160 s.
  EXPECT_GT(deadline_left_, std::chrono::seconds(155));
  EXPECT_LE(deadline_left_, std::chrono::seconds(160));
}

TEST_F(RunCommandTest, NoFlagsIsTheFourSchemeDemoWithDefaultParameters) {
  auto request = BuildRunRequest(RunFlags{});
  ASSERT_TRUE(request.ok()) << request.status();
  const lab::v1::TimeSyncExperiment& t = request->spec().timesync();
  EXPECT_EQ(t.count(), 500u);
  EXPECT_EQ(t.interval_ns(), 5 * kMs);
  EXPECT_EQ(t.offset_ns(), 25 * kMs);
  EXPECT_EQ(t.drift_ppm(), 80);
  ASSERT_EQ(t.clients_size(), 4);
  EXPECT_EQ(t.clients(1).params().ewma_alpha(), 0.1);
  EXPECT_EQ(t.clients(2).params().kalman_measurement_noise_us(), 2);
  EXPECT_EQ(t.clients(3).params().pid_kp(), 0.3);
  EXPECT_EQ(t.clients(3).params().pid_ki(), 0.05);
}

TEST_F(RunCommandTest, SpecFileIsTheBaseAndFlagsGivenOverrideIt) {
  TempDir dir;
  const std::string spec = dir.Write("spec.json", R"({
    "name": "from file",
    "timesync": {
      "clients": [
        {"scheme": "SCHEME_KALMAN", "params": {"kalmanMeasurementNoiseUs": 1}},
        {"scheme": "SCHEME_PID", "agent": "agent-2", "params": {"pid_ki": 0.02}}
      ],
      "count": 100, "intervalNs": "2000000", "offset_ns": 0, "driftPpm": 10,
      "serverAgent": "agent-9"
    }
  })");
  ExpectRun({Finished("completed", nlohmann::json::array())});
  ASSERT_EQ(Run({"run", "-f", spec, "--count", "7", "--kp", "0.2"}), 0) << err();
  const lab::v1::TimeSyncExperiment& t = request_.spec().timesync();
  EXPECT_EQ(request_.spec().name(), "from file");
  EXPECT_EQ(t.count(), 7u);                // the flag
  EXPECT_EQ(t.interval_ns(), 2 * kMs);     // the file
  EXPECT_EQ(t.offset_ns(), 0);             // the file's explicit 0, not the 25 ms default
  EXPECT_EQ(t.drift_ppm(), 10);            // the file
  EXPECT_EQ(t.server_agent(), "agent-9");  // the file
  ASSERT_EQ(t.clients_size(), 2);          // the file's clients
  EXPECT_EQ(t.clients(0).params().kalman_measurement_noise_us(), 1);
  EXPECT_EQ(t.clients(1).agent(), "agent-2");
  EXPECT_EQ(t.clients(1).params().pid_kp(), 0.2);   // the flag, on the PID client
  EXPECT_EQ(t.clients(1).params().pid_ki(), 0.02);  // the file
}

TEST_F(RunCommandTest, ClientsFlagReplacesTheSpecFilesClients) {
  TempDir dir;
  const std::string spec =
      dir.Write("spec.json", R"({"timesync": {"clients": [{"scheme": "SCHEME_PID"}]}})");
  RunFlags flags;
  flags.spec_file = spec;
  flags.clients = "raw,ewma";
  auto request = BuildRunRequest(flags);
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_EQ(request->spec().timesync().clients_size(), 2);
  EXPECT_EQ(request->spec().timesync().clients(0).scheme(), lab::v1::SCHEME_RAW);
  EXPECT_EQ(request->spec().timesync().count(), 500u);  // neither gives it: the default
}

struct BadInput {
  std::vector<std::string> args;
  std::string message;
};

class RunBadInputTest : public LabctlTest, public ::testing::WithParamInterface<BadInput> {};

TEST_P(RunBadInputTest, ExitsTwoWithItsMessageAndMakesNoCall) {
  // StrictMock: any call on the stub fails the test; and the controller is never dialled.
  EXPECT_EQ(Run(GetParam().args), 2) << err();
  EXPECT_THAT(err(), HasSubstr(GetParam().message));
  EXPECT_EQ(connects_, 0);
  EXPECT_EQ(out(), "");
}

INSTANTIATE_TEST_SUITE_P(
    Flags, RunBadInputTest,
    ::testing::Values(
        BadInput{{"run", "--clients", "raw,ntp"}, "--clients: unknown scheme 'ntp'"},
        BadInput{{"run", "--clients", " , "}, "no scheme given"},
        BadInput{{"run", "--count", "0"}, "--count must be in [1, 1000000000], got 0"},
        BadInput{{"run", "--count", "-5"}, "--count must be in [1, 1000000000], got -5"},
        BadInput{{"run", "--count", "many"}, "--count"},
        BadInput{{"run", "--interval", "0"}, "--interval must be in (0, 1h]"},
        BadInput{{"run", "--interval", "5"}, "--interval '5' is not a duration"},
        BadInput{{"run", "--interval", "2h"}, "--interval must be in (0, 1h], got 2h"},
        BadInput{{"run", "--offset", "25 parsecs"}, "--offset '25 parsecs' is not a duration"},
        BadInput{{"run", "--drift-ppm", "1e6"}, "--drift-ppm must be in [-100000, 100000]"},
        BadInput{{"run", "--alpha", "1.5"}, "EWMA alpha must be in (0, 1], got 1.5"},
        // Checked even when no client of that scheme runs.
        BadInput{{"run", "--clients", "raw", "--alpha", "0"}, "EWMA alpha must be in (0, 1]"},
        BadInput{{"run", "--kalman-r", "0"}, "Kalman measurement noise must be in (0, 1e6]"},
        BadInput{{"run", "--kalman-q-drift", "-1"}, "Kalman drift noise"},
        BadInput{{"run", "--kp", "5"}, "make the loop unstable"},
        BadInput{{"run", "--ki", "-0.1"}, "PID ki must be >= 0"},
        BadInput{{"run", "--server-agent", ""}, "--server-agent needs an agent name"},
        BadInput{{"run", "--bogus"}, "--bogus"}, BadInput{{"--output", "xml", "run"}, "--output"},
        BadInput{{"--timeout", "0", "run"}, "--timeout must be in (0"},
        BadInput{{"--log-level", "loud", "run"}, "unknown log level 'loud'"},
        BadInput{{"--controller", "10.0.0.1:50051", "run"}, "pass --insecure"}));

class RunSpecFileErrorTest
    : public LabctlTest,
      public ::testing::WithParamInterface<std::pair<const char*, const char*>> {};

TEST_P(RunSpecFileErrorTest, ExitsTwoWithItsMessageAndMakesNoCall) {
  TempDir dir;
  const std::string spec = dir.Write("spec.json", GetParam().first);
  EXPECT_EQ(Run({"run", "-f", spec}), 2) << err();
  EXPECT_THAT(err(), HasSubstr(GetParam().second));
  EXPECT_THAT(err(), HasSubstr(spec));
  EXPECT_EQ(connects_, 0);
}

INSTANTIATE_TEST_SUITE_P(
    SpecFiles, RunSpecFileErrorTest,
    ::testing::Values(
        std::pair{"{\"timesync\": {\"count\": 5", "is not an ExperimentSpec in protobuf JSON"},
        std::pair{"{\"timesync\": {\"cuont\": 5}}", "is not an ExperimentSpec"},
        std::pair{"{\"timesync\": {\"clients\": [{\"scheme\": \"SCHEME_NTP\"}]}}",
                  "is not an ExperimentSpec"},
        std::pair{"{\"timesync\": {\"count\": 0}}", "timesync.count must be in [1, 1000000000]"},
        std::pair{"{\"timesync\": {\"intervalNs\": -5}}", "timesync.interval_ns must be in (0"},
        std::pair{"{\"timesync\": {\"clients\": [{\"agent\": \"agent-1\"}]}}",
                  "timesync.clients[0] has no scheme"},
        std::pair{"{\"timesync\": {\"clients\": [{\"scheme\": \"SCHEME_EWMA\", "
                  "\"params\": {\"ewmaAlpha\": 2}}]}}",
                  "timesync.clients[0] EWMA alpha must be in (0, 1], got 2"}));

TEST_F(RunCommandTest, MissingSpecFileIsBadUsage) {
  EXPECT_EQ(Run({"run", "-f", "/nonexistent/spec.json"}), 2);
  EXPECT_THAT(err(), HasSubstr("cannot read spec file '/nonexistent/spec.json'"));
  EXPECT_EQ(connects_, 0);
}

TEST_F(RunCommandTest, CompletedRunExitsZeroWithTheTableAndWhereToFindIt) {
  ExpectRun(
      {Progress("t1", lab::v1::SCHEME_KALMAN, "agent-2", lab::v1::TASK_STATE_RUNNING, 50, 100),
       Finished("completed",
                {Client("kalman", "agent-2", "complete"), Client("pid", "agent-3", "complete")})});
  EXPECT_EQ(Run({"run", "--clients", "kalman,pid", "--count", "100"}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("KALMAN"));
  EXPECT_THAT(out(), HasSubstr("agent-3"));
  EXPECT_THAT(out(), HasSubstr("100 / 100"));
  EXPECT_THAT(out(), HasSubstr("experiment exp-1: completed"));
  EXPECT_THAT(out(), HasSubstr("labctl results show exp-1"));
  // Progress went to stderr as plain lines (not a terminal).
  EXPECT_THAT(err(), HasSubstr("kalman on agent-2: running, 50/100 probes"));
  EXPECT_EQ(connected_to_, "127.0.0.1:50051");
}

TEST_F(RunCommandTest, TheRunsDashboardUrlIsShownOnceOnStderr) {
  ExperimentEvent first =
      Progress("t1", lab::v1::SCHEME_KALMAN, "agent-2", lab::v1::TASK_STATE_RUNNING, 0, 100);
  first.set_dashboard_url("http://127.0.0.1:8080/#/experiments/exp-1");
  ExperimentEvent second =
      Progress("t1", lab::v1::SCHEME_KALMAN, "agent-2", lab::v1::TASK_STATE_RUNNING, 50, 100);
  second.set_dashboard_url(first.dashboard_url());
  ExpectRun({first, second, Finished("completed", {Client("kalman", "agent-2", "complete")})});
  EXPECT_EQ(Run({"run", "--clients", "kalman", "--count", "100"}), 0) << err();
  const std::string line = "dashboard: http://127.0.0.1:8080/#/experiments/exp-1\n";
  ASSERT_THAT(err(), HasSubstr(line));
  EXPECT_EQ(err().find(line), err().rfind(line));
  EXPECT_THAT(out(), Not(HasSubstr("dashboard")));  // stdout stays the result alone
}

TEST_F(RunCommandTest, PartialRunExitsThreeAndNamesTheClientsThatDidNotComplete) {
  ExperimentEvent finished = Finished(
      "partial", {Client("kalman", "agent-2", "complete"), Client("pid", "agent-3", "lost")});
  *finished.add_clients() =
      Progress("t2", lab::v1::SCHEME_PID, "agent-3", lab::v1::TASK_STATE_LOST, 40, 100).clients(0);
  finished.mutable_clients(0)->set_detail("agent-3 went away");
  ExpectRun({finished});
  EXPECT_EQ(Run({"run", "--clients", "kalman,pid"}), 3);
  EXPECT_THAT(err(), HasSubstr("1 of 2 clients did not complete: pid on agent-3 lost"));
  EXPECT_THAT(err(), HasSubstr("agent-3 went away"));
  EXPECT_THAT(out(), HasSubstr("lost"));  // the table still has the lost client's column
}

TEST_F(RunCommandTest, FailedRunExitsOne) {
  ExpectRun({Finished("failed", nlohmann::json::array())});
  EXPECT_EQ(Run({"run"}), 1);
  EXPECT_THAT(err(), HasSubstr("experiment exp-1 failed"));
}

TEST_F(RunCommandTest, JsonOutputIsTheControllersSummaryWithAgents) {
  const nlohmann::json clients = {Client("raw", "agent-1", "complete"),
                                  Client("ewma", "agent-2", "complete")};
  ExpectRun({Finished("completed", clients)});
  ASSERT_EQ(Run({"run", "--clients", "raw,ewma", "--output", "json"}), 0) << err();
  const nlohmann::json j = nlohmann::json::parse(out());
  EXPECT_EQ(j["experiment_id"], "exp-1");
  ASSERT_EQ(j["clients"].size(), 2u);
  EXPECT_EQ(j["clients"][0]["agent"], "agent-1");
  EXPECT_EQ(j["clients"][1]["scheme"], "ewma");
  EXPECT_EQ(j["clients"], clients);  // as the controller sent it
}

TEST_F(RunCommandTest, UnreachableControllerSaysHowToStartOne) {
  ExpectRun({}, grpc::Status(grpc::StatusCode::UNAVAILABLE, "failed to connect to all addresses"));
  EXPECT_EQ(Run({"run"}), 1);
  EXPECT_EQ(err(),
            "labctl: cannot reach the controller at 127.0.0.1:50051: is it running? (labctl lab "
            "up)\n");
  EXPECT_EQ(out(), "");
}

TEST_F(RunCommandTest, RequestRefusedByTheControllerIsBadUsage) {
  ExpectRun({}, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unknown agent 'agent-9'"));
  EXPECT_EQ(Run({"run", "--server-agent", "agent-9"}), 2);
  EXPECT_THAT(err(), HasSubstr("the controller refused the request: unknown agent 'agent-9'"));
}

TEST_F(RunCommandTest, StreamEndingWithoutAResultFails) {
  ExpectRun({Progress("t1", lab::v1::SCHEME_RAW, "agent-1", lab::v1::TASK_STATE_RUNNING, 1, 5)});
  EXPECT_EQ(Run({"run"}), 1);
  EXPECT_THAT(err(), HasSubstr("ended the run without a result; see labctl results show exp-1"));
}

TEST_F(RunCommandTest, CtrlCCancelsTheCallAndExits130) {
  EXPECT_CALL(*stub_, RunExperimentRaw(_, _))
      .WillOnce([this](grpc::ClientContext*, const RunExperimentRequest&) {
        auto* reader = new Reader();
        EXPECT_CALL(*reader, Read(_))
            .WillOnce([](ExperimentEvent* e) {
              *e = Progress("t1", lab::v1::SCHEME_RAW, "agent-1", lab::v1::TASK_STATE_RUNNING, 1,
                            500);
              return true;
            })
            .WillOnce([this](ExperimentEvent*) {
              interrupt_.Cancel();  // what the signal watcher does on Ctrl-C
              return false;
            });
        EXPECT_CALL(*reader, Finish())
            .WillOnce(::testing::Return(grpc::Status(grpc::StatusCode::CANCELLED, "Cancelled")));
        return reader;
      });
  EXPECT_EQ(Run({"run"}), 130);
  EXPECT_THAT(err(), HasSubstr("interrupted"));
  EXPECT_THAT(err(), HasSubstr("exp-1"));
}

TEST_F(RunCommandTest, MalformedSummaryFromTheControllerFails) {
  ExperimentEvent e = Finished("completed", nlohmann::json::array());
  e.set_summary_json("{not json");
  ExpectRun({e});
  EXPECT_EQ(Run({"run"}), 1);
  EXPECT_THAT(err(), HasSubstr("not a JSON object"));
}

}  // namespace
}  // namespace lab::labctl

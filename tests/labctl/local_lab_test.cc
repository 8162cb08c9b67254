// `labctl lab up|status|down` with stand-in binaries (shell scripts that sleep) and a mock
// controller; lab.json round trip; where the binaries are looked up.
#include "labctl/local_lab.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/labctl/labctl_fixture.h"

namespace lab::labctl {
namespace {

using ::testing::_;
using ::testing::AnyNumber;
using ::testing::HasSubstr;

LabState SampleState() {
  LabState s;
  s.controller_address = "127.0.0.1:50051";
  s.controller = {"lab-controller",
                  "/b/lab-controller",
                  {1234, 99887766},
                  "127.0.0.1:50051",
                  "/l/lab-controller.out"};
  s.agents.push_back({"agent-1", "/b/lab-agent", {1235, 99887770}, "127.0.0.2", "/l/agent-1.out"});
  s.agents.push_back({"agent-2", "/b/lab-agent", {1236, 0}, "127.0.0.3", "/l/agent-2.out"});
  s.state_dir = "/s";
  s.log_dir = "/l";
  s.started_ns = 1'700'000'000'123'456'789;
  return s;
}

void ExpectSameProcess(const LabProcess& a, const LabProcess& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.binary, b.binary);
  EXPECT_EQ(a.process.pid, b.process.pid);
  EXPECT_EQ(a.process.start_time, b.process.start_time);
  EXPECT_EQ(a.address, b.address);
  EXPECT_EQ(a.output, b.output);
}

TEST(LabStateTest, RoundTripsThroughLabJson) {
  TempDir dir;
  const std::string path = LabStatePath(dir.path());
  const LabState saved = SampleState();
  ASSERT_TRUE(SaveLabState(path, saved).ok());
  auto loaded = LoadLabState(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->controller_address, saved.controller_address);
  EXPECT_EQ(loaded->state_dir, saved.state_dir);
  EXPECT_EQ(loaded->log_dir, saved.log_dir);
  EXPECT_EQ(loaded->started_ns, saved.started_ns);
  ExpectSameProcess(loaded->controller, saved.controller);
  ASSERT_EQ(loaded->agents.size(), 2u);
  ExpectSameProcess(loaded->agents[0], saved.agents[0]);
  ExpectSameProcess(loaded->agents[1], saved.agents[1]);
}

TEST(LabStateTest, MissingFileIsNotFoundAndAMalformedOneInvalid) {
  TempDir dir;
  EXPECT_TRUE(absl::IsNotFound(LoadLabState(dir.path() + "/lab.json").status()));
  dir.Write("lab.json", "{\"version\": 1, \"controller_address\": 5}");
  EXPECT_TRUE(absl::IsInvalidArgument(LoadLabState(dir.path() + "/lab.json").status()));
  dir.Write("lab.json", "not json");
  EXPECT_TRUE(absl::IsInvalidArgument(LoadLabState(dir.path() + "/lab.json").status()));
  nlohmann::json j = LabStateToJson(SampleState());
  j["agents"][1].erase("pid");
  EXPECT_THAT(std::string(LabStateFromJson(j).status().message()), HasSubstr("agents[1]"));
}

class FindBinaryTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::string> Find(const LabBinary& binary = kControllerBinary) {
    Environment env;
    env.self_exe = "/build/labctl/labctl";
    env.getenv = [this](const std::string& name) -> std::optional<std::string> {
      auto it = vars_.find(name);
      return it == vars_.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    return FindBinary(binary, env,
                      [this](const std::string& path) { return executables_.count(path) > 0; });
  }
  std::map<std::string, std::string> vars_ = {{"PATH", "/usr/local/bin::/usr/bin"}};
  std::set<std::string> executables_ = {"/opt/lab-controller", "/build/controller/lab-controller",
                                        "/build/labctl/lab-controller", "/usr/bin/lab-controller",
                                        "/build/agent/lab-agent"};
};

TEST_F(FindBinaryTest, EnvironmentVariableComesFirst) {
  vars_["LAB_CONTROLLER_BIN"] = "/opt/lab-controller";
  EXPECT_EQ(*Find(), "/opt/lab-controller");
}

TEST_F(FindBinaryTest, ThenTheBuildTreeBesideLabctl) {
  EXPECT_EQ(*Find(), "/build/controller/lab-controller");
  EXPECT_EQ(*Find(kAgentBinary), "/build/agent/lab-agent");
}

TEST_F(FindBinaryTest, ThenLabctlsOwnDirectory) {
  executables_.erase("/build/controller/lab-controller");
  EXPECT_EQ(*Find(), "/build/labctl/lab-controller");
}

TEST_F(FindBinaryTest, ThenPath) {
  executables_.erase("/build/controller/lab-controller");
  executables_.erase("/build/labctl/lab-controller");
  EXPECT_EQ(*Find(), "/usr/bin/lab-controller");
}

TEST_F(FindBinaryTest, AnEnvironmentVariableNamingNothingExecutableIsAnError) {
  vars_["LAB_CONTROLLER_BIN"] = "/nope/lab-controller";
  auto found = Find();
  ASSERT_FALSE(found.ok());
  EXPECT_THAT(std::string(found.status().message()),
              HasSubstr("LAB_CONTROLLER_BIN=/nope/lab-controller is not an executable file"));
}

TEST_F(FindBinaryTest, NotFoundSaysWhereItLookedAndHowToFixIt) {
  executables_.clear();
  auto found = Find();
  ASSERT_TRUE(absl::IsNotFound(found.status()));
  const std::string message(found.status().message());
  EXPECT_THAT(message, HasSubstr("/build/controller/lab-controller"));
  EXPECT_THAT(message, HasSubstr("$PATH"));
  EXPECT_THAT(message, HasSubstr("set LAB_CONTROLLER_BIN"));
}

// A TCP socket listening on an ephemeral loopback port, closed with the object.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(fd_, 1) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port_ = ntohs(a.sin_port);
    }
  }
  ~Listener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A loopback port nothing listens on (just now).
std::string FreePort() { return std::to_string(Listener().port()); }

// Stand-in binaries: print their pid and arguments, then sleep (or fail, for the failure
// tests), so up/status/down run against real processes.
class LocalLabTest : public LabctlTest {
 protected:
  LocalLabTest() {
    SetBinaries("exec sleep 300", "exec sleep 300");
    state_dir_ = dir_.path() + "/state";
    log_dir_ = dir_.path() + "/logs";
  }
  void SetBinaries(const std::string& controller_body, const std::string& agent_body) {
    const std::string header = "#!/bin/sh\necho \"pid=$$ args=$*\"\n";
    vars_["LAB_CONTROLLER_BIN"] =
        dir_.Write("controller.sh", header + controller_body + "\n", true);
    vars_["LAB_AGENT_BIN"] = dir_.Write("agent.sh", header + agent_body + "\n", true);
    env_.getenv = [this](const std::string& name) -> std::optional<std::string> {
      auto it = vars_.find(name);
      return it == vars_.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
  }
  // The controller answers ListAgents with `alive` agents alive.
  void ControllerSees(std::vector<std::string> alive) {
    EXPECT_CALL(*stub_, ListAgents(_, _, _))
        .Times(AnyNumber())
        .WillRepeatedly([alive](grpc::ClientContext*, const lab::v1::ListAgentsRequest&,
                                lab::v1::ListAgentsResponse* response) {
          for (const std::string& name : alive) {
            lab::v1::AgentStatus* a = response->add_agents();
            a->mutable_info()->set_name(name);
            a->set_alive(true);
          }
          return grpc::Status::OK;
        });
  }
  // The pid a stand-in printed first in its .out file.
  pid_t PidIn(const std::string& name) {
    const std::string text = ReadFile(log_dir_ + "/" + name + ".out");
    int pid = 0;
    const auto start = text.find("pid=");
    if (start == std::string::npos) return 0;
    const auto end = text.find(' ', start);
    return absl::SimpleAtoi(text.substr(start + 4, end - start - 4), &pid) ? pid : 0;
  }
  // The stand-in's .out once it holds `text` (the script writes it right after starting).
  std::string OutputOnceItHas(const std::string& name, const std::string& text) {
    const std::string path = log_dir_ + "/" + name + ".out";
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    std::string content = ReadFile(path);
    while (content.find(text) == std::string::npos && absl::Now() < deadline) {
      poll(nullptr, 0, 10);
      content = ReadFile(path);
    }
    return content;
  }
  void Clear() {
    out_.str("");
    err_.str("");
  }

  TempDir dir_;
  std::map<std::string, std::string> vars_;
  std::string state_dir_, log_dir_;
};

TEST_F(LocalLabTest, UpStartsTheControllerAndAgentsStatusSeesThemDownStopsThem) {
  ControllerSees({"agent-1", "agent-2"});
  const std::string port = FreePort();
  const std::string http_port = FreePort();
  const std::string address = "127.0.0.1:" + port;
  ASSERT_EQ(Run({"lab", "up", "--agents", "2", "--port", port, "--http-port", http_port,
                 "--state-dir", state_dir_, "--log-dir", log_dir_}),
            0)
      << err();
  EXPECT_THAT(out(), HasSubstr("local lab up: controller " + address));
  EXPECT_THAT(out(), HasSubstr("dashboard: http://127.0.0.1:" + http_port + "/"));
  EXPECT_EQ(connected_to_, address);
  auto state = LoadLabState(LabStatePath(state_dir_));
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->agents.size(), 2u);
  EXPECT_TRUE(IsRunning(state->controller.process));
  for (const LabProcess& a : state->agents) EXPECT_TRUE(IsRunning(a.process)) << a.name;
  // Exactly the flags the binaries are documented to take.
  EXPECT_THAT(
      OutputOnceItHas("lab-controller", "args="),
      HasSubstr(absl::StrCat("args=--listen ", address, " --http 127.0.0.1:", http_port, " --db ",
                             state_dir_, "/results.db --log-dir ", log_dir_, " --output json")));
  EXPECT_THAT(OutputOnceItHas("agent-2", "args="),
              HasSubstr(absl::StrCat("args=--controller ", address,
                                     " --name agent-2 --address 127.0.0.3 --log-dir ", log_dir_)));

  Clear();
  EXPECT_EQ(Run({"lab", "status", "--state-dir", state_dir_}), 0) << out() << err();
  EXPECT_THAT(out(), HasSubstr("agent-2"));
  EXPECT_THAT(out(), HasSubstr("running"));

  Clear();
  EXPECT_EQ(Run({"lab", "up", "--agents", "2", "--port", port, "--http-port", http_port,
                 "--state-dir", state_dir_, "--log-dir", log_dir_}),
            0);
  EXPECT_THAT(out(), HasSubstr("already up"));

  Clear();
  EXPECT_EQ(Run({"lab", "down", "--state-dir", state_dir_}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("stopped agent-1"));
  EXPECT_THAT(out(), HasSubstr("stopped lab-controller"));
  EXPECT_FALSE(IsRunning(state->controller.process));
  for (const LabProcess& a : state->agents) EXPECT_FALSE(IsRunning(a.process)) << a.name;
  EXPECT_FALSE(std::filesystem::exists(LabStatePath(state_dir_)));

  Clear();
  EXPECT_EQ(Run({"lab", "down", "--state-dir", state_dir_}), 0);
  EXPECT_THAT(out(), HasSubstr("nothing to stop"));
  Clear();
  EXPECT_EQ(Run({"lab", "status", "--state-dir", state_dir_}), 1);
  EXPECT_THAT(out(), HasSubstr("no local lab"));
}

TEST_F(LocalLabTest, UpFailsWithTheEndOfTheFailingProcesssOutput) {
  SetBinaries("echo 'cannot listen on 127.0.0.1:50999: address already in use' >&2\nexit 3",
              "exec sleep 300");
  EXPECT_CALL(*stub_, ListAgents(_, _, _))
      .Times(AnyNumber())
      .WillRepeatedly(::testing::Return(grpc::Status(grpc::StatusCode::UNAVAILABLE, "refused")));
  EXPECT_EQ(Run({"lab", "up", "--port", FreePort(), "--http-port", FreePort(), "--state-dir",
                 state_dir_, "--log-dir", log_dir_}),
            1);
  EXPECT_THAT(err(), HasSubstr("lab-controller exited (exit code 3) before the lab was ready"));
  EXPECT_THAT(err(), HasSubstr("address already in use"));
  EXPECT_FALSE(std::filesystem::exists(LabStatePath(state_dir_)));
}

TEST_F(LocalLabTest, UpGivesUpAtItsDeadlineAndStopsEverythingItStarted) {
  ControllerSees({"agent-1"});  // agent-2 never shows up
  LabUpOptions options;
  options.agents = 2;
  options.port = std::stoi(FreePort());
  options.http_port = std::stoi(FreePort());
  options.state_dir = state_dir_;
  options.log_dir = log_dir_;
  options.ready_timeout = absl::Seconds(1);
  EXPECT_EQ(LabUp(options, GlobalOptions{}, env_), 1);
  EXPECT_THAT(err(), HasSubstr("1 of 2 agents alive (missing: agent-2)"));
  EXPECT_THAT(err(), HasSubstr("agent-2's output"));
  EXPECT_FALSE(std::filesystem::exists(LabStatePath(state_dir_)));
  for (const char* name : {"lab-controller", "agent-1", "agent-2"}) {
    OutputOnceItHas(name, "pid=");
    const pid_t pid = PidIn(name);
    ASSERT_GT(pid, 0) << name;
    EXPECT_FALSE(IsRunning({pid, 0})) << name;
  }
}

TEST_F(LocalLabTest, UpRefusesAPortSomethingListensOnBeforeStartingAnything) {
  Listener busy;
  ASSERT_GT(busy.port(), 0);
  EXPECT_EQ(Run({"lab", "up", "--port", std::to_string(busy.port()), "--state-dir", state_dir_,
                 "--log-dir", log_dir_}),
            1);
  EXPECT_THAT(err(), HasSubstr(absl::StrCat("port ", busy.port(), " on 127.0.0.1 is in use")));
  EXPECT_FALSE(std::filesystem::exists(LabStatePath(state_dir_)));
  EXPECT_EQ(connects_, 0);
}

TEST_F(LocalLabTest, UpRefusesAnHttpPortSomethingListensOnBeforeStartingAnything) {
  Listener busy;
  ASSERT_GT(busy.port(), 0);
  EXPECT_EQ(Run({"lab", "up", "--port", FreePort(), "--http-port", std::to_string(busy.port()),
                 "--state-dir", state_dir_, "--log-dir", log_dir_}),
            1);
  EXPECT_THAT(err(), HasSubstr(absl::StrCat("port ", busy.port(), " on 127.0.0.1 is in use")));
  EXPECT_THAT(err(), HasSubstr("--http-port"));
  EXPECT_FALSE(std::filesystem::exists(LabStatePath(state_dir_)));
  EXPECT_EQ(connects_, 0);
}

TEST_F(LocalLabTest, UpRefusesBadOptionsBeforeStartingAnything) {
  EXPECT_EQ(Run({"lab", "up", "--agents", "0", "--state-dir", state_dir_}), 2);
  EXPECT_THAT(err(), HasSubstr("--agents must be in [1, 250], got 0"));
  EXPECT_EQ(Run({"lab", "up", "--port", "70000", "--state-dir", state_dir_}), 2);
  EXPECT_EQ(Run({"lab", "up", "--http-port", "-1", "--state-dir", state_dir_}), 2);
  EXPECT_THAT(err(), HasSubstr("--http-port must be in [0, 65535]"));
  EXPECT_EQ(
      Run({"lab", "up", "--port", "50123", "--http-port", "50123", "--state-dir", state_dir_}), 2);
  EXPECT_FALSE(std::filesystem::exists(state_dir_));
  EXPECT_EQ(connects_, 0);
}

TEST_F(LocalLabTest, UpWithoutTheBinariesSaysHowToGetThem) {
  vars_.clear();
  env_.self_exe = dir_.path() + "/labctl/labctl";
  EXPECT_EQ(Run({"lab", "up", "--port", FreePort(), "--http-port", FreePort(), "--state-dir",
                 state_dir_, "--log-dir", log_dir_}),
            1);
  EXPECT_THAT(err(), HasSubstr("cannot find lab-controller"));
  EXPECT_EQ(connects_, 0);
}

}  // namespace
}  // namespace lab::labctl

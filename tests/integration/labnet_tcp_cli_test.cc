// labnet tcp-server / tcp-client as a user runs them: real processes, loopback, port 0.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/subprocess.h"

namespace lab {
namespace {

using namespace std::chrono_literals;
using testing::Subprocess;

std::vector<std::string> Labnet(std::vector<std::string> args) {
  args.insert(args.begin(), {LABNET_BINARY, "--log-dir", "", "--log-level", "warn"});
  return args;
}

class LabnetTcpCliTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Starts `labnet tcp-server --port 0 --output json` with `mode` and the engine under test.
  void StartServer(const std::string& mode, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"tcp-server", "--port",   "0",        "--mode", mode,
                                     "--engine",   GetParam(), "--output", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = std::make_unique<Subprocess>(Labnet(args));
    ASSERT_TRUE(server_->started());
    const auto line = server_->ReadLine(10s);
    ASSERT_TRUE(line.has_value()) << "no 'listening' line from tcp-server";
    const auto j = nlohmann::json::parse(*line);
    ASSERT_EQ(j["event"], "listening");
    EXPECT_EQ(j["protocol"], "tcp");
    EXPECT_EQ(j["address"], "127.0.0.1");
    EXPECT_EQ(j["mode"], mode);
    EXPECT_EQ(j["engine"], GetParam());
    port_ = j["port"].get<int>();
    ASSERT_GT(port_, 0);
  }
  std::string ServerAddress() const { return "127.0.0.1:" + std::to_string(port_); }

  // Runs tcp-client with `args` (plus --output json) and returns its JSON report.
  nlohmann::json RunClient(std::vector<std::string> args) {
    args.insert(args.begin(), {"tcp-client", "--server", ServerAddress(), "--output", "json"});
    Subprocess client(Labnet(args));
    EXPECT_EQ(client.Wait(60s), 0) << client.stderr_text();
    return nlohmann::json::parse(client.stdout_text());
  }

  // Stops the server with `sig` and returns its 'stopped' line's counters.
  nlohmann::json StopServer(int sig = SIGINT) {
    server_->Signal(sig);
    EXPECT_EQ(server_->Wait(10s), 0) << server_->stderr_text();
    const auto stopped = nlohmann::json::parse(server_->stdout_text());
    EXPECT_EQ(stopped["event"], "stopped");
    return stopped["counters"];
  }

  std::unique_ptr<Subprocess> server_;
  int port_ = 0;
};

TEST_P(LabnetTcpCliTest, RequestResponseReportsRateAndLatencyWithIperf3Names) {
  ASSERT_NO_FATAL_FAILURE(StartServer("echo"));
  const auto j = RunClient({"--mode", "rr", "--connections", "6", "--threads", "2", "--requests",
                            "3000", "--length", "200"});
  EXPECT_EQ(j["mode"], "rr");
  EXPECT_EQ(j["requests"], 3000);
  EXPECT_EQ(j["bytes_sent"], 600000);
  EXPECT_EQ(j["bytes_received"], 600000);
  EXPECT_EQ(j["connections"]["established"], 6);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_GT(j["requests_per_second"].get<double>(), 0);
  EXPECT_GT(j["bits_per_second"].get<double>(), 0);
  const auto& l = j["latency_us"];
  EXPECT_LE(l["p50"].get<double>(), l["p99"].get<double>());
  EXPECT_LE(l["p99"].get<double>(), l["p999"].get<double>());
  EXPECT_EQ(l["count"], 3000);
  const auto counters = StopServer();
  EXPECT_EQ(counters["accepted"], 6);
  EXPECT_EQ(counters["bytes_received"], 600000);
  EXPECT_EQ(counters["resets"], 0);
}

TEST_P(LabnetTcpCliTest, BulkToASinkAndReverseFromASource) {
  ASSERT_NO_FATAL_FAILURE(StartServer("sink"));
  const auto up = RunClient({"--mode", "bulk", "--duration", "300ms", "--interval", "100ms"});
  EXPECT_GT(up["bytes_sent"].get<double>(), 1e6);
  EXPECT_GE(up["intervals"].size(), 3u);
  const auto sink = StopServer(SIGTERM);
  EXPECT_EQ(sink["bytes_received"], up["bytes_sent"]);

  ASSERT_NO_FATAL_FAILURE(StartServer("source"));
  const auto down = RunClient({"--mode", "bulk", "--reverse", "--duration", "300ms"});
  EXPECT_GT(down["bytes_received"].get<double>(), 1e6);
  EXPECT_EQ(down["reverse"], true);
  EXPECT_DOUBLE_EQ(down["bits_per_second"].get<double>(),
                   down["bytes_received"].get<double>() * 8 / down["seconds"].get<double>());
  EXPECT_EQ(StopServer()["resets"], 0);
}

TEST_P(LabnetTcpCliTest, TheCapIsReportedOnBothSides) {
  ASSERT_NO_FATAL_FAILURE(StartServer("echo", {"--max-connections", "3"}));
  const auto j = RunClient({"--connections", "5", "--duration", "300ms"});
  EXPECT_EQ(j["errors"], 2);
  EXPECT_GT(j["requests"].get<int>(), 0);
  EXPECT_EQ(StopServer()["refused"], 2);
}

INSTANTIATE_TEST_SUITE_P(Engines, LabnetTcpCliTest, ::testing::Values("epoll", "threads"));

TEST(LabnetTcpCliErrorsTest, NoServerExitsOneNamingIt) {
  Subprocess client(Labnet({"tcp-client", "--server", "127.0.0.1:1", "--duration", "1s"}));
  EXPECT_EQ(client.Wait(30s), 1);
  EXPECT_NE(client.stderr_text().find("127.0.0.1:1"), std::string::npos) << client.stderr_text();
}

TEST(LabnetTcpCliErrorsTest, BadUsageExitsTwoNamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"tcp-server", "--mode", "mirror"}, "--mode"},
      {{"tcp-server", "--port", "70000"}, "--port"},
      {{"tcp-server", "--port-range", "9-3"}, "--port-range"},
      {{"tcp-server", "--bind", "0.0.0.0", "--port", "0"}, "--insecure"},
      {{"tcp-server", "--max-connections", "0", "--port", "0"}, "max connections"},
      {{"tcp-client", "--server", "127.0.0.1"}, "--server"},
      {{"tcp-client", "--server", "127.0.0.1:5", "--duration", "soon"}, "--duration"},
      {{"tcp-client", "--server", "127.0.0.1:5", "--length", "1Q"}, "--length"},
      {{"tcp-client", "--server", "127.0.0.1:5", "--connections", "2", "--threads", "4"},
       "threads"},
      {{"tcp-client", "--server", "127.0.0.1:5", "--reverse"}, "reverse"},
  };
  for (const auto& [args, needle] : cases) {
    Subprocess p(Labnet(args));
    EXPECT_EQ(p.Wait(30s), 2) << args[0] << " " << args[1];
    EXPECT_NE(p.stderr_text().find(needle), std::string::npos)
        << needle << " not in: " << p.stderr_text();
  }
}

}  // namespace
}  // namespace lab

// labnet udp-server / udp-client as a user runs them: real processes, loopback, port 0.
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
  if (std::find(args.begin(), args.end(), "--log-level") == args.end()) {
    args.insert(args.begin(), {"--log-level", "warn"});
  }
  args.insert(args.begin(), {LABNET_BINARY, "--log-dir", ""});
  return args;
}

class LabnetUdpCliTest : public ::testing::Test {
 protected:
  // Starts `labnet udp-server --port 0 --output json` and reads the port it bound.
  void StartServer(const std::string& mode = "echo") {
    server_ = std::make_unique<Subprocess>(
        Labnet({"udp-server", "--port", "0", "--mode", mode, "--output", "json"}));
    ASSERT_TRUE(server_->started());
    const auto line = server_->ReadLine(10s);
    ASSERT_TRUE(line.has_value()) << "no 'listening' line from udp-server";
    const auto j = nlohmann::json::parse(*line);
    ASSERT_EQ(j["event"], "listening");
    EXPECT_EQ(j["address"], "127.0.0.1");
    EXPECT_EQ(j["mode"], mode);
    port_ = j["port"].get<int>();
    ASSERT_GT(port_, 0);
  }
  std::string ServerAddress() const { return "127.0.0.1:" + std::to_string(port_); }

  // Stops the server with `sig` and returns its 'stopped' line.
  nlohmann::json StopServer(int sig = SIGINT) {
    server_->Signal(sig);
    EXPECT_EQ(server_->Wait(10s), 0) << server_->stderr_text();
    const auto stopped = nlohmann::json::parse(server_->stdout_text());
    EXPECT_EQ(stopped["event"], "stopped");
    return stopped;
  }

  std::unique_ptr<Subprocess> server_;
  int port_ = 0;
};

TEST_F(LabnetUdpCliTest, UdpSimpleClientGetsEveryEchoAsJson) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Subprocess client(Labnet({"udp-client", "--server", ServerAddress(), "--count", "50", "--length",
                            "100", "--output", "json"}));
  ASSERT_EQ(client.Wait(60s), 0) << client.stderr_text();
  const auto j = nlohmann::json::parse(client.stdout_text());
  EXPECT_EQ(j["mode"], "simple");
  EXPECT_EQ(j["sent"], 50);
  EXPECT_EQ(j["received"], 50);
  EXPECT_EQ(j["lost_packets"], 0);
  EXPECT_EQ(j["lost_percent"], 0.0);
  EXPECT_EQ(j["length"], 100);
  for (const char* key :
       {"out_of_order", "duplicates", "jitter_ms", "bits_per_second", "packets_per_second",
        "received_packets_per_second", "errors", "skipped_slots", "seconds"}) {
    EXPECT_TRUE(j[key].is_number()) << key;
  }
  for (const char* key : {"p50", "p99", "p999", "min", "max", "mean"}) {
    EXPECT_TRUE(j["latency_us"][key].is_number()) << key;
  }
  EXPECT_TRUE(j["malformed"].is_object());
  EXPECT_TRUE(j["intervals"].is_array());
  const auto stopped = StopServer();
  EXPECT_EQ(stopped["counters"]["received"], 50);
  EXPECT_EQ(stopped["counters"]["echoed"], 50);
}

TEST_F(LabnetUdpCliTest, UdpPacedClientReportsIntervalsAndTheRate) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Subprocess client(Labnet({"udp-client", "--server", ServerAddress(), "--rate", "5k", "--duration",
                            "1s", "--interval", "250ms", "--output", "json"}));
  ASSERT_EQ(client.Wait(60s), 0) << client.stderr_text();
  const auto j = nlohmann::json::parse(client.stdout_text());
  EXPECT_EQ(j["mode"], "fast");
  EXPECT_EQ(j["rate_pps"], 5000.0);
  // 5000 slots in 1 s; a stalled sender skips slots rather than sending more.
  EXPECT_LE(j["sent"].get<int>(), 5001);
  EXPECT_GE(j["sent"].get<int>(), 3500);
  EXPECT_EQ(j["received"], j["sent"]);
  EXPECT_EQ(j["lost_packets"], 0);
  ASSERT_GE(j["intervals"].size(), 4u);
  for (const char* key : {"start", "end", "messages_sent", "messages_received", "latency_us",
                          "jitter_us", "bits_per_second"}) {
    EXPECT_TRUE(j["intervals"][0].contains(key)) << key;
  }
  StopServer(SIGTERM);
}

TEST_F(LabnetUdpCliTest, UdpOneWayToASinkIsCountedByTheServer) {
  ASSERT_NO_FATAL_FAILURE(StartServer("sink"));
  Subprocess client(Labnet({"udp-client", "--server", ServerAddress(), "--one-way", "--rate", "2k",
                            "--count", "500", "--output", "json"}));
  ASSERT_EQ(client.Wait(60s), 0) << client.stderr_text();
  const auto j = nlohmann::json::parse(client.stdout_text());
  EXPECT_EQ(j["sent"], 500);
  EXPECT_TRUE(j["lost_packets"].is_null());
  // The server's stopped line has the flow; 500 datagrams on loopback all arrive, but the
  // server may not have read the last ones yet when it is stopped: allow for that.
  const auto stopped = StopServer();
  ASSERT_EQ(stopped["flows"].size(), 1u);
  const auto& flow = stopped["flows"][0];
  EXPECT_EQ(flow["flow_id"], j["flow_id"]);
  EXPECT_LE(flow["received"].get<int>(), 500);
  EXPECT_GE(flow["received"].get<int>(), 1);
  for (const char* key : {"lost_packets", "out_of_order", "duplicates", "jitter_ms"}) {
    EXPECT_TRUE(flow[key].is_number()) << key;
  }
}

TEST_F(LabnetUdpCliTest, UdpServerStoppedBySigintExitsZeroWithItsStoppedLine) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const auto stopped = StopServer(SIGINT);
  EXPECT_EQ(stopped["mode"], "echo");
  EXPECT_EQ(stopped["port"], port_);
  EXPECT_EQ(stopped["counters"]["received"], 0);
}

TEST_F(LabnetUdpCliTest, UdpServerWithADurationStopsByItself) {
  Subprocess server(
      Labnet({"udp-server", "--port", "0", "--duration", "200ms", "--output", "json"}));
  ASSERT_EQ(server.Wait(30s), 0) << server.stderr_text();
  EXPECT_NE(server.stdout_text().find("\"event\":\"stopped\""), std::string::npos);
}

TEST_F(LabnetUdpCliTest, UdpClientWithoutServerFailsWithExitOne) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string address = ServerAddress();
  StopServer();
  Subprocess client(
      Labnet({"udp-client", "--server", address, "--count", "3", "--timeout", "200ms"}));
  EXPECT_EQ(client.Wait(30s), 1);
  EXPECT_NE(client.stderr_text().find(address), std::string::npos) << client.stderr_text();
}

TEST_F(LabnetUdpCliTest, UdpClientInterruptedPrintsAPartialReportAndExits130) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Subprocess client(Labnet({"udp-client", "--server", ServerAddress(), "--rate", "1k", "--duration",
                            "0", "--interval", "100ms"}));
  // Wait until it runs (its first interval line), then interrupt it.
  ASSERT_TRUE(client.ReadLine(30s).has_value()) << client.stderr_text();
  client.Signal(SIGINT);
  EXPECT_EQ(client.Wait(30s), 130) << client.stderr_text();
  EXPECT_NE(client.stdout_text().find("sent "), std::string::npos) << client.stdout_text();
  StopServer();
}

struct BadUsage {
  std::string name;
  std::vector<std::string> args;
  std::string message;
};
void PrintTo(const BadUsage& b, std::ostream* os) { *os << b.name; }

class LabnetUdpBadUsageTest : public ::testing::TestWithParam<BadUsage> {};

TEST_P(LabnetUdpBadUsageTest, UdpExitsWithTwoAndSaysWhatIsWrong) {
  Subprocess p(Labnet(GetParam().args));
  EXPECT_EQ(p.Wait(30s), 2);
  EXPECT_NE(p.stderr_text().find(GetParam().message), std::string::npos) << p.stderr_text();
  EXPECT_EQ(p.stdout_text(), "");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LabnetUdpBadUsageTest,
    ::testing::Values(
        BadUsage{"BadRate",
                 {"udp-client", "--server", "127.0.0.1:9", "--rate", "fast"},
                 "--rate 'fast' is not a rate"},
        BadUsage{"NegativeRate",
                 {"udp-client", "--server", "127.0.0.1:9", "--rate", "-5"},
                 "--rate '-5'"},
        BadUsage{"RateAndBitrate",
                 {"udp-client", "--server", "127.0.0.1:9", "--rate", "1k", "--bitrate", "1M"},
                 "--bitrate"},
        BadUsage{"ShortLength",
                 {"udp-client", "--server", "127.0.0.1:9", "--length", "10"},
                 "--length must be a byte count in [28, 65507]"},
        BadUsage{"HugeLength",
                 {"udp-client", "--server", "127.0.0.1:9", "--length", "70000"},
                 "got '70000'"},
        BadUsage{
            "NegativeCount", {"udp-client", "--server", "127.0.0.1:9", "--count", "-1"}, "--count"},
        BadUsage{"UnitlessDuration",
                 {"udp-client", "--server", "127.0.0.1:9", "--duration", "5"},
                 "is not a duration"},
        BadUsage{"OneWayWithoutRate",
                 {"udp-client", "--server", "127.0.0.1:9", "--one-way"},
                 "--one-way needs --rate"},
        BadUsage{"NoServer", {"udp-client"}, "--server"},
        BadUsage{"ServerWithoutPort", {"udp-client", "--server", "localhost"}, "HOST:PORT"},
        BadUsage{"UnknownMode", {"udp-server", "--port", "0", "--mode", "mirror"}, "--mode"},
        BadUsage{"BadPortRange",
                 {"udp-server", "--port-range", "9000"},
                 "--port-range must be FIRST-LAST"},
        BadUsage{"NonLoopbackWithoutInsecure",
                 {"udp-server", "--bind", "0.0.0.0", "--port", "0"},
                 "--insecure"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace lab

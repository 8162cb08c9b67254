// labnet as a user runs it: real processes, real sockets on loopback (port 0).
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

// The labnet command line with `args`, logging to the console only (warnings and up unless
// `args` chooses a level).
std::vector<std::string> Labnet(std::vector<std::string> args) {
  if (std::find(args.begin(), args.end(), "--log-level") == args.end()) {
    args.insert(args.begin(), {"--log-level", "warn"});
  }
  args.insert(args.begin(), {LABNET_BINARY, "--log-dir", ""});
  return args;
}

class LabnetCliTest : public ::testing::Test {
 protected:
  // Starts `labnet ts-server --port 0 --output json` and reads the port it bound.
  void StartServer() {
    server_ =
        std::make_unique<Subprocess>(Labnet({"ts-server", "--port", "0", "--output", "json"}));
    ASSERT_TRUE(server_->started());
    const auto line = server_->ReadLine(10s);
    ASSERT_TRUE(line.has_value()) << "no 'listening' line from ts-server";
    const auto j = nlohmann::json::parse(*line);
    ASSERT_EQ(j["event"], "listening");
    EXPECT_EQ(j["address"], "127.0.0.1");
    port_ = j["port"].get<int>();
    server_timestamping_ = j["timestamping"];
    ASSERT_GT(port_, 0);
  }
  std::string ServerAddress() const { return "127.0.0.1:" + std::to_string(port_); }

  std::unique_ptr<Subprocess> server_;
  int port_ = 0;
  std::string server_timestamping_;
};

TEST_F(LabnetCliTest, FourModesWithInjectedOffsetAndDriftAccountForEveryProbe) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::vector<std::unique_ptr<Subprocess>> clients;
  const std::vector<std::string> modes = {"raw", "ewma", "kalman", "pid"};
  for (const std::string& mode : modes) {
    clients.push_back(std::make_unique<Subprocess>(
        Labnet({"ts-client", "--server", ServerAddress(), "--mode", mode, "--count", "300",
                "--interval", "5ms", "--offset", "25ms", "--drift-ppm", "80",
                // Held within 100 us: robust to a busy machine, still 250x below the offset.
                "--converge-threshold", "100", "--output", "json"})));
  }
  int received = 0;
  for (std::size_t i = 0; i < clients.size(); ++i) {
    SCOPED_TRACE(modes[i]);
    ASSERT_EQ(clients[i]->Wait(60s), 0) << clients[i]->stderr_text();
    const auto j = nlohmann::json::parse(clients[i]->stdout_text());
    received += j["received"].get<int>();
    EXPECT_EQ(j["scheme"], modes[i]);
    EXPECT_EQ(j["sent"], 300);
    EXPECT_EQ(j["received"], 300);  // loopback with room in the buffers loses nothing
    EXPECT_EQ(j["lost"], 0);
    // Clients ask for kernel stamps too, so the run is "kernel" exactly when the server's are.
    EXPECT_EQ(j["timestamping"], server_timestamping_);
    for (const char* key : {"mean", "stddev", "rms", "abs_p50", "abs_p95", "abs_p99", "max_abs"}) {
      EXPECT_TRUE(j["error_us"][key].is_number()) << key;
    }
    EXPECT_TRUE(j["rtt_us"]["p50"].is_number());
    EXPECT_TRUE(j["rtt_us"]["p99"].is_number());
    EXPECT_EQ(j["histogram"]["counts"].back(), j["samples"]);
    if (modes[i] == "kalman" || modes[i] == "pid") {
      EXPECT_TRUE(j["converged"].get<bool>());
      EXPECT_TRUE(j["converged_after_ms"].is_number());
      // Typical error within 10 us, or within twice the raw measurements' noise.
      EXPECT_LE(j["error_us"]["abs_p50"].get<double>(),
                std::max(10.0, 2 * j["noise_floor_us"]["abs_p50"].get<double>()));
    }
  }
  server_->Signal(SIGTERM);
  ASSERT_EQ(server_->Wait(10s), 0) << server_->stderr_text();
  // After the listening line, the server prints its counters when it stops.
  const auto stopped = nlohmann::json::parse(server_->stdout_text());
  EXPECT_EQ(stopped["event"], "stopped");
  // The server answered every probe a client got an answer to, and no more than were sent.
  EXPECT_GE(stopped["counters"]["replied"].get<int>(), received);
  EXPECT_LE(stopped["counters"]["replied"].get<int>(), 1200);
  EXPECT_EQ(stopped["counters"]["dropped"], 0);
}

TEST_F(LabnetCliTest, SeveralModesInOneClientPrintATable) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Subprocess client(Labnet({"ts-client", "--server", ServerAddress(), "--mode", "ewma,kalman,pid",
                            "--count", "50", "--interval", "2ms"}));
  ASSERT_EQ(client.Wait(30s), 0) << client.stderr_text();
  const std::string& table = client.stdout_text();
  for (const char* s : {"EWMA", "KALMAN", "PID", "50 / 50", "|error| p99 us"}) {
    EXPECT_NE(table.find(s), std::string::npos) << s << " missing in:\n" << table;
  }
}

// The one-line script of docs/timesync-protocol.md ("JSON feedback form"), verbatim.
constexpr char kJsonOneLiner[] =
    R"(import socket,struct,sys,time;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2);s.sendto(struct.pack("!IBBHHHIQq64x",0x4C425453,1,1,2,1,0,7,1,time.time_ns()),("127.0.0.1",int(sys.argv[1])));print(s.recv(96).decode()))";

TEST_F(LabnetCliTest, DocumentedOneLinerGetsTheJsonFeedbackForm) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Subprocess script({"/usr/bin/env", "python3", "-c", kJsonOneLiner, std::to_string(port_)});
  ASSERT_EQ(script.Wait(30s), 0) << script.stderr_text();
  const auto j = nlohmann::json::parse(script.stdout_text());
  EXPECT_EQ(j["scheme"], "ewma");
  EXPECT_EQ(j["seq"], 1);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_TRUE(j["correction_us"].is_number());
}

TEST_F(LabnetCliTest, NoServerIsAClearFailure) {
  // A port nothing listens on: bind one, learn it, close it.
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string address = ServerAddress();
  server_->Signal(SIGTERM);
  ASSERT_EQ(server_->Wait(10s), 0);
  Subprocess client(Labnet({"ts-client", "--server", address, "--count", "3", "--interval", "1ms",
                            "--timeout", "200ms"}));
  EXPECT_EQ(client.Wait(30s), 1);
  EXPECT_NE(client.stderr_text().find("no reply from " + address), std::string::npos)
      << client.stderr_text();
}

struct BadUsage {
  std::string name;
  std::vector<std::string> args;
  std::string message;
};
void PrintTo(const BadUsage& b, std::ostream* os) { *os << b.name; }

class LabnetBadUsageTest : public ::testing::TestWithParam<BadUsage> {};

TEST_P(LabnetBadUsageTest, ExitsWithTwoAndSaysWhatIsWrong) {
  Subprocess p(Labnet(GetParam().args));
  EXPECT_EQ(p.Wait(30s), 2);
  EXPECT_NE(p.stderr_text().find(GetParam().message), std::string::npos) << p.stderr_text();
  EXPECT_EQ(p.stdout_text(), "");  // nothing started, nothing printed
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LabnetBadUsageTest,
    ::testing::Values(
        BadUsage{"UnknownScheme", {"ts-client", "--mode", "ntp"}, "unknown scheme 'ntp'"},
        BadUsage{"ZeroCount",
                 {"ts-client", "--count", "0"},
                 "--count must be in [1, 1000000000], got 0"},
        BadUsage{"NegativeCount", {"ts-client", "--count", "-5"}, "--count"},
        BadUsage{"UnitlessInterval", {"ts-client", "--interval", "5"}, "is not a duration"},
        BadUsage{"InfiniteTimeout", {"ts-client", "--timeout", "inf"}, "--timeout must be in"},
        BadUsage{"ZeroInterval", {"ts-client", "--interval", "0s"}, "--interval must be in (0"},
        BadUsage{"NanDrift", {"ts-client", "--drift-ppm", "nan"}, "--drift-ppm must be in"},
        BadUsage{"HugeOffset", {"ts-client", "--offset", "1000h"}, "--offset must be in"},
        BadUsage{"HugeKalmanNoise",
                 {"ts-client", "--mode", "kalman", "--kalman-r", "1e200"},
                 "measurement noise must be in"},
        BadUsage{"DemoWithoutClients", {"ts-demo", "--clients", ""}, "e.g. --clients kalman"},
        BadUsage{"DemoUnknownScheme",
                 {"ts-demo", "--clients", "raw,ntp"},
                 "--clients: unknown scheme 'ntp'"},
        BadUsage{"AlphaTooLarge",
                 {"ts-client", "--mode", "ewma", "--alpha", "1.5"},
                 "alpha must be in (0, 1]"},
        BadUsage{"UnstablePid", {"ts-client", "--mode", "pid", "--kp", "3"}, "unstable"},
        BadUsage{"ServerWithoutPort", {"ts-client", "--server", "localhost"}, "expected HOST:PORT"},
        BadUsage{"UnknownFlag", {"ts-client", "--bogus"}, "--bogus"},
        BadUsage{"NoSubcommand", {}, "subcommand"},
        BadUsage{"NonLoopbackWithoutInsecure",
                 {"ts-server", "--bind", "0.0.0.0", "--port", "0"},
                 "--insecure"},
        BadUsage{"UnknownLogLevel", {"--log-level", "loud", "ts-client"}, "unknown log level"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace lab

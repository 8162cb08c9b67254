// The user's path with no Docker: `labctl lab up`, `labctl run … --output json`,
// `labctl lab down`, all real processes on loopback.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/support/subprocess.h"

namespace lab {
namespace {

using namespace std::chrono_literals;
using testing::Subprocess;

// A TCP port free right now on 127.0.0.1 (labctl refuses it if taken meanwhile).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Whether `pid` is a running process (a zombie, dead but not yet reaped by init, is not).
bool Running(int pid) {
  if (kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

TEST(LocalLabTest, LabUpRunFourSchemesAsJsonAccountsForEveryProbeAndLabDownLeavesNothing) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("lab-local-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string state = (dir / ".lab").string();
  const std::string port = std::to_string(FreePort());
  const int http_port = FreePort();
  const auto labctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), LABCTL_BINARY);
    return std::make_unique<Subprocess>(args);
  };

  auto up = labctl({"lab", "up", "--agents", "3", "--port", port, "--http-port",
                    std::to_string(http_port), "--state-dir", state, "--log-dir",
                    (dir / "logs").string()});
  ASSERT_EQ(up->Wait(60s), 0) << up->stderr_text() << up->stdout_text();
  const std::string dashboard = "http://127.0.0.1:" + std::to_string(http_port) + "/";
  EXPECT_NE(up->stdout_text().find("dashboard: " + dashboard), std::string::npos)
      << up->stdout_text();

  auto run = labctl({"--controller", "127.0.0.1:" + port, "run", "--clients", "raw,ewma,kalman,pid",
                     "--count", "100", "--interval", "2ms", "--output", "json"});
  const auto code = run->Wait(120s);
  // The dashboard of the lab lists the run and serves its page.
  httplib::Client http("127.0.0.1", http_port);
  const httplib::Result listing = http.Get("/api/v1/experiments");
  const httplib::Result page = http.Get("/");
  std::ifstream lab_file(state + "/lab.json");
  const auto lab = nlohmann::json::parse(lab_file, nullptr, false);
  auto down = labctl({"lab", "down", "--state-dir", state});
  EXPECT_EQ(down->Wait(60s), 0) << down->stderr_text();

  ASSERT_EQ(code, 0) << run->stderr_text();
  const auto result = nlohmann::json::parse(run->stdout_text());
  ASSERT_TRUE(result["experiment_id"].is_string());
  const std::string id = result["experiment_id"];
  EXPECT_NE(run->stderr_text().find("dashboard: " + dashboard + "#/experiments/" + id),
            std::string::npos)
      << run->stderr_text();
  ASSERT_TRUE(listing) << httplib::to_string(listing.error());
  EXPECT_EQ(listing->status, 200);
  const auto experiments = nlohmann::json::parse(listing->body, nullptr, false);
  ASSERT_TRUE(experiments.is_object()) << listing->body;
  ASSERT_FALSE(experiments["experiments"].empty()) << listing->body;
  EXPECT_EQ(experiments["experiments"][0]["experiment_id"], id);
  EXPECT_EQ(experiments["experiments"][0]["state"], "completed");
  ASSERT_TRUE(page) << httplib::to_string(page.error());
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<html"), std::string::npos);
  ASSERT_EQ(result["clients"].size(), 4u);
  for (const auto& c : result["clients"]) {
    SCOPED_TRACE(c["scheme"].get<std::string>());
    EXPECT_EQ(c["state"], "complete");
    EXPECT_EQ(c["sent"], 100);
    EXPECT_EQ(c["received"], 100);
    EXPECT_EQ(c["lost"], 0);
    EXPECT_TRUE(c["agent"].is_string());
  }
  // Every process `lab up` started is gone after `lab down`.
  ASSERT_TRUE(lab.is_object());
  int checked = 0;
  for (const auto& [key, value] : lab.items()) {
    const auto visit = [&](const nlohmann::json& p) {
      if (p.is_object() && p.contains("pid")) {
        EXPECT_FALSE(Running(p["pid"].get<int>())) << p.dump();
        ++checked;
      }
    };
    if (value.is_array()) {
      for (const auto& p : value) visit(p);
    } else {
      visit(value);
    }
  }
  EXPECT_EQ(checked, 4);  // the controller and three agents
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lab

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/clock.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"

namespace lab {
namespace {

TEST(ErrnoStatusTest, MapsErrnoByRetryMeaningAndKeepsTheMessage) {
  EXPECT_EQ(ErrnoToStatus(EAGAIN, "recv").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoToStatus(EACCES, "bind").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoToStatus(EADDRINUSE, "bind").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrnoToStatus(EMFILE, "socket").code(), absl::StatusCode::kResourceExhausted);
  const absl::Status s = ErrnoToStatus(ENOENT, "open x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "open x: No such file or directory (errno 2)");
  EXPECT_EQ(ErrnoOf(s), ENOENT);
  EXPECT_EQ(ErrnoOf(ErrnoToStatus(ECONNREFUSED, "send")), ECONNREFUSED);
  EXPECT_EQ(ErrnoOf(absl::UnavailableError("no errno here (errno 111)")), 0);
  EXPECT_EQ(ErrnoOf(absl::OkStatus()), 0);
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  LAB_ASSIGN_OR_RETURN(int half, Half(x));
  LAB_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckEven(int x) {
  LAB_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, ReturnEarlyOnErrorAndAssignOnSuccess) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd");
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_FALSE(CheckEven(3).ok());
}

TEST(ClockTest, SimulatedClockMovesOnlyWhenTold) {
  SimulatedClock clock(100);
  EXPECT_EQ(clock.NowNs(), 100);
  clock.AdvanceNs(50);
  EXPECT_EQ(clock.NowNs(), 150);
  const int64_t a = RealtimeClock::Get().NowNs();
  EXPECT_GT(a, 1'600'000'000'000'000'000);  // after 2020: CLOCK_REALTIME in ns
}

TEST(LoggingTest, ParsesLevelsAndExplainsBadOnes) {
  EXPECT_EQ(*ParseLogLevel("debug"), spdlog::level::debug);
  EXPECT_EQ(*ParseLogLevel("warning"), spdlog::level::warn);
  const auto bad = ParseLogLevel("loud");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("trace, debug, info"), std::string::npos);
}

TEST(LoggingTest, ComponentLoggersWriteToTheRotatingFileAtTheChosenLevel) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("lab-logging-test-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  LogOptions options;
  options.dir = dir.string();
  options.console = false;
  options.level = spdlog::level::info;
  options.max_file_bytes = 4096;
  options.max_files = 2;
  auto early = ComponentLogger("early");  // created before InitLogging: re-pointed
  ASSERT_TRUE(InitLogging("unit", options).ok());
  auto logger = ComponentLogger("timesync");
  logger->info("hello {}", 42);
  logger->debug("not shown");
  early->warn("early bird");
  FlushLogs();
  const auto read = [](const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  const std::string first = read(dir / "unit.log");
  EXPECT_NE(first.find("[timesync] hello 42"), std::string::npos) << first;
  EXPECT_NE(first.find("[early] early bird"), std::string::npos) << first;
  EXPECT_EQ(first.find("not shown"), std::string::npos);
  // Size-based rotation keeps max_files old files beside the current one.
  for (int i = 0; i < 200; ++i) logger->info("filler line {} to force a rotation", i);
  FlushLogs();
  EXPECT_TRUE(std::filesystem::exists(dir / "unit.1.log"));
  EXPECT_TRUE(std::filesystem::exists(dir / "unit.2.log"));
  EXPECT_FALSE(std::filesystem::exists(dir / "unit.3.log"));
  EXPECT_LE(std::filesystem::file_size(dir / "unit.1.log"), options.max_file_bytes);
  std::filesystem::remove_all(dir);
}

TEST(LoggingTest, UnwritableDirectoryIsAClearError) {
  LogOptions options;
  options.dir = "/proc/definitely/not/here";
  options.console = false;
  const absl::Status s = InitLogging("unit", options);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--log-dir"), std::string::npos);
  // Logging still works (console only).
  ComponentLogger("after")->info("still fine");
}

}  // namespace
}  // namespace lab

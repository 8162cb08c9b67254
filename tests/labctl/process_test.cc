// The local lab's process handling on real (short-lived, harmless) processes.
#include "labctl/process.h"

#include <unistd.h>

#include "tests/labctl/labctl_fixture.h"

namespace lab::labctl {
namespace {

using ::testing::HasSubstr;

TEST(ProcessTest, SpawnedProcessLeadsItsOwnSessionAndStopsOnSigterm) {
  TempDir dir;
  auto p = SpawnDetached({"/bin/sleep", "300"}, dir.path() + "/sleep.out");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_GT(p->start_time, 0u);
  EXPECT_TRUE(IsRunning(*p));
  EXPECT_EQ(getsid(p->pid), p->pid);
  const ProcessId ids[] = {*p};
  EXPECT_EQ(StopProcesses(ids, absl::Seconds(5))[0], StopOutcome::kTerminated);
  EXPECT_FALSE(IsRunning(*p));
}

TEST(ProcessTest, OutputAndExitAreObserved) {
  TempDir dir;
  const std::string script =
      dir.Write("talk.sh", "#!/bin/sh\necho to-stdout\necho to-stderr >&2\nexit 4\n", true);
  auto p = SpawnDetached({script}, dir.path() + "/talk.out");
  ASSERT_TRUE(p.ok()) << p.status();
  const ProcessId ids[] = {*p};
  EXPECT_EQ(WaitForAnyExit(ids, absl::Seconds(10)), std::optional<std::size_t>(0));
  EXPECT_EQ(ReapIfExited(p->pid), std::optional<std::string>("exit code 4"));
  const std::string out = ReadFile(dir.path() + "/talk.out");
  EXPECT_THAT(out, HasSubstr("to-stdout"));
  EXPECT_THAT(out, HasSubstr("to-stderr"));
}

TEST(ProcessTest, WaitForAnyExitTimesOutWhileAllRun) {
  TempDir dir;
  auto p = SpawnDetached({"/bin/sleep", "300"}, dir.path() + "/sleep.out");
  ASSERT_TRUE(p.ok());
  const ProcessId ids[] = {*p};
  EXPECT_EQ(WaitForAnyExit(ids, absl::Milliseconds(50)), std::nullopt);
  StopProcesses(ids, absl::Seconds(5));
}

TEST(ProcessTest, StopEscalatesToSigkillWhenSigtermIsIgnored) {
  TempDir dir;
  const std::string script =
      dir.Write("stubborn.sh", "#!/bin/sh\ntrap '' TERM\nexec sleep 300\n", true);
  auto p = SpawnDetached({script}, dir.path() + "/stubborn.out");
  ASSERT_TRUE(p.ok());
  const ProcessId ids[] = {*p};
  // Let the shell install its trap before signalling it.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (ReadFile("/proc/" + std::to_string(p->pid) + "/comm") != "sleep\n" &&
         absl::Now() < deadline) {
    WaitForAnyExit(ids, absl::Milliseconds(10));
  }
  EXPECT_EQ(StopProcesses(ids, absl::Milliseconds(300))[0], StopOutcome::kKilled);
  EXPECT_FALSE(IsRunning(*p));
}

TEST(ProcessTest, AReusedPidIsNotMistakenForTheRecordedProcess) {
  TempDir dir;
  auto p = SpawnDetached({"/bin/sleep", "300"}, dir.path() + "/sleep.out");
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(IsRunning({p->pid, p->start_time + 1}));
  const ProcessId impostor[] = {{p->pid, p->start_time + 1}};
  EXPECT_EQ(StopProcesses(impostor, absl::Seconds(1))[0], StopOutcome::kNotRunning);
  EXPECT_TRUE(IsRunning(*p));  // not signalled
  const ProcessId ids[] = {*p};
  StopProcesses(ids, absl::Seconds(5));
}

TEST(ProcessTest, SpawningAMissingProgramFails) {
  TempDir dir;
  auto p = SpawnDetached({"/nonexistent/lab-agent"}, dir.path() + "/x.out");
  EXPECT_FALSE(p.ok());
}

}  // namespace
}  // namespace lab::labctl

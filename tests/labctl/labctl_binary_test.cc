// The labctl binary as a user runs it: help, bad usage and an unreachable controller.
#include <chrono>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"

namespace lab {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::Subprocess;

TEST(LabctlBinaryTest, HelpShowsWhereToStart) {
  Subprocess p({LABCTL_BINARY, "--help"});
  ASSERT_EQ(p.Wait(30s), 0);
  EXPECT_THAT(p.stdout_text(), HasSubstr("labctl lab up"));
  EXPECT_THAT(p.stdout_text(), HasSubstr("labctl run --clients raw,ewma,kalman,pid"));
  EXPECT_THAT(p.stdout_text(), HasSubstr("Exit codes"));
}

TEST(LabctlBinaryTest, UnknownSchemeIsBadUsage) {
  Subprocess p({LABCTL_BINARY, "--controller", "127.0.0.1:1", "run", "--clients", "raw,ntp"});
  ASSERT_EQ(p.Wait(30s), 2);
  EXPECT_THAT(p.stderr_text(), HasSubstr("unknown scheme 'ntp'"));
  EXPECT_EQ(p.stdout_text(), "");
}

TEST(LabctlBinaryTest, TimeSyncFlagsBesideRunTcpAreRefusedNotIgnored) {
  Subprocess p({LABCTL_BINARY, "--controller", "127.0.0.1:1", "run", "--count", "5", "tcp"});
  ASSERT_EQ(p.Wait(30s), 2);
  EXPECT_THAT(p.stderr_text(), HasSubstr("--count belongs to the time-sync run"));
  Subprocess q({LABCTL_BINARY, "--controller", "127.0.0.1:1", "run", "udp", "--rate", "fast"});
  ASSERT_EQ(q.Wait(30s), 2);
  EXPECT_THAT(q.stderr_text(), HasSubstr("--rate"));
}

TEST(LabctlBinaryTest, UnreachableControllerExitsOneWithAHint) {
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  Subprocess p({LABCTL_BINARY, "--controller", "127.0.0.1:1", "--timeout", "5s", "agents"});
  ASSERT_EQ(p.Wait(30s), 1);
  EXPECT_THAT(p.stderr_text(), HasSubstr("cannot reach the controller at 127.0.0.1:1: is it "
                                         "running? (labctl lab up)"));
}

}  // namespace
}  // namespace lab

// Progress display: plain lines rate-limited per client, bars redrawn in place.
#include "labctl/progress.h"

#include <sstream>

#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lab::labctl {
namespace {

using ::testing::HasSubstr;

lab::v1::ExperimentEvent Event(std::vector<std::tuple<std::string, lab::v1::TaskState, int>> cs) {
  lab::v1::ExperimentEvent e;
  for (const auto& [task, state, done] : cs) {
    lab::v1::ClientProgress* c = e.add_clients();
    c->set_task_id(task);
    c->set_scheme(task == "a" ? lab::v1::SCHEME_KALMAN : lab::v1::SCHEME_PID);
    c->set_agent(task == "a" ? "agent-1" : "agent-2");
    c->set_state(state);
    c->set_progress(done);
    c->set_total(100);
  }
  return e;
}

std::size_t Lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

TEST(ProgressDisplayTest, PlainLinesAtMostOncePerSecondPerClientExceptStateChanges) {
  std::ostringstream out;
  SimulatedClock clock(0);
  ProgressDisplay display(out, /*interactive=*/false, clock);
  const auto running = lab::v1::TASK_STATE_RUNNING;
  display.Update(Event({{"a", running, 10}, {"b", running, 10}}));
  EXPECT_EQ(Lines(out.str()), 2u);  // first sight of each client
  clock.AdvanceNs(500'000'000);
  display.Update(Event({{"a", running, 20}, {"b", running, 20}}));
  EXPECT_EQ(Lines(out.str()), 2u);  // half a second later: nothing
  clock.AdvanceNs(500'000'000);
  display.Update(Event({{"a", running, 30}}));
  EXPECT_EQ(Lines(out.str()), 3u);
  EXPECT_THAT(out.str(), HasSubstr("kalman on agent-1: running, 30/100 probes"));
  clock.AdvanceNs(100'000'000);
  display.Update(Event({{"a", lab::v1::TASK_STATE_COMPLETE, 100}}));
  EXPECT_EQ(Lines(out.str()), 4u);  // a state change is shown at once
  EXPECT_THAT(out.str(), HasSubstr("kalman on agent-1: complete, 100/100 probes"));
  EXPECT_EQ(out.str().find('\x1b'), std::string::npos);  // no terminal escapes
}

TEST(ProgressDisplayTest, BarsAreRedrawnInPlace) {
  std::ostringstream out;
  SimulatedClock clock(0);
  ProgressDisplay display(out, /*interactive=*/true, clock);
  const auto running = lab::v1::TASK_STATE_RUNNING;
  display.Update(Event({{"a", running, 50}, {"b", running, 0}}));
  EXPECT_EQ(out.str().find("\x1b[2A"), std::string::npos);
  EXPECT_THAT(out.str(), HasSubstr("[###############...............]"));
  EXPECT_THAT(out.str(), HasSubstr("50%"));
  display.Update(Event({{"b", running, 100}}));
  EXPECT_THAT(out.str(), HasSubstr("\x1b[2A"));  // back up over both bars
  EXPECT_THAT(out.str(), HasSubstr("100%"));
}

}  // namespace
}  // namespace lab::labctl

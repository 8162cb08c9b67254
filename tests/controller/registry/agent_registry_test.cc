#include "controller/registry/agent_registry.h"

#include <string>

#include "gtest/gtest.h"

namespace lab::controller {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

lab::v1::AgentInfo Info(const std::string& name) {
  lab::v1::AgentInfo info;
  info.set_name(name);
  info.add_addresses("127.0.0.2");
  info.set_timestamping("kernel");
  return info;
}

class AgentRegistryTest : public ::testing::Test {
 protected:
  SimulatedClock clock_{1'000 * kSecond};
  AgentRegistry registry_{{}, clock_};
};

TEST_F(AgentRegistryTest, RegistersAndListsAgentsByName) {
  const auto b = registry_.Register(Info("beta"));
  const auto a = registry_.Register(Info("alpha"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  const auto agents = registry_.List();
  ASSERT_EQ(agents.size(), 2u);
  EXPECT_EQ(agents[0].info.name(), "alpha");
  EXPECT_EQ(agents[0].info.timestamping(), "kernel");
  EXPECT_EQ(registry_.FindByName("beta")->agent_id, *b);
}

TEST_F(AgentRegistryTest, RejectsBadAndDuplicateNamesWithAHint) {
  for (const char* bad : {"", "has space", "semi;colon"}) {
    const auto r = registry_.Register(Info(bad));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("--name"), std::string::npos);
  }
  ASSERT_TRUE(registry_.Register(Info("a1")).ok());
  const auto dup = registry_.Register(Info("a1"));
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(dup.status().message().find("unique --name"), std::string::npos);
}

TEST_F(AgentRegistryTest, HeartbeatsKeepAnAgentAliveAndSilenceExpiresItOnce) {
  const std::string quiet = *registry_.Register(Info("quiet"));
  const std::string chatty = *registry_.Register(Info("chatty"));
  for (int i = 0; i < 5; ++i) {
    clock_.AdvanceNs(kSecond);
    ASSERT_TRUE(registry_.Touch(chatty, 2).ok());
    // Within the 3 s timeout nothing expires; "quiet" goes at its fourth silent second.
    const auto expired = registry_.ExpireStale();
    if (i < 3) {
      EXPECT_TRUE(expired.empty()) << i;
    } else if (i == 3) {
      EXPECT_EQ(expired, std::vector<std::string>{quiet});
    } else {
      EXPECT_TRUE(expired.empty());  // reported once
    }
  }
  EXPECT_EQ(registry_.Touch(quiet, 0).code(), absl::StatusCode::kNotFound);
  ASSERT_EQ(registry_.List().size(), 1u);
  EXPECT_EQ(registry_.Find(chatty)->running_tasks, 2u);
  // The name is free again: the agent may come back as a new session.
  const auto back = registry_.Register(Info("quiet"));
  ASSERT_TRUE(back.ok());
  EXPECT_NE(*back, quiet);
}

TEST_F(AgentRegistryTest, UnregisterFreesTheName) {
  const std::string id = *registry_.Register(Info("x"));
  EXPECT_TRUE(registry_.Unregister(id));
  EXPECT_FALSE(registry_.Unregister(id));
  EXPECT_TRUE(registry_.Register(Info("x")).ok());
}

TEST(AgentRegistryLimitTest, RefusesAgentsBeyondTheMaximum) {
  SimulatedClock clock;
  AgentRegistry registry({.max_agents = 2}, clock);
  ASSERT_TRUE(registry.Register(Info("a")).ok());
  ASSERT_TRUE(registry.Register(Info("b")).ok());
  EXPECT_EQ(registry.Register(Info("c")).status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace lab::controller

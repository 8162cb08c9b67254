// The controller's registry of agents and their liveness.
//
// An agent registers once per session (its stream), then proves it is alive with heartbeats.
// One not heard from for `liveness_timeout` is expired: ExpireStale() removes it and
// returns it once, so the caller can mark its tasks lost. Time comes from the Clock given
// at construction (a SimulatedClock in tests). Thread-safe.
#ifndef CONTROLLER_REGISTRY_AGENT_REGISTRY_H_
#define CONTROLLER_REGISTRY_AGENT_REGISTRY_H_

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/clock.h"
#include "lab/v1/agent.pb.h"

namespace lab::controller {

struct AgentRegistryOptions {
  // An agent silent for longer is gone. Agents heartbeat every second, so 3 s notices a
  // lost agent within the 5 s the lab promises while tolerating two missed heartbeats.
  int64_t liveness_timeout_ns = 3'000'000'000;
  std::size_t max_agents = 1024;
};

struct AgentSnapshot {
  std::string agent_id;  // "<name>#<session>", unique for the controller's lifetime
  lab::v1::AgentInfo info;
  int64_t registered_ns = 0;
  int64_t last_seen_ns = 0;
  uint32_t running_tasks = 0;
};

class AgentRegistry {
 public:
  AgentRegistry(AgentRegistryOptions options, const Clock& clock);

  // Registers a new session and returns its agent id. InvalidArgument when the name is
  // empty or not [A-Za-z0-9._-]{1,64}; AlreadyExists when a live agent has that name;
  // ResourceExhausted beyond max_agents.
  absl::StatusOr<std::string> Register(const lab::v1::AgentInfo& info);
  // Records a sign of life. NotFound when the id is unknown or already expired.
  absl::Status Touch(absl::string_view agent_id, uint32_t running_tasks);
  // Forgets a session that ended cleanly (its stream closed). Returns whether it was known.
  bool Unregister(absl::string_view agent_id);
  // Removes and returns the ids of agents silent for longer than the liveness timeout.
  std::vector<std::string> ExpireStale();

  // Live agents, by name.
  std::vector<AgentSnapshot> List() const;
  std::optional<AgentSnapshot> Find(absl::string_view agent_id) const;
  std::optional<AgentSnapshot> FindByName(absl::string_view name) const;

 private:
  AgentRegistryOptions options_;
  const Clock& clock_;
  mutable std::mutex mu_;
  uint64_t next_session_ = 1;
  absl::flat_hash_map<std::string, AgentSnapshot> by_id_;
  absl::flat_hash_map<std::string, std::string> id_by_name_;
};

}  // namespace lab::controller

#endif  // CONTROLLER_REGISTRY_AGENT_REGISTRY_H_

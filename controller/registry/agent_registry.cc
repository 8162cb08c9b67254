#include "controller/registry/agent_registry.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace lab::controller {

namespace {

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

}  // namespace

AgentRegistry::AgentRegistry(AgentRegistryOptions options, const Clock& clock)
    : options_(options), clock_(clock) {}

absl::StatusOr<std::string> AgentRegistry::Register(const lab::v1::AgentInfo& info) {
  if (!ValidName(info.name())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "agent name '", info.name(),
        "' is not valid: use 1 to 64 letters, digits, '.', '_' or '-' (lab-agent --name)"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = id_by_name_.find(info.name()); it != id_by_name_.end()) {
    return absl::AlreadyExistsError(absl::StrCat(
        "an agent named '", info.name(), "' is already connected (", it->second,
        "); give each agent a unique --name, or wait a few seconds after restarting one"));
  }
  if (by_id_.size() >= options_.max_agents) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the controller holds its maximum of ", options_.max_agents, " agents"));
  }
  const int64_t now = clock_.NowNs();
  std::string id = absl::StrCat(info.name(), "#", next_session_++);
  by_id_[id] = AgentSnapshot{id, info, now, now, 0};
  id_by_name_[info.name()] = id;
  return id;
}

absl::Status AgentRegistry::Touch(absl::string_view agent_id, uint32_t running_tasks) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(agent_id);
  if (it == by_id_.end()) {
    return absl::NotFoundError(absl::StrCat("agent ", agent_id, " is not registered (expired?)"));
  }
  it->second.last_seen_ns = clock_.NowNs();
  it->second.running_tasks = running_tasks;
  return absl::OkStatus();
}

bool AgentRegistry::Unregister(absl::string_view agent_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(agent_id);
  if (it == by_id_.end()) return false;
  id_by_name_.erase(it->second.info.name());
  by_id_.erase(it);
  return true;
}

std::vector<std::string> AgentRegistry::ExpireStale() {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_.NowNs();
  std::vector<std::string> expired;
  for (const auto& [id, agent] : by_id_) {
    if (now - agent.last_seen_ns > options_.liveness_timeout_ns) expired.push_back(id);
  }
  for (const std::string& id : expired) {
    id_by_name_.erase(by_id_[id].info.name());
    by_id_.erase(id);
  }
  std::sort(expired.begin(), expired.end());
  return expired;
}

std::vector<AgentSnapshot> AgentRegistry::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<AgentSnapshot> out;
  out.reserve(by_id_.size());
  for (const auto& [id, agent] : by_id_) out.push_back(agent);
  std::sort(out.begin(), out.end(), [](const AgentSnapshot& a, const AgentSnapshot& b) {
    return a.info.name() < b.info.name();
  });
  return out;
}

std::optional<AgentSnapshot> AgentRegistry::Find(absl::string_view agent_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(agent_id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<AgentSnapshot> AgentRegistry::FindByName(absl::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = id_by_name_.find(name);
  if (it == id_by_name_.end()) return std::nullopt;
  return by_id_.at(it->second);
}

}  // namespace lab::controller

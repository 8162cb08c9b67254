#include "controller/service/agent_hub.h"

#include "absl/strings/str_cat.h"

namespace lab::controller {

AgentHub::AgentHub(AgentRegistry& registry, std::shared_ptr<spdlog::logger> logger)
    : registry_(registry), logger_(std::move(logger)) {}

absl::StatusOr<std::shared_ptr<AgentHub::Session>> AgentHub::Open(const lab::v1::AgentInfo& info,
                                                                  grpc::ServerContext* context) {
  absl::StatusOr<std::string> id = registry_.Register(info);
  if (!id.ok()) return id.status();
  auto session = std::make_shared<Session>();
  session->agent_id = *id;
  session->context = context;
  std::lock_guard<std::mutex> lock(mu_);
  sessions_[*id] = session;
  logger_->info("agent {} connected from {} ({} timestamps)", *id, context->peer(),
                info.timestamping());
  return session;
}

void AgentHub::Receive(Session& session, const lab::v1::AgentMessage& message) {
  const uint32_t running = message.has_heartbeat() ? message.heartbeat().running_tasks() : 0;
  if (message.has_heartbeat()) {
    (void)registry_.Touch(session.agent_id, running);
  } else if (auto agent = registry_.Find(session.agent_id)) {
    (void)registry_.Touch(session.agent_id, agent->running_tasks);
  }
  if (listener_ == nullptr) return;
  if (message.has_task_update()) listener_->OnTaskUpdate(session.agent_id, message.task_update());
  if (message.has_samples()) listener_->OnSamples(session.agent_id, message.samples());
}

void AgentHub::Close(Session& session, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(session.mu);
    session.closed = true;
  }
  session.cv.notify_all();
  bool known;
  {
    std::lock_guard<std::mutex> lock(mu_);
    known = sessions_.erase(session.agent_id) > 0;
  }
  registry_.Unregister(session.agent_id);
  if (known) {
    logger_->warn("agent {} lost: {}", session.agent_id, reason);
    if (listener_ != nullptr) listener_->OnAgentLost(session.agent_id, reason);
  }
}

void AgentHub::Reap() {
  for (const std::string& id : registry_.ExpireStale()) {
    std::shared_ptr<Session> session;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = sessions_.find(id);
      if (it == sessions_.end()) continue;
      session = it->second;
    }
    session->context->TryCancel();  // ends the stream; its handler calls Close()
    Close(*session, "no heartbeat for 3 s");
  }
}

absl::Status AgentHub::Send(const std::string& agent_id, lab::v1::ControllerMessage message) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(agent_id);
    if (it == sessions_.end()) {
      return absl::NotFoundError(absl::StrCat("agent ", agent_id, " is not connected"));
    }
    session = it->second;
  }
  {
    std::lock_guard<std::mutex> lock(session->mu);
    if (session->closed) {
      return absl::NotFoundError(absl::StrCat("agent ", agent_id, " is not connected"));
    }
    session->outbox.push_back(std::move(message));
  }
  session->cv.notify_all();
  return absl::OkStatus();
}

}  // namespace lab::controller

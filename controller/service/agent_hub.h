// The agents connected right now: their sessions (AgentService.Connect streams), the queue of
// messages to each, and the events they send, handed to an AgentEvents listener.
//
// Liveness: a session ends when its stream breaks (the agent died or closed it) or when the
// registry expires it for silence (Reap()); either way the listener hears OnAgentLost once.
// Thread-safe.
#ifndef CONTROLLER_SERVICE_AGENT_HUB_H_
#define CONTROLLER_SERVICE_AGENT_HUB_H_

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "controller/registry/agent_registry.h"
#include "grpcpp/server_context.h"
#include "lab/v1/agent.pb.h"
#include "spdlog/logger.h"

namespace lab::controller {

// What the agents report, delivered on their stream threads.
class AgentEvents {
 public:
  virtual ~AgentEvents() = default;
  virtual void OnTaskUpdate(const std::string& agent_id, const lab::v1::TaskUpdate& update) = 0;
  virtual void OnSamples(const std::string& agent_id, const lab::v1::SampleBatch& batch) = 0;
  virtual void OnAgentLost(const std::string& agent_id, const std::string& reason) = 0;
};

class AgentHub {
 public:
  // One agent's session: messages queued for it until its stream's writer takes them.
  struct Session {
    std::string agent_id;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<lab::v1::ControllerMessage> outbox;  // guarded by mu
    bool closed = false;                            // guarded by mu
    grpc::ServerContext* context = nullptr;         // to cancel the stream
  };

  AgentHub(AgentRegistry& registry, std::shared_ptr<spdlog::logger> logger);
  void SetListener(AgentEvents* listener) { listener_ = listener; }

  // A new session for `info` on `context`'s stream; the registry's error when refused.
  absl::StatusOr<std::shared_ptr<Session>> Open(const lab::v1::AgentInfo& info,
                                                grpc::ServerContext* context);
  // Handles one message from the session's agent (heartbeats, task updates, samples).
  void Receive(Session& session, const lab::v1::AgentMessage& message);
  // The session's stream ended: forget the agent and report it lost (once).
  void Close(Session& session, const std::string& reason);
  // Expires agents silent for too long: cancels their streams, reports them lost.
  void Reap();

  // Queues a message for an agent. NotFound when it is not connected.
  absl::Status Send(const std::string& agent_id, lab::v1::ControllerMessage message);

 private:
  AgentRegistry& registry_;
  std::shared_ptr<spdlog::logger> logger_;
  AgentEvents* listener_ = nullptr;
  std::mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Session>> sessions_;
};

}  // namespace lab::controller

#endif  // CONTROLLER_SERVICE_AGENT_HUB_H_
